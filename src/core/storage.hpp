#pragma once
#include <cstddef>
#include <functional>
#include <memory>

#include "core/device.hpp"

namespace ld {

// A block of device memory shared by every tensor that views it. Who frees it is decided by the
// creator: a backend's allocator, an mmap'd file, or nobody (borrowed memory).
class Storage {
 public:
  using Release = std::function<void(void*, size_t)>;
  Storage(void* ptr, size_t nbytes, Device device, Release release)
      : ptr_(ptr), nbytes_(nbytes), device_(device), release_(std::move(release)) {}
  ~Storage() {
    if (release_) release_(ptr_, nbytes_);
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return ptr_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* ptr_;
  size_t nbytes_;
  Device device_;
  Release release_;
};

}  // namespace ld
