#pragma once
// Random shapes for the op tests. Hand-picked shapes test what their author thought of; these draw
// dims uniformly in 1..9 so odd sizes and size-1 dims turn up, together with non-contiguous
// layouts and broadcasting partners. Every drawn case has its own fixed seed (derived from the
// file's seed, the op name and the case number), which also seeds its input values, and its
// variant names the seed and every input's shape and layout, so a failure reads as a
// reproducible shape.
#include <algorithm>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/shape.hpp"
#include "ops/op_harness.hpp"

namespace ld::test {

using Rng = std::mt19937_64;

// Uniform integer in [lo, hi], both included.
inline int64_t draw_int(Rng& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}
inline bool draw_bool(Rng& rng, double p_true = 0.5) { return std::bernoulli_distribution(p_true)(rng); }
template <typename T> T draw_one(Rng& rng, const std::vector<T>& options) {
  return options[size_t(draw_int(rng, 0, int64_t(options.size()) - 1))];
}

inline Shape draw_shape(Rng& rng, int rank, int64_t max_dim = 9) {
  Shape s(static_cast<size_t>(rank));
  for (auto& d : s) d = draw_int(rng, 1, max_dim);
  return s;
}

// draw_shape, redrawn while the element count exceeds max_numel: the finite-difference check costs
// numel^2 reference evaluations, so a rare 9x9x9x9 draw would dominate the suite's run time.
inline Shape draw_small_shape(Rng& rng, int rank, int64_t max_numel = 1000, int64_t max_dim = 9) {
  for (;;) {
    Shape s = draw_shape(rng, rank, max_dim);
    if (shape_numel(s) <= max_numel) return s;
  }
}

// Transposed needs two dims and sliced one; a scalar is always contiguous.
inline Layout draw_layout(Rng& rng, int64_t rank) {
  std::vector<Layout> options = {Layout::contiguous};
  if (rank >= 1) options.push_back(Layout::sliced);
  if (rank >= 2) options.push_back(Layout::transposed);
  return draw_one(rng, options);
}

// A shape that broadcasts against `full` to `full` (or a sub-shape of it): each dim becomes 1 with
// probability 1/3, a third of the time some (not all) leading dims are dropped, and rarely it is a
// scalar.
inline Shape broadcast_partner(Rng& rng, const Shape& full) {
  if (draw_bool(rng, 1.0 / 12)) return {};
  Shape s = full;
  for (auto& d : s)
    if (draw_bool(rng, 1.0 / 3)) d = 1;
  if (s.size() >= 2 && draw_bool(rng, 1.0 / 3)) s.erase(s.begin(), s.begin() + draw_int(rng, 1, int64_t(s.size()) - 1));
  return s;
}

// A dim of a rank-`rank` tensor, written negative half the time (the ops wrap negative dims).
inline int64_t draw_dim(Rng& rng, int64_t rank) {
  int64_t d = draw_int(rng, 0, rank - 1);
  return draw_bool(rng) ? d - rank : d;
}

// A normal input of shape s in a drawn layout.
inline InputSpec in_random(Rng& rng, Shape s) {
  Layout layout = draw_layout(rng, int64_t(s.size()));
  return in(std::move(s), layout);
}

// `like` with a new shape: same kind, dtype and range; floating inputs get a drawn layout (the
// harness builds index and mask inputs contiguous only).
inline InputSpec reshaped(Rng& rng, InputSpec like, Shape s) {
  like.shape = std::move(s);
  bool floating = like.kind == InputKind::normal || like.kind == InputKind::positive;
  like.layout = floating ? draw_layout(rng, int64_t(like.shape.size())) : Layout::contiguous;
  return like;
}

// 2.5 -> "2.5", -1e4 -> "-10000" (std::to_string would print six decimals)
inline std::string num_str(double x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::contiguous: return "contiguous";
    case Layout::transposed: return "transposed";
    case Layout::sliced: return "sliced";
  }
  return "?";
}

// "[3, 1, 5] transposed", "[4] i32 ids in [0, 7)", "[2, 1] u8 mask"
inline std::string describe(const InputSpec& s) {
  std::string d = shape_str(s.shape);
  switch (s.kind) {
    case InputKind::index:
      return d + (s.dtype == DType::i32 ? " i32" : " i64") + " ids in [" + std::to_string(int64_t(s.lo)) + ", " +
             std::to_string(int64_t(s.hi)) + ")";
    case InputKind::mask: return d + " u8 mask";
    case InputKind::positive: d += " positive"; break;
    case InputKind::normal: break;
  }
  if (s.layout != Layout::contiguous) d += std::string(" ") + layout_name(s.layout);
  if (!s.requires_grad) d += " no grad";
  return d;
}

// FNV-1a: a portable hash, so the seeds do not depend on the standard library.
inline uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// Appends `count` cases for `op`, each built by make(rng) from its own seeded RNG. make returns a
// case whose variant holds only what the inputs do not show (dims, k, options); this prefixes it
// with the seed and every input's shape and layout.
template <typename Make>
void add_random_cases(std::vector<OpCase>& cases, uint64_t file_seed, const std::string& op, int count, Make make) {
  for (int i = 0; i < count; ++i) {
    uint64_t seed = (file_seed ^ fnv1a(op)) % 1000000007ull + uint64_t(i);
    Rng rng(seed);
    OpCase c = make(rng);
    std::string shapes;
    for (const InputSpec& spec : c.inputs) shapes += (shapes.empty() ? "" : ", ") + describe(spec);
    c.variant = "random (seed " + std::to_string(seed) + "): " + shapes + (c.variant.empty() ? "" : "; " + c.variant);
    c.seed = seed;
    cases.push_back(std::move(c));
  }
}

}  // namespace ld::test
