// Runs with or without a GPU: the CUDA backend overrides every Backend virtual, and a build with
// CUDA on a machine without a device says so clearly.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/kernel_list.hpp"
#include "test_util.hpp"

namespace ld::test {
namespace {

// The class that declares a member function: &Derived::f has type R (Base::*)(...) when Derived
// only inherits f.
template <typename C, typename R, typename... A>
C* declaring_class(R (C::*)(A...));
template <typename C, typename R, typename... A>
C* declaring_class(R (C::*)(A...) const);

#define LD_EXPECT_CUDA_OVERRIDES(kernel)                                                           \
  static_assert(std::is_same_v<decltype(declaring_class(&CudaBackend::kernel)), CudaBackend*>,     \
                "CudaBackend does not override Backend::" #kernel);
LD_FOR_EACH_CUDA_KERNEL(LD_EXPECT_CUDA_OVERRIDES)
#undef LD_EXPECT_CUDA_OVERRIDES

// Names of the virtual member functions declared in backend/backend.hpp (less the destructor and
// the identity accessors).
std::set<std::string> backend_virtuals() {
  const std::string path = std::string(LIANDAN_SOURCE_DIR) + "/src/backend/backend.hpp";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  const std::string source = text.str();
  std::set<std::string> names;
  const std::regex virtual_decl(R"(virtual\s+[^;{(]*?\b(\w+)\s*\()");
  for (auto it = std::sregex_iterator(source.begin(), source.end(), virtual_decl); it != std::sregex_iterator(); ++it)
    names.insert((*it)[1]);
  for (const char* skip : {"Backend", "device", "name"}) names.erase(skip);
  return names;
}

TEST(CudaCoverage, BackendOverridesEveryKernelDeclaredInBackendHpp) {
  std::set<std::string> listed;
#define LD_LIST_KERNEL(kernel) listed.insert(#kernel);
  LD_FOR_EACH_CUDA_KERNEL(LD_LIST_KERNEL)
#undef LD_LIST_KERNEL
  const std::set<std::string> declared = backend_virtuals();
  EXPECT_GE(declared.size(), 30u) << "the parse of backend.hpp found too few virtuals";
  for (const std::string& name : declared)
    EXPECT_TRUE(listed.count(name)) << "Backend::" << name
                                    << " has no CUDA version (add it to CudaBackend and kernel_list.hpp)";
  for (const std::string& name : listed)
    EXPECT_TRUE(declared.count(name)) << name << " is in kernel_list.hpp but not a Backend virtual";
}

TEST(CudaCoverage, NoDeviceGivesOneClearError) {
  if (cuda_device_count() > 0) {
    // With a device, an index past the last one is the error to check.
    const std::string msg = error_message([] { backend_for(Device{DeviceKind::cuda, 1000}); });
    expect_mentions(msg, {"cuda:1000", "does not exist"});
    return;
  }
  EXPECT_FALSE(cuda_unavailable_reason().empty());
  const std::string msg = error_message([] { backend_for(Device{DeviceKind::cuda, 0}); });
  expect_mentions(msg, {"no CUDA device is available"});
  const std::string from_tensor = error_message([] { zeros({2, 3}, DType::f32, Device{DeviceKind::cuda, 0}); });
  expect_mentions(from_tensor, {"no CUDA device is available"});
}

}  // namespace
}  // namespace ld::test
