#include "eval/perplexity.hpp"

#include <cmath>

#include "core/error.hpp"

namespace ld::eval {

double perplexity_from_total(double total_nll, double token_count) {
  LD_CHECK(token_count > 0, "perplexity: no tokens to average over");
  LD_CHECK(std::isfinite(total_nll), "perplexity: the summed negative log-likelihood is not finite (", total_nll, ")");
  return std::exp(total_nll / token_count);
}

double perplexity(const std::vector<double>& token_nlls) {
  double total = 0;
  for (size_t i = 0; i < token_nlls.size(); ++i) {
    LD_CHECK(token_nlls[i] >= 0, "perplexity: token ", i, " has a negative NLL (", token_nlls[i], ")");
    total += token_nlls[i];
  }
  return perplexity_from_total(total, double(token_nlls.size()));
}

}  // namespace ld::eval
