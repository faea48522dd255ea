#pragma once
// Naive float64 building blocks for op references.
#include <algorithm>
#include <cmath>
#include <functional>

#include "ops/op_harness.hpp"
#include "ops/ops.hpp"

namespace ld::test {

// Broadcast two refs elementwise, NumPy rules.
inline Ref ref_broadcast(const Ref& a, const Ref& b, const std::function<double(double, double)>& f) {
  size_t n = std::max(a.shape.size(), b.shape.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.shape.size() ? 1 : a.shape[i - (n - a.shape.size())];
    int64_t db = i < n - b.shape.size() ? 1 : b.shape[i - (n - b.shape.size())];
    out[i] = std::max(da, db);
  }
  Ref r(out);
  Shape idx(n, 0);
  for (int64_t flat = 0; flat < r.numel(); ++flat) {
    int64_t rem = flat;
    for (size_t d = n; d-- > 0;) idx[d] = rem % out[d], rem /= out[d];
    auto pick = [&](const Ref& x) {
      int64_t off = 0;
      size_t lead = n - x.shape.size();
      for (size_t d = 0; d < x.shape.size(); ++d) off = off * x.shape[d] + (x.shape[d] == 1 ? 0 : idx[lead + d]);
      return x.v[size_t(off)];
    };
    r.v[size_t(flat)] = f(pick(a), pick(b));
  }
  return r;
}

inline Ref ref_map(const Ref& a, const std::function<double(double)>& f) {
  Ref r = a;
  for (auto& x : r.v) x = f(x);
  return r;
}

// rows x cols view helpers over the last dim
inline int64_t ref_rows(const Ref& r) { return r.shape.empty() ? 1 : r.numel() / r.shape.back(); }
inline int64_t ref_cols(const Ref& r) { return r.shape.empty() ? 1 : r.shape.back(); }

// Permute a Ref's dims: out.shape[i] = in.shape[perm[i]]
inline Ref ref_permute(const Ref& a, const std::vector<int64_t>& perm) {
  Shape s(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) s[i] = a.shape[size_t(perm[i])];
  Ref r(s);
  Shape in_strides = contiguous_strides(a.shape);
  Shape idx(s.size(), 0);
  for (int64_t flat = 0; flat < r.numel(); ++flat) {
    int64_t rem = flat, off = 0;
    for (size_t d = s.size(); d-- > 0;) idx[d] = rem % s[d], rem /= s[d];
    for (size_t d = 0; d < s.size(); ++d) off += idx[d] * in_strides[size_t(perm[d])];
    r.v[size_t(flat)] = a.v[size_t(off)];
  }
  return r;
}

inline Ref ref_matmul(const Ref& a, const Ref& b) {  // [.., M, K] @ [.., K, N] with batch broadcast
  int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  Shape ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  size_t nb = std::max(ab.size(), bb.size());
  Shape batch(nb);
  for (size_t i = 0; i < nb; ++i) {
    int64_t da = i < nb - ab.size() ? 1 : ab[i - (nb - ab.size())];
    int64_t db = i < nb - bb.size() ? 1 : bb[i - (nb - bb.size())];
    batch[i] = std::max(da, db);
  }
  Shape os = batch;
  os.push_back(m), os.push_back(n);
  Ref r(os);
  int64_t nbatch = shape_numel(batch);
  for (int64_t bi = 0; bi < nbatch; ++bi) {
    auto off = [&](const Shape& xb) {
      int64_t rem = bi, o = 0, mul = 1;
      std::vector<int64_t> idx(nb);
      for (size_t d = nb; d-- > 0;) idx[d] = rem % batch[d], rem /= batch[d];
      size_t lead = nb - xb.size();
      for (size_t d = xb.size(); d-- > 0;) o += (xb[d] == 1 ? 0 : idx[lead + d]) * mul, mul *= xb[d];
      return o;
    };
    int64_t oa = off(ab) * m * k, ob = off(bb) * k * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t t = 0; t < k; ++t) s += a.v[size_t(oa + i * k + t)] * b.v[size_t(ob + t * n + j)];
        r.v[size_t(bi * m * n + i * n + j)] = s;
      }
  }
  return r;
}

// Naive float64 cross-entropy with PyTorch's semantics: per row
//   loss = (1-e) * (-log p_t) + e * mean_j(-log p_j),  0 for ignored rows;
// mean divides by the number of rows not ignored (0 when all are).
inline Ref ref_cross_entropy(const Ref& logits, const Ref& targets, const ops::CrossEntropyOptions& o) {
  int64_t vocab = ref_cols(logits), rows = ref_rows(logits);
  Ref per_row(targets.shape);
  double total = 0;
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r) {
    int64_t t = int64_t(targets.v[size_t(r)]);
    if (t == o.ignore_index) continue;
    const double* x = logits.v.data() + r * vocab;
    double m = x[0], s = 0, mean_neg_logp = 0;
    for (int64_t j = 0; j < vocab; ++j) m = std::max(m, x[j]);
    for (int64_t j = 0; j < vocab; ++j) s += std::exp(x[j] - m);
    double lse = m + std::log(s);
    for (int64_t j = 0; j < vocab; ++j) mean_neg_logp += (lse - x[j]) / double(vocab);
    double loss = (1 - o.label_smoothing) * (lse - x[t]) + o.label_smoothing * mean_neg_logp;
    per_row.v[size_t(r)] = loss;
    total += loss;
    ++counted;
  }
  if (o.reduction == ops::CrossEntropyOptions::Reduction::none) return per_row;
  return Ref({}, o.reduction == ops::CrossEntropyOptions::Reduction::sum ? total : (counted ? total / double(counted) : 0.0));
}

}  // namespace ld::test
