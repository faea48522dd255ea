#include "core/error.hpp"

namespace ld::detail {

void throw_internal(const char* file, int line, const char* cond, const std::string& msg) {
  std::string text = concat("internal error at ", file, ":", line, ": assertion '", cond, "' failed");
  if (!msg.empty()) text += concat(": ", msg);
  throw InternalError(text);
}

}  // namespace ld::detail
