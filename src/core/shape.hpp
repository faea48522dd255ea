#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ld {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3, 4]"
// Normalise a possibly negative dim against ndim; `what` names the op for the error message.
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* what);
// Broadcast two shapes NumPy-style or throw naming the op and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* what);

}  // namespace ld
