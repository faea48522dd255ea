#pragma once
// The run configuration's key table (run_config_table.cpp): one row per key pointing at its field in
// RunConfig, so that parsing, resolved.yaml, the unknown-key suggestions and docs/config.md all read
// one list. Internal to src/train/run_config*.cpp.
#include <string>
#include <variant>
#include <vector>

#include "train/run_config.hpp"

namespace ld::train::config_table {

using Field = std::variant<int64_t*, double*, bool*, std::string*, std::vector<std::string>*>;
enum class Range { any, positive, non_negative, unit };  // unit: [0, 1]

struct Row {
  std::string name;
  Field (*field)(RunConfig&);
  Range range;
  std::string choices;
  std::string doc;
  std::vector<std::string> aliases;
};

const std::vector<Row>& rows();

}  // namespace ld::train::config_table
