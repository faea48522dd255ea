#pragma once
// 64-byte aligned host memory with a caching pool. A training step asks for the same sizes every
// step; serving those from the pool avoids malloc/free and the page faults of fresh mmap'd memory.
#include <cstddef>
#include <cstdint>

namespace ld {

struct AllocatorStats {
  size_t bytes_in_use = 0;
  size_t peak_bytes_in_use = 0;
  size_t bytes_cached = 0;
  uint64_t system_allocations = 0;  // times the pool had to ask the OS
  uint64_t pool_hits = 0;
};

class CachingHostAllocator {
 public:
  static CachingHostAllocator& instance();
  void* allocate(size_t nbytes);
  void deallocate(void* ptr, size_t nbytes);
  void release_cached();  // give every cached block back to the OS
  AllocatorStats stats() const;
  static size_t round_size(size_t nbytes);

 private:
  CachingHostAllocator() = default;
  ~CachingHostAllocator();
};

}  // namespace ld
