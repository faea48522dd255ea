#include <cstring>
#include <omp.h>

#include "backend/cpu/cpu_backend.hpp"
#include "core/allocator.hpp"

namespace ld {

CpuBackend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

int num_threads() { return omp_get_max_threads(); }
void set_num_threads(int n) {
  if (n > 0) omp_set_num_threads(n);
}

std::shared_ptr<Storage> CpuBackend::allocate(size_t nbytes) {
  void* ptr = CachingHostAllocator::instance().allocate(nbytes);
  return std::make_shared<Storage>(ptr, nbytes, kCPU,
                                   [](void* p, size_t n) { CachingHostAllocator::instance().deallocate(p, n); });
}

void CpuBackend::copy_from_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes) std::memcpy(dst, src, nbytes);
}
void CpuBackend::copy_to_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes) std::memcpy(dst, src, nbytes);
}

}  // namespace ld
