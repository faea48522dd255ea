#pragma once
// Perplexity: exp of the mean negative log-likelihood (natural log) per token.
#include <vector>

namespace ld::eval {

// token_nlls: -log p(token) for every scored token.
double perplexity(const std::vector<double>& token_nlls);

// From a summed NLL and its token count (for streaming evaluation).
double perplexity_from_total(double total_nll, double token_count);

}  // namespace ld::eval
