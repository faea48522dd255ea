// nn::Module::to on the host: moving to the device a module is already on changes nothing (same
// TensorImpl, same storage, tied weights still one tensor), and a move to a device this build or
// machine cannot use fails before touching a parameter. The move to a GPU itself is checked in
// tests/cuda/cuda_training_test.cpp (skipped without a device).
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "backend/backend.hpp"
#include "core/rng.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"
#include "test_util.hpp"

namespace ld::test {
namespace {

constexpr Device kCuda0{DeviceKind::cuda, 0};

// An embedding whose table is also the output projection (tied, as GPT-2's lm_head), plus a norm.
struct TiedModel : nn::Module {
  explicit TiedModel(Generator& g) {
    embed = register_module("embed", std::make_shared<nn::Embedding>(7, 4, g));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(4));
    head = register_parameter("head", embed->weight);
  }
  std::shared_ptr<nn::Embedding> embed;
  std::shared_ptr<nn::LayerNorm> norm;
  Tensor head;
};

struct Snapshot {
  std::vector<const TensorImpl*> impls;
  std::vector<const Storage*> storages;
  std::vector<std::vector<float>> values;
};

Snapshot snapshot(const nn::Module& m) {
  Snapshot s;
  for (const auto& [_, t] : m.named_parameters()) {
    s.impls.push_back(t.impl_ptr().get());
    s.storages.push_back(t.storage().get());
    s.values.push_back(t.to_vector<float>());
  }
  return s;
}

void expect_unchanged(const nn::Module& m, const Snapshot& before) {
  const Snapshot after = snapshot(m);
  EXPECT_EQ(after.impls, before.impls);
  EXPECT_EQ(after.storages, before.storages);
  EXPECT_EQ(after.values, before.values);
  for (const auto& [name, t] : m.named_parameters()) EXPECT_EQ(t.device(), kCPU) << name;
}

TEST(ModuleTo, ItsOwnDeviceKeepsIdentityStorageAndTying) {
  Generator g(5);
  TiedModel m(g);
  ASSERT_EQ(m.named_parameters().size(), 3u);  // embed.weight (= head), norm.weight, norm.bias
  const Snapshot before = snapshot(m);
  m.to(kCPU);
  expect_unchanged(m, before);
  EXPECT_EQ(m.head.impl_ptr(), m.embed->weight.impl_ptr());
  EXPECT_EQ(m.state_dict().at("head").impl_ptr(), m.state_dict().at("embed.weight").impl_ptr());
}

TEST(ModuleTo, AnUnusableDeviceFailsBeforeMovingAnything) {
  try {
    backend_for(kCuda0);
    GTEST_SKIP() << "this machine has a CUDA device: the move is tested in tests/cuda";
  } catch (const Error&) {
  }
  Generator g(6);
  TiedModel m(g);
  const Snapshot before = snapshot(m);
  const std::string message = error_message([&] { m.to(kCuda0); });
  expect_mentions(message, {"cuda:0"});
  expect_unchanged(m, before);
}

}  // namespace
}  // namespace ld::test
