#include "core/allocator.hpp"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "core/error.hpp"

namespace ld {

namespace {
constexpr size_t kAlignment = 64;
constexpr size_t kHugePage = size_t(2) << 20;

struct Pool {
  std::mutex mutex;
  std::map<size_t, std::vector<void*>> free_blocks;  // exact rounded size -> blocks
  AllocatorStats stats;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may be freed during static destruction
  return *p;
}
// Blocks of 2 MiB and more start on a huge-page boundary and ask for transparent huge pages (the
// kernel's default here is "madvise"): decoding streams every weight once per token, and with 4 KiB
// pages the TLB misses cost 3-7% (GPT-2 124M f32 decode 84 -> 90 tok/s, small 1014 -> 1046). Only
// whole huge pages are advised, so a block's tail never takes more memory than it uses.
void* system_allocate(size_t size) {
  if (size < kHugePage) return std::aligned_alloc(kAlignment, size);
  void* ptr = nullptr;
  if (posix_memalign(&ptr, kHugePage, size) != 0) return nullptr;
  madvise(ptr, size / kHugePage * kHugePage, MADV_HUGEPAGE);  // advice only: failure changes nothing
  return ptr;
}
}  // namespace

CachingHostAllocator& CachingHostAllocator::instance() {
  static CachingHostAllocator a;
  return a;
}

CachingHostAllocator::~CachingHostAllocator() = default;

size_t CachingHostAllocator::round_size(size_t nbytes) {
  if (nbytes == 0) nbytes = 1;
  // Round to 64 bytes for small blocks and to 4 KiB pages for large ones, so that slightly different
  // sizes (odd sequence lengths) share blocks without wasting more than a page.
  size_t unit = nbytes < (1u << 20) ? kAlignment : 4096;
  return (nbytes + unit - 1) / unit * unit;
}

void* CachingHostAllocator::allocate(size_t nbytes) {
  size_t size = round_size(nbytes);
  Pool& p = pool();
  {
    std::lock_guard lock(p.mutex);
    auto it = p.free_blocks.find(size);
    if (it != p.free_blocks.end() && !it->second.empty()) {
      void* ptr = it->second.back();
      it->second.pop_back();
      p.stats.bytes_cached -= size;
      p.stats.bytes_in_use += size;
      p.stats.peak_bytes_in_use = std::max(p.stats.peak_bytes_in_use, p.stats.bytes_in_use);
      ++p.stats.pool_hits;
      return ptr;
    }
  }
  void* ptr = system_allocate(size);
  if (!ptr) {
    release_cached();
    ptr = system_allocate(size);
  }
  LD_CHECK(ptr, "out of host memory allocating ", size, " bytes");
  std::lock_guard lock(p.mutex);
  p.stats.bytes_in_use += size;
  p.stats.peak_bytes_in_use = std::max(p.stats.peak_bytes_in_use, p.stats.bytes_in_use);
  ++p.stats.system_allocations;
  return ptr;
}

void CachingHostAllocator::deallocate(void* ptr, size_t nbytes) {
  if (!ptr) return;
  size_t size = round_size(nbytes);
  Pool& p = pool();
  std::lock_guard lock(p.mutex);
  p.free_blocks[size].push_back(ptr);
  p.stats.bytes_in_use -= size;
  p.stats.bytes_cached += size;
}

void CachingHostAllocator::release_cached() {
  Pool& p = pool();
  std::lock_guard lock(p.mutex);
  for (auto& [size, blocks] : p.free_blocks) {
    for (void* b : blocks) std::free(b);
    p.stats.bytes_cached -= size * blocks.size();
    blocks.clear();
  }
}

AllocatorStats CachingHostAllocator::stats() const {
  Pool& p = pool();
  std::lock_guard lock(p.mutex);
  return p.stats;
}

}  // namespace ld
