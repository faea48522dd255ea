// placeholder
#include "backend/cpu/cpu_backend.hpp"
namespace ld {
void CpuBackend::cross_entropy_forward(const CrossEntropyArgs&, float*, float*) { not_implemented("cross_entropy_forward"); }
void CpuBackend::cross_entropy_backward(const CrossEntropyArgs&, const float*, const float*, float*) { not_implemented("cross_entropy_backward"); }
}
