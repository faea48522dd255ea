#include "tune/ewc.hpp"

#include <string_view>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "io/safetensors.hpp"
#include "ops/ops.hpp"

namespace ld::tune {

namespace {

constexpr const char* kFormat = "liandan-ewc";
constexpr std::string_view kFisher = ".fisher";
constexpr std::string_view kAnchor = ".anchor";

Tensor f32_copy(const Tensor& t) { return t.detach().to(DType::f32).clone(); }

// Tensors are handles: clearing a copy's gradient clears the parameter's.
void clear_grads(const NamedParams& params) {
  for (const auto& [name, p] : params) Tensor(p).zero_grad();
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Ewc Ewc::estimate(const NamedParams& params, const std::function<Tensor(int64_t)>& batch_loss, int64_t batches) {
  LD_CHECK(batches >= 1, "EWC: the Fisher needs at least one batch, got ", batches);
  Ewc ewc;
  ewc.batches_ = batches;
  for (const auto& [name, p] : params)
    if (p.requires_grad()) ewc.entries_[name] = {zeros(p.shape()), f32_copy(p)};
  LD_CHECK(!ewc.entries_.empty(), "EWC: no parameter requires grad (nothing to estimate the Fisher of)");
  for (int64_t k = 0; k < batches; ++k) {
    clear_grads(params);
    batch_loss(k).backward();
    autograd::NoGradGuard no_grad;
    for (const auto& [name, p] : params) {
      if (!p.requires_grad() || !p.grad().defined()) continue;  // not reached by this loss: gradient 0
      const Tensor g = p.grad().to(DType::f32);
      Entry& e = ewc.entries_.at(name);
      e.fisher = ops::add(e.fisher, ops::mul(g, g));
    }
  }
  autograd::NoGradGuard no_grad;
  for (auto& [name, e] : ewc.entries_) e.fisher = ops::scale(e.fisher, 1.0 / double(batches));
  clear_grads(params);
  return ewc;
}

Tensor Ewc::penalty(const NamedParams& params, double lambda) const {
  LD_CHECK(lambda >= 0, "EWC: lambda=", lambda, " must not be negative");
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, p] : params) by_name[name] = &p;
  Tensor total = zeros({});
  for (const auto& [name, e] : entries_) {
    const auto it = by_name.find(name);
    LD_CHECK(it != by_name.end(), "EWC: the Fisher has parameter \"", name, "\", which the model does not have");
    const Tensor& p = *it->second;
    LD_CHECK(p.shape() == e.anchor.shape(), "EWC: parameter \"", name, "\" is ", shape_str(p.shape()),
             " but its Fisher and anchor are ", shape_str(e.anchor.shape()));
    const Tensor d = ops::sub(p.dtype() == DType::f32 ? p : ops::cast(p, DType::f32), e.anchor);
    total = ops::add(total, ops::sum(ops::mul(e.fisher, ops::mul(d, d))));
  }
  return ops::scale(total, lambda / 2.0);
}

void Ewc::save(const std::filesystem::path& path) const {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, e] : entries_) {
    tensors.emplace_back(name + std::string(kFisher), e.fisher);
    tensors.emplace_back(name + std::string(kAnchor), e.anchor);
  }
  io::save_safetensors(path, tensors, {{"format", kFormat}, {"batches", std::to_string(batches_)}});
}

Ewc Ewc::load(const std::filesystem::path& path) {
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  const auto format = file.metadata().find("format");
  LD_CHECK(format != file.metadata().end() && format->second == kFormat, path.string(),
           ": not an EWC file (metadata format is not \"", kFormat, "\")");
  Ewc ewc;
  const auto batches = file.metadata().find("batches");
  if (batches != file.metadata().end()) ewc.batches_ = std::stoll(batches->second);
  for (const io::TensorInfo& info : file.tensors()) {
    const bool fisher = ends_with(info.name, kFisher);
    LD_CHECK(fisher || ends_with(info.name, kAnchor), path.string(), ": tensor \"", info.name,
             "\" is neither <parameter>.fisher nor <parameter>.anchor");
    if (!fisher) continue;
    const std::string name = info.name.substr(0, info.name.size() - kFisher.size());
    const std::string anchor = name + std::string(kAnchor);
    LD_CHECK(file.contains(anchor), path.string(), ": \"", info.name, "\" has no \"", anchor, "\"");
    Entry e{file.get(info.name, DType::f32).clone(), file.get(anchor, DType::f32).clone()};
    LD_CHECK(e.fisher.shape() == e.anchor.shape(), path.string(), ": \"", info.name, "\" is ",
             shape_str(e.fisher.shape()), " but \"", anchor, "\" is ", shape_str(e.anchor.shape()));
    ewc.entries_[name] = std::move(e);
  }
  for (const io::TensorInfo& info : file.tensors())
    if (ends_with(info.name, kAnchor))
      LD_CHECK(ewc.entries_.count(info.name.substr(0, info.name.size() - kAnchor.size())) == 1, path.string(), ": \"",
               info.name, "\" has no fisher");
  LD_CHECK(!ewc.entries_.empty(), path.string(), ": no Fisher tensors");
  return ewc;
}

}  // namespace ld::tune
