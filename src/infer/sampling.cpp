#include "infer/sampling.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace ld::infer {

void validate(const SamplingOptions& o) {
  // Each check states the valid range, so that a NaN option fails it too.
  LD_CHECK(o.temperature >= 0.0f && std::isfinite(o.temperature),
           "sampling: temperature must be a finite number >= 0 (0 = greedy), got ", o.temperature);
  LD_CHECK(o.top_k >= 0, "sampling: top_k must be >= 0 (0 = off), got ", o.top_k);
  LD_CHECK(o.top_p > 0.0f && o.top_p <= 1.0f, "sampling: top_p must be in (0, 1] (1 = off), got ", o.top_p);
  LD_CHECK(o.min_p >= 0.0f && o.min_p <= 1.0f, "sampling: min_p must be in [0, 1] (0 = off), got ", o.min_p);
  LD_CHECK(o.repetition_penalty > 0.0f && std::isfinite(o.repetition_penalty),
           "sampling: repetition_penalty must be a finite number > 0 (1 = off), got ", o.repetition_penalty);
}

Sampler::Sampler(SamplingOptions options, uint64_t seed) : options_(options), seed_(seed) { validate(options_); }

namespace {

void check_logits(std::span<const float> logits) {
  LD_CHECK(!logits.empty(), "sampling: the logits row is empty");
  bool any_finite = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    LD_CHECK(!std::isnan(logits[i]), "sampling: logit of token ", i, " is NaN");
    LD_CHECK(logits[i] != std::numeric_limits<float>::infinity(), "sampling: logit of token ", i, " is +inf");
    any_finite = any_finite || std::isfinite(logits[i]);
  }
  LD_CHECK(any_finite, "sampling: every logit is -inf, nothing can be sampled");
}

// CTRL rule as in HF: shrink the logit of every token already seen towards "less likely".
float penalised(float logit, float penalty) { return logit < 0.0f ? logit * penalty : logit / penalty; }

// Best first: higher score, then lower token id (so ties resolve like torch.argmax).
bool better(std::span<const float> scores, int32_t a, int32_t b) {
  const float sa = scores[size_t(a)], sb = scores[size_t(b)];
  return sa > sb || (sa == sb && a < b);
}

// Keeps the entries of order[0, n) that pass, in their order; the survivors of the sorted head stay
// a sorted head (they are still better than everything after them).
template <typename Keep>
size_t compact(std::vector<int32_t>& order, size_t& sorted, size_t n, Keep keep) {
  size_t kept = 0, kept_sorted = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!keep(order[i])) continue;
    kept_sorted += i < sorted;
    order[kept++] = order[i];
  }
  sorted = kept_sorted;
  return kept;
}

}  // namespace

void Sampler::prepare(std::span<const float> logits, std::span<const int32_t> context) {
  check_logits(logits);
  scores_.assign(logits.begin(), logits.end());
  const float penalty = options_.repetition_penalty;
  for (int32_t t : context) {
    LD_CHECK(t >= 0 && size_t(t) < logits.size(), "sampling: context token ", t,
             " is outside the vocabulary of ", logits.size(), " logits");
    // Read the original logit, so a token repeated in the context is penalised once, as in HF.
    if (penalty != 1.0f) scores_[size_t(t)] = penalised(logits[size_t(t)], penalty);
  }
  const float temperature = options_.temperature;
  if (temperature == 0.0f || temperature == 1.0f) return;
  for (float& s : scores_) {
    s /= temperature;
    LD_CHECK(s != std::numeric_limits<float>::infinity(), "sampling: temperature ", temperature,
             " is too small for these logits (a logit / temperature overflows float)");
  }
}

// Extends the sorted head of order_[0, n) to its best m tokens.
void Sampler::sort_first(size_t m, size_t n) {
  m = std::min(m, n);
  if (m <= sorted_) return;
  auto cmp = [this](int32_t a, int32_t b) { return better(scores_, a, b); };
  auto first = order_.begin() + ptrdiff_t(sorted_);
  if (m == n)
    std::sort(first, order_.begin() + ptrdiff_t(n), cmp);
  else
    std::partial_sort(first, order_.begin() + ptrdiff_t(m), order_.begin() + ptrdiff_t(n), cmp);
  sorted_ = m;
}

