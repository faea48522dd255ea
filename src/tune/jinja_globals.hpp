#pragma once
// The global functions a chat template can call: transformers' raise_exception(msg) and
// strftime_now(fmt), and Jinja's namespace(...), range(...) and dict(...).
#include <map>
#include <string>

#include "tune/jinja_value.hpp"

namespace ld::tune::jinja {

std::map<std::string, Value> global_functions();

}  // namespace ld::tune::jinja
