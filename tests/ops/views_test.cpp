#include <numeric>
#include <string>

#include "ops/op_harness.hpp"
#include "ops/ops.hpp"
#include "ops/random_shapes.hpp"
#include "ops/ref_util.hpp"

namespace ld::test {
namespace {

Ref ref_narrow(const Ref& x, int64_t dim, int64_t start, int64_t len) {
  Shape s = x.shape;
  s[size_t(dim)] = len;
  Ref r(s);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.shape[size_t(d)];
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.shape[size_t(d)];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < len; ++i)
      for (int64_t k = 0; k < inner; ++k)
        r.v[size_t((o * len + i) * inner + k)] = x.v[size_t((o * x.shape[size_t(dim)] + start + i) * inner + k)];
  return r;
}

int64_t wrap(int64_t dim, int64_t rank) { return dim < 0 ? dim + rank : dim; }

// `requested` may hold a -1; `resolved` is the shape it stands for.
OpCase reshape_case(InputSpec x, Shape requested, Shape resolved) {
  OpCase c;
  c.op = "reshape";
  c.variant = "to " + shape_str(requested);
  c.inputs = {std::move(x)};
  c.run = [requested](const std::vector<Tensor>& t) { return std::vector<Tensor>{t[0].reshape(requested)}; };
  c.reference = [resolved](const std::vector<Ref>& t) {
    Ref r = t[0];
    r.shape = resolved;
    return std::vector<Ref>{r};
  };
  return c;
}

OpCase permute_case(InputSpec x, std::vector<int64_t> perm) {
  OpCase c;
  c.op = "permute";
  c.variant = "dims " + shape_str(perm);
  c.inputs = {std::move(x)};
  c.run = [perm](const std::vector<Tensor>& t) { return std::vector<Tensor>{t[0].permute(perm).contiguous()}; };
  c.reference = [perm](const std::vector<Ref>& t) { return std::vector<Ref>{ref_permute(t[0], perm)}; };
  return c;
}

OpCase narrow_case(InputSpec x, int64_t dim, int64_t start, int64_t len) {
  OpCase c;
  c.op = "narrow";
  c.variant = "dim " + std::to_string(dim) + ", start " + std::to_string(start) + ", length " + std::to_string(len);
  c.inputs = {std::move(x)};
  c.run = [=](const std::vector<Tensor>& t) { return std::vector<Tensor>{t[0].narrow(dim, start, len)}; };
  c.reference = [=](const std::vector<Ref>& t) {
    return std::vector<Ref>{ref_narrow(t[0], wrap(dim, t[0].dim()), start, len)};
  };
  return c;
}

// `requested` may hold -1 for a kept dim; `resolved` is the shape it stands for.
OpCase expand_case(InputSpec x, Shape requested, Shape resolved) {
  OpCase c;
  c.op = "expand";
  c.variant = "to " + shape_str(requested);
  c.inputs = {std::move(x)};
  c.run = [requested](const std::vector<Tensor>& t) { return std::vector<Tensor>{t[0].expand(requested)}; };
  c.reference = [resolved](const std::vector<Ref>& t) {
    return std::vector<Ref>{ref_broadcast(t[0], Ref(resolved), [](double a, double) { return a; })};
  };
  return c;
}

OpCase contiguous_case(InputSpec x) {
  OpCase c;
  c.op = "contiguous";
  c.inputs = {std::move(x)};
  c.run = [](const std::vector<Tensor>& t) { return std::vector<Tensor>{t[0].contiguous()}; };
  c.reference = [](const std::vector<Ref>& t) { return std::vector<Ref>{t[0]}; };
  return c;
}

OpCase cast_case(InputSpec x, DType via) {
  OpCase c;
  c.op = "cast";
  bool bf16 = via == DType::bf16;
  c.variant = bf16 ? "f32 -> bf16 -> f32 round trip keeps 8 bits of mantissa"
                   : "f32 -> f16 -> f32 round trip keeps 11 bits of mantissa";
  c.inputs = {std::move(x)};
  // rounding to nearest errs by at most half a unit in the last place; f16 subnormals (below 6e-5)
  // err by at most 3e-8 absolute
  c.forward_rtol = bf16 ? 1.0 / 256 : 1.0 / 1024, c.forward_atol = bf16 ? 1e-30 : 1e-7;
  c.grad_rtol = 2 * c.forward_rtol;  // the gradient makes the same round trip
  c.run = [via](const std::vector<Tensor>& t) {
    return std::vector<Tensor>{ops::cast(ops::cast(t[0], via), DType::f32)};
  };
  c.reference = [](const std::vector<Ref>& t) { return std::vector<Ref>{t[0]}; };
  return c;
}

constexpr uint64_t kRandomSeed = 404;

int draw_rank(Rng& rng) { return int(draw_int(rng, 1, 4)); }

InputSpec random_input(Rng& rng) { return in_random(rng, draw_small_shape(rng, draw_rank(rng))); }

// The prime factors of n (n >= 1), smallest first.
std::vector<int64_t> prime_factors(int64_t n) {
  std::vector<int64_t> f;
  for (int64_t p = 2; p * p <= n; ++p)
    for (; n % p == 0; n /= p) f.push_back(p);
  if (n > 1) f.push_back(n);
  return f;
}

// A shape of rank 1-4 with the same element count: the prime factors spread over random dims (dims
// that get none are 1).
Shape draw_same_numel(Rng& rng, int64_t numel) {
  Shape s(static_cast<size_t>(draw_int(rng, 1, 4)), 1);
  for (int64_t p : prime_factors(numel)) s[size_t(draw_int(rng, 0, int64_t(s.size()) - 1))] *= p;
  return s;
}

void add_random_reshape_and_permute(std::vector<OpCase>& cases) {
  add_random_cases(cases, kRandomSeed, "reshape", 4, [](Rng& rng) {
    InputSpec x = random_input(rng);
    Shape resolved = draw_same_numel(rng, shape_numel(x.shape)), requested = resolved;
    if (draw_bool(rng)) requested[size_t(draw_int(rng, 0, int64_t(requested.size()) - 1))] = -1;
    return reshape_case(x, requested, resolved);
  });
  add_random_cases(cases, kRandomSeed, "permute", 3, [](Rng& rng) {
    InputSpec x = random_input(rng);
    std::vector<int64_t> perm(x.shape.size());
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    return permute_case(x, perm);
  });
}

void add_random_narrow_and_expand(std::vector<OpCase>& cases) {
  add_random_cases(cases, kRandomSeed, "narrow", 4, [](Rng& rng) {
    InputSpec x = random_input(rng);
    int64_t dim = draw_dim(rng, int64_t(x.shape.size()));
    int64_t n = x.shape[size_t(wrap(dim, int64_t(x.shape.size())))];
    int64_t start = draw_int(rng, 0, n - 1);
    return narrow_case(x, dim, start, draw_int(rng, 1, n - start));
  });
  add_random_cases(cases, kRandomSeed, "expand", 4, [](Rng& rng) {
    Shape resolved = draw_small_shape(rng, draw_rank(rng));
    Shape from = broadcast_partner(rng, resolved), requested = resolved;
    size_t lead = resolved.size() - from.size();
    for (size_t i = lead; i < resolved.size(); ++i)
      if (from[i - lead] == resolved[i] && draw_bool(rng, 0.25)) requested[i] = -1;  // -1 keeps the size
    return expand_case(in_random(rng, from), requested, resolved);
  });
}

void add_random_shape_cases(std::vector<OpCase>& cases) {
  add_random_reshape_and_permute(cases);
  add_random_narrow_and_expand(cases);
  add_random_cases(cases, kRandomSeed, "contiguous", 3, [](Rng& rng) { return contiguous_case(random_input(rng)); });
  add_random_cases(cases, kRandomSeed, "cast", 4, [](Rng& rng) {
    InputSpec x = random_input(rng);
    return cast_case(x, draw_bool(rng) ? DType::bf16 : DType::f16);
  });
}

LD_OP_CASES {
  std::vector<OpCase> cases;
  cases.push_back(reshape_case(in({4, 6}, Layout::transposed), {2, -1, 3}, {2, 4, 3}));  // non-contiguous: must copy
  cases.push_back(permute_case(in({2, 3, 4}), {2, 0, 1}));
  cases.push_back(narrow_case(in({3, 7, 2}), 1, 2, 4));
  cases.push_back(expand_case(in({3, 1}), {2, 3, 4}, {2, 3, 4}));
  cases.push_back(contiguous_case(in({5, 3}, Layout::transposed)));
  cases.push_back(cast_case(in({4, 5}), DType::bf16));
  add_random_shape_cases(cases);
  return cases;
}

}  // namespace
}  // namespace ld::test
