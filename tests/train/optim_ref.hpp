#pragma once
// Runs tests/train/optim_ref.py (PyTorch) on a JSON input and returns its JSON output.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "test_util.hpp"

namespace ld::test {

inline bool python_has_torch() {
  static const bool has = std::system(LIANDAN_PYTHON " -c 'import torch' >/dev/null 2>&1") == 0;
  return has;
}

// std::nullopt when the script failed (the failure is recorded with the command).
inline std::optional<nlohmann::json> torch_optim_ref(const std::string& mode, const nlohmann::json& input) {
  TempDir dir("optim_ref");
  std::ofstream(dir / "in.json") << input.dump();
  const std::string cmd = std::string(LIANDAN_PYTHON " " LIANDAN_SOURCE_DIR "/tests/train/optim_ref.py ") + mode +
                          " " + (dir / "in.json").string() + " " + (dir / "out.json").string();
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(rc, 0) << cmd;
  if (rc != 0) return std::nullopt;
  return nlohmann::json::parse(std::ifstream(dir / "out.json"));
}

}  // namespace ld::test

#define SKIP_WITHOUT_TORCH()                                                                 \
  if (!::ld::test::python_has_torch())                                                       \
  GTEST_SKIP() << "needs PyTorch for " LIANDAN_PYTHON ": apt-get install python3-torch"
