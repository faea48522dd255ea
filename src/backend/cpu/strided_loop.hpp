#pragma once
// Iterate an N-d index space in row-major order, calling body(offsets..., inner_len, inner_strides...)
// once per innermost row. Used by copies and broadcasting elementwise kernels.
#include <array>
#include <cstdint>
#include <vector>

#include <omp.h>

namespace ld::cpu {

// Drop size-1 dims and merge dims that are contiguous for every operand, so the common cases
// (contiguous tensors, row broadcasts) become one or two long loops.
template <size_t K>
void coalesce_dims(int& ndim, int64_t* shape, std::array<int64_t*, K> strides) {
  int out = 0;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] == 1) continue;
    if (out > 0) {
      bool merge = true;
      for (size_t k = 0; k < K; ++k) merge = merge && strides[k][out - 1] == strides[k][d] * shape[d];
      if (merge) {
        shape[out - 1] *= shape[d];
        for (size_t k = 0; k < K; ++k) strides[k][out - 1] = strides[k][d];
        continue;
      }
    }
    shape[out] = shape[d];
    for (size_t k = 0; k < K; ++k) strides[k][out] = strides[k][d];
    ++out;
  }
  if (out == 0) {  // a scalar: one row of one element
    shape[0] = 1;
    for (size_t k = 0; k < K; ++k) strides[k][0] = 0;
    out = 1;
  }
  ndim = out;
}

// K operands with element strides; row(const std::array<int64_t,K>& base, int64_t len, const std::array<int64_t,K>& inner)
template <size_t K, typename Row>
void for_each_row(int ndim_in, const int64_t* shape_in, std::array<const int64_t*, K> strides_in, Row&& row) {
  int ndim = std::max(ndim_in, 1);
  std::vector<int64_t> shape(size_t(ndim), 1);
  std::array<std::vector<int64_t>, K> st;
  std::array<int64_t*, K> st_ptr;
  for (size_t k = 0; k < K; ++k) {
    st[k].assign(size_t(ndim), 0);
    for (int d = 0; d < ndim_in; ++d) st[k][size_t(d)] = strides_in[k][d];
    st_ptr[k] = st[k].data();
  }
  for (int d = 0; d < ndim_in; ++d) shape[size_t(d)] = shape_in[d];
  for (int d = 0; d < ndim_in; ++d)
    if (shape[size_t(d)] == 0) return;
  coalesce_dims<K>(ndim, shape.data(), st_ptr);

  int64_t inner = shape[size_t(ndim - 1)];
  std::array<int64_t, K> inner_stride;
  for (size_t k = 0; k < K; ++k) inner_stride[k] = st[k][size_t(ndim - 1)];
  int64_t rows = 1;
  for (int d = 0; d < ndim - 1; ++d) rows *= shape[size_t(d)];

  auto base_of = [&](int64_t r) {
    std::array<int64_t, K> base{};
    for (int d = ndim - 2; d >= 0; --d) {
      int64_t i = r % shape[size_t(d)];
      r /= shape[size_t(d)];
      for (size_t k = 0; k < K; ++k) base[k] += i * st[k][size_t(d)];
    }
    return base;
  };
  int64_t total = rows * inner;
  // Small loops (every op of a decode step) run here without entering a parallel region: even one
  // with a false `if` clause costs libgomp a team set-up, about 0.5 us.
  if (total <= (1 << 15)) {
    if (rows == 1) {
      row(std::array<int64_t, K>{}, inner, inner_stride);
      return;
    }
    for (int64_t r = 0; r < rows; ++r) row(base_of(r), inner, inner_stride);
    return;
  }
  if (rows == 1) {
    // one long row: split it across threads
    int64_t chunk = (inner + omp_get_max_threads() - 1) / omp_get_max_threads();
#pragma omp parallel for schedule(static)
    for (int64_t start = 0; start < inner; start += chunk) {
      std::array<int64_t, K> base{};
      for (size_t k = 0; k < K; ++k) base[k] = start * inner_stride[k];
      row(base, std::min(chunk, inner - start), inner_stride);
    }
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) row(base_of(r), inner, inner_stride);
}

}  // namespace ld::cpu
