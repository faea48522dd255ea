// placeholder
#include "backend/cpu/cpu_backend.hpp"
namespace ld {
void CpuBackend::attention_forward(const AttentionArgs&, const float*, const float*, const float*, float*, float*) { not_implemented("attention_forward"); }
void CpuBackend::attention_backward(const AttentionArgs&, const float*, const float*, const float*, const float*, const float*, const float*, float*, float*, float*) { not_implemented("attention_backward"); }
}