// HF keeps every token whose logit is >= the k-th largest: ties at the boundary all stay.
size_t Sampler::keep_top_k(size_t n) {
  const size_t k = size_t(options_.top_k);
  if (k == 0 || k >= n) return n;
  sort_first(k, n);
  const float kth_score = scores_[size_t(order_[k - 1])];
  auto kth = order_.begin() + ptrdiff_t(k);
  auto ties_end = std::partition(kth, order_.begin() + ptrdiff_t(n),
                                 [&](int32_t t) { return scores_[size_t(t)] == kth_score; });
  std::sort(kth, ties_end, [this](int32_t a, int32_t b) { return better(scores_, a, b); });
  sorted_ = size_t(ties_end - order_.begin());
  return sorted_;
}

// HF: cumulative probability in ascending order; drop while it is <= 1 - top_p; keep the best.
// Only a head of the vocabulary is sorted: grown until it holds more than top_p of the mass (with a
// margin far above rounding), so the boundary lies inside it and the rest is dropped as a whole.
size_t Sampler::keep_top_p(size_t n) {
  sort_first(1, n);
  const double top = scores_[size_t(order_[0])];
  auto weight = [&](size_t i) { return std::exp(double(scores_[size_t(order_[i])]) - top); };
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += weight(i);
  const double top_p = options_.top_p;
  size_t m = 256;
  for (;; m *= 4) {
    sort_first(m, n);
    m = std::min(m, n);
    double head = 0.0;
    for (size_t i = 0; i < m; ++i) head += weight(i);
    if (m == n || head / sum > top_p + 1e-9) break;
  }
  double cumulative = 0.0;
  for (size_t i = m; i < n; ++i) cumulative += weight(i) / sum;
  const double drop_mass = 1.0 - top_p;
  for (size_t j = m; j-- > 1;) {
    cumulative += weight(j) / sum;
    if (cumulative > drop_mass) return j + 1;
  }
  return 1;
}

// HF: p < min_p * p_max is dropped; p / p_max = exp(s - s_max) does not depend on normalisation.
size_t Sampler::keep_min_p(size_t n) {
  sort_first(1, n);
  const double top = scores_[size_t(order_[0])];
  const double min_p = options_.min_p;
  return compact(order_, sorted_, n, [&](int32_t t) { return std::exp(double(scores_[size_t(t)]) - top) >= min_p; });
}

void Sampler::normalise(size_t n) {
  sort_first(1, n);
  const double top = scores_[size_t(order_[0])];
  probs_.resize(n);
  double sum = 0.0;
  for (size_t i = 0; i < n; ++i) sum += probs_[i] = std::exp(double(scores_[size_t(order_[i])]) - top);
  LD_ASSERT(std::isfinite(sum) && sum >= 1.0, "softmax sum ", sum);
  for (double& p : probs_) p /= sum;
  order_.resize(n);
}

Candidates Sampler::filter(std::span<const float> logits, std::span<const int32_t> context, bool sorted) {
  prepare(logits, context);
  if (options_.temperature == 0.0f) {
    // max_element returns the first maximum: the lowest token id on ties, like torch.argmax.
    order_.assign(1, int32_t(std::max_element(scores_.begin(), scores_.end()) - scores_.begin()));
    probs_.assign(1, 1.0);
    return {order_, probs_};
  }
  size_t n = scores_.size();
  order_.resize(n);
  std::iota(order_.begin(), order_.end(), 0);
  sorted_ = 0;
  n = keep_top_k(n);
  // -inf logits (masked tokens) have probability zero: never candidates.
  n = compact(order_, sorted_, n, [this](int32_t t) { return std::isfinite(scores_[size_t(t)]); });
  if (options_.top_p < 1.0f) n = keep_top_p(n);
  if (options_.min_p > 0.0f) n = keep_min_p(n);
  if (sorted) sort_first(n, n);
  normalise(n);
  return {order_, probs_};
}

Candidates Sampler::candidates(std::span<const float> logits, std::span<const int32_t> context) {
  return filter(logits, context, true);
}

// 53 random bits from one Philox block: uniform in [0, 1), never 1.
double Sampler::next_uniform() {
  const auto r = philox4x32(seed_, 0, counter_++);
  const uint64_t bits = (uint64_t(r[0]) << 21) | (uint64_t(r[1]) >> 11);
  return double(bits) * (1.0 / 9007199254740992.0);
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> context) {
  const Candidates c = filter(logits, context, false);  // the draw needs no order
  const double u = next_uniform();  // drawn even when greedy, so the counter counts calls
  double cumulative = 0.0;
  for (size_t i = 0; i < c.tokens.size(); ++i) {
    cumulative += c.probs[i];
    if (u < cumulative) return c.tokens[i];
  }
  // u fell past a sum that rounded below 1: the last token with a non-zero probability.
  size_t last = c.tokens.size() - 1;
  while (last > 0 && c.probs[last] == 0.0) --last;
  return c.tokens[last];
}

}  // namespace ld::infer
