#pragma once
// Two kinds of failure (DESIGN.md "Rules"): bad user input throws ld::Error with a message the user
// can act on; a broken internal invariant throws ld::InternalError naming the file and line. Library
// code never exits: the CLI turns either into one line on stderr and a non-zero exit.
#include <sstream>
#include <stdexcept>
#include <string>

namespace ld {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
[[noreturn]] void throw_internal(const char* file, int line, const char* cond, const std::string& msg);
}  // namespace detail

}  // namespace ld

// User-facing check: LD_CHECK(cond, "op matmul: ", a, " vs ", b)
#define LD_CHECK(cond, ...)                                    \
  do {                                                         \
    if (!(cond)) throw ::ld::Error(::ld::detail::concat(__VA_ARGS__)); \
  } while (0)

#define LD_FAIL(...) throw ::ld::Error(::ld::detail::concat(__VA_ARGS__))

// Internal invariant: active in every build type, because a silent wrong gradient costs more than a branch.
#define LD_ASSERT(cond, ...)                                                                         \
  do {                                                                                               \
    if (!(cond)) ::ld::detail::throw_internal(__FILE__, __LINE__, #cond, ::ld::detail::concat("" __VA_OPT__(,) __VA_ARGS__)); \
  } while (0)
