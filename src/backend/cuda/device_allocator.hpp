#pragma once
// A caching allocator for one device's memory. Sizes are rounded (512 B under 1 MiB, 2 MiB above)
// and freed blocks wait in exact-size free lists, so a training step that asks for the same sizes
// every step stops calling cudaMalloc (which synchronises the device) after the first. Blocks are
// only ever used on the backend's compute stream, or by copies ordered after it, so a block freed
// while a queued kernel still reads it can be handed out again at once: stream order keeps the
// later user behind the earlier one. When cudaMalloc fails, the cached blocks are released and the
// allocation retried once.
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

namespace ld::cuda {

struct DeviceAllocatorStats {
  int64_t system_allocations = 0;  // cudaMalloc calls that succeeded
  int64_t bytes_in_use = 0;
  int64_t bytes_cached = 0;  // in the free lists
};

class DeviceAllocator {
 public:
  explicit DeviceAllocator(int device) : device_(device) {}
  ~DeviceAllocator();  // returns the cached blocks (blocks still in use are left to process exit)
  DeviceAllocator(const DeviceAllocator&) = delete;
  DeviceAllocator& operator=(const DeviceAllocator&) = delete;

  static size_t rounded_size(size_t nbytes);
  void* allocate(size_t nbytes);  // nbytes already rounded
  void deallocate(void* ptr, size_t nbytes);
  void release_cached();
  DeviceAllocatorStats stats() const;

 private:
  int device_;
  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  DeviceAllocatorStats stats_;
};

}  // namespace ld::cuda
