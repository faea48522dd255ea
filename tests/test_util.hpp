#pragma once
// Helpers shared by the test files.
#include <gtest/gtest.h>

#include <stdlib.h>  // mkdtemp

#include <filesystem>
#include <functional>
#include <initializer_list>
#include <iostream>
#include <string>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.hpp"
#include "core/tensor.hpp"

namespace ld::test {

// The message of the ld::Error that f throws, or a marker saying it threw nothing or something else.
inline std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<not an ld::Error: ") + e.what() + ">";
  }
  return "<nothing thrown>";
}

inline void expect_mentions(const std::string& msg, std::initializer_list<const char*> parts) {
  for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

// The largest |a - b| over the elements (shapes must agree), in float.
inline float max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const std::vector<float> x = a.to(DType::f32).contiguous().to_vector<float>();
  const std::vector<float> y = b.to(DType::f32).contiguous().to_vector<float>();
  float m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

// A fresh folder under the system temp dir, removed at the end of the test unless the test failed
// (then its path is printed and the files are kept for a look by hand).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "liandan") {
    std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "_XXXXXX")).string();
    LD_CHECK(mkdtemp(pattern.data()) != nullptr, "mkdtemp failed for ", pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (::testing::Test::HasFailure())
      std::cout << "files kept in " << path_ << "\n";
    else
      std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace ld::test
