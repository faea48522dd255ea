// placeholder
#include "backend/cpu/cpu_backend.hpp"
namespace ld {
void CpuBackend::embedding_forward(int64_t, const void*, DType, int64_t, const float*, float*) { not_implemented("embedding_forward"); }
void CpuBackend::embedding_backward(int64_t, const void*, DType, int64_t, int64_t, const float*, float*) { not_implemented("embedding_backward"); }
}
