#include "eval/exact_match.hpp"

#include "core/error.hpp"

namespace ld::eval {

double exact_match(const std::vector<std::string>& references, const std::vector<std::string>& predictions) {
  LD_CHECK(references.size() == predictions.size(), "exact match: ", references.size(), " references but ",
           predictions.size(), " predictions");
  LD_CHECK(!references.empty(), "exact match: no examples");
  size_t same = 0;
  for (size_t i = 0; i < references.size(); ++i) same += references[i] == predictions[i] ? 1 : 0;
  return double(same) / double(references.size());
}

}  // namespace ld::eval
