// placeholder
#include "ops/ops.hpp"
namespace ld::ops {
Tensor rope(const Tensor&, const Tensor&, const RopeOptions&) { LD_FAIL("rope: not implemented yet"); }
}
