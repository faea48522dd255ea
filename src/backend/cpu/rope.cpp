// placeholder
#include "backend/cpu/cpu_backend.hpp"
namespace ld {
void CpuBackend::rope(const RopeArgs&, const float*, float*) { not_implemented("rope"); }
}
