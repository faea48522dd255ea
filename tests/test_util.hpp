#pragma once
// Helpers shared by the test files.
#include <gtest/gtest.h>

#include <functional>
#include <initializer_list>
#include <string>

#include "core/error.hpp"

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

}  // namespace ld::test
