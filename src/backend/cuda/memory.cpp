// Device memory, streams and host <-> device copies of the CUDA backend, and the registry of one
// backend per device.
#include <cuda_runtime.h>

#include <mutex>
#include <vector>

#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/cuda_check.hpp"
#include "backend/cuda/device_allocator.hpp"
#include "backend/cuda/gemm_context.hpp"

namespace ld {

namespace cuda {

size_t DeviceAllocator::rounded_size(size_t nbytes) {
  constexpr size_t kSmall = size_t(1) << 20, kSmallStep = 512, kLargeStep = size_t(2) << 20;
  const size_t step = nbytes < kSmall ? kSmallStep : kLargeStep;
  return std::max<size_t>(step, (nbytes + step - 1) / step * step);
}

void* DeviceAllocator::allocate(size_t nbytes) {
  std::lock_guard lock(mutex_);
  auto it = free_.find(nbytes);
  if (it != free_.end() && !it->second.empty()) {
    void* ptr = it->second.back();
    it->second.pop_back();
    stats_.bytes_cached -= int64_t(nbytes);
    stats_.bytes_in_use += int64_t(nbytes);
    return ptr;
  }
  LD_CUDA_CHECK(cudaSetDevice(device_));
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, nbytes);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clear the sticky-free error before retrying
    LD_CUDA_CHECK(cudaDeviceSynchronize());  // a queued kernel may still use a cached block
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) LD_CUDA_CHECK(cudaFree(p));
    free_.clear();
    stats_.bytes_cached = 0;
    err = cudaMalloc(&ptr, nbytes);
  }
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    LD_FAIL("out of memory on cuda:", device_, ": cannot allocate ", nbytes, " bytes with ", stats_.bytes_in_use,
            " bytes in use (", cudaGetErrorString(err), ")");
  }
  ++stats_.system_allocations;
  stats_.bytes_in_use += int64_t(nbytes);
  return ptr;
}

void DeviceAllocator::deallocate(void* ptr, size_t nbytes) {
  std::lock_guard lock(mutex_);
  free_[nbytes].push_back(ptr);
  stats_.bytes_in_use -= int64_t(nbytes);
  stats_.bytes_cached += int64_t(nbytes);
}

void DeviceAllocator::release_cached() {
  std::lock_guard lock(mutex_);
  LD_CUDA_CHECK(cudaSetDevice(device_));
  LD_CUDA_CHECK(cudaDeviceSynchronize());  // a queued kernel may still use a cached block
  for (auto& [size, blocks] : free_)
    for (void* p : blocks) LD_CUDA_CHECK(cudaFree(p));
  free_.clear();
  stats_.bytes_cached = 0;
}

DeviceAllocatorStats DeviceAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

DeviceAllocator::~DeviceAllocator() {
  for (auto& [size, blocks] : free_)
    for (void* p : blocks) (void)cudaFree(p);
}

}  // namespace cuda

CudaBackend::CudaBackend(int index) : index_(index), allocator_(std::make_unique<cuda::DeviceAllocator>(index)) {
  activate();
  LD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  LD_CUDA_CHECK(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking));
  gemm_ = std::make_unique<cuda::GemmContext>(*this);
}

// Backends live until process exit (cuda_backend never deletes them); this runs only for a backend
// made by hand.
CudaBackend::~CudaBackend() {
  gemm_.reset();
  (void)cudaStreamDestroy(stream_);
  (void)cudaStreamDestroy(copy_stream_);
}

void CudaBackend::activate() const { LD_CUDA_CHECK(cudaSetDevice(index_)); }

CUstream_st* CudaBackend::stream() {
  activate();
  return stream_;
}

std::shared_ptr<Storage> CudaBackend::allocate(size_t nbytes) {
  const size_t size = cuda::DeviceAllocator::rounded_size(nbytes);
  void* ptr = allocator_->allocate(size);
  cuda::DeviceAllocator* pool = allocator_.get();
  return std::make_shared<Storage>(ptr, nbytes, device(), [pool, size](void* p, size_t) { pool->deallocate(p, size); });
}

// The copy stream waits for everything queued on the compute stream: the copy may read what a
// kernel writes, or write a block that a queued kernel still reads.
void CudaBackend::order_copy_after_compute() {
  cudaEvent_t done;
  LD_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  LD_CUDA_CHECK(cudaEventRecord(done, stream_));
  LD_CUDA_CHECK(cudaStreamWaitEvent(copy_stream_, done, 0));
  LD_CUDA_CHECK(cudaEventDestroy(done));
}

// Both copies return when the data has arrived: the host buffer may be freed or read right after.
// cudaMemcpyDefault (unified addressing) also serves a device-to-device Tensor::to.
void CudaBackend::copy_from_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  activate();
  order_copy_after_compute();
  LD_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, copy_stream_));
  LD_CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
}

void CudaBackend::copy_to_host(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  activate();
  order_copy_after_compute();
  LD_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, copy_stream_));
  LD_CUDA_CHECK(cudaStreamSynchronize(copy_stream_));
}

void CudaBackend::synchronize() {
  activate();
  LD_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

std::string cuda_unavailable_reason() {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
  }
  return count == 0 ? "the driver reports 0 devices" : "";
}

CudaBackend& cuda_backend(int index) {
  static std::mutex mutex;
  static std::vector<CudaBackend*> backends;  // never deleted: tensors may outlive static destructors
  static const int count = cuda_device_count();  // fixed for the process; backend_for asks per op
  std::lock_guard lock(mutex);
  LD_CHECK(count > 0, "no CUDA device is available (", cuda_unavailable_reason(), ")");
  LD_CHECK(index >= 0 && index < count, "device cuda:", index, " does not exist: this machine has ", count,
           " CUDA device", count == 1 ? "" : "s", " (cuda:0 to cuda:", count - 1, ")");
  if (backends.empty()) backends.assign(size_t(count), nullptr);
  if (!backends[size_t(index)]) backends[size_t(index)] = new CudaBackend(index);
  return *backends[size_t(index)];
}

}  // namespace ld
