// placeholder: kernels being written (helper: norms/softmax/cross-entropy)
#include "backend/cpu/cpu_backend.hpp"
namespace ld {
void CpuBackend::layernorm_forward(int64_t, int64_t, const float*, const float*, const float*, const float*, float, float*, float*, float*, float*) { not_implemented("layernorm_forward"); }
void CpuBackend::layernorm_backward(int64_t, int64_t, const float*, const float*, const float*, const float*, const float*, float*, float*, float*) { not_implemented("layernorm_backward"); }
void CpuBackend::rmsnorm_forward(int64_t, int64_t, const float*, const float*, const float*, float, float*, float*, float*) { not_implemented("rmsnorm_forward"); }
void CpuBackend::rmsnorm_backward(int64_t, int64_t, const float*, const float*, const float*, const float*, float*, float*) { not_implemented("rmsnorm_backward"); }
}
