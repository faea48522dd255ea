// placeholder
#include "ops/ops.hpp"
namespace ld::ops {
Tensor attention(const Tensor&, const Tensor&, const Tensor&, const AttentionOptions&) { LD_FAIL("attention: not implemented yet"); }
}
