#pragma once
// Exact match: the fraction of predictions identical to their reference, byte for byte.
#include <string>
#include <vector>

namespace ld::eval {

double exact_match(const std::vector<std::string>& references, const std::vector<std::string>& predictions);

}  // namespace ld::eval
