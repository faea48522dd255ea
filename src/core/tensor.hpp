#pragma once
// Tensor: a cheap, shared handle to a view (shape, strides, offset, dtype) of a Storage, plus the
// autograd metadata (requires_grad, grad, the node that produced it). Copying a Tensor copies the
// handle; the data is shared. Ops that change values return new tensors; the in-place methods
// below (copy_, fill_, ...) are for optimizers and loaders and must not be recorded by autograd.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/device.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/shape.hpp"
#include "core/storage.hpp"

namespace ld {

class Tensor;
class Backend;
namespace autograd {
struct Node;
}

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;

  // autograd
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;         // accumulated gradient (leaves)
  std::shared_ptr<autograd::Node> grad_fn;  // producer (non-leaves)
  uint32_t output_nr = 0;                   // which output of grad_fn this is
  std::vector<std::function<void(const Tensor&)>> grad_ready_hooks;  // leaves: run once grad is final
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t dim() const { return int64_t(impl().shape.size()); }
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t offset() const { return impl().offset; }
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  Backend& backend() const;
  bool is_contiguous() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }

  // Raw pointer to the first element of this view (device memory for non-CPU tensors).
  void* raw() const;
  template <typename T>
  T* data() const {
    LD_CHECK(dtype() == dtype_of<T>::value, "tensor data<", dtype_name(dtype_of<T>::value), ">() on a ",
             dtype_name(dtype()), " tensor");
    return static_cast<T*>(raw());
  }

  // --- autograd
  bool requires_grad() const { return impl().requires_grad; }
  // Only on leaves (tensors no op produced): marks a trainable parameter or input.
  Tensor& set_requires_grad(bool value = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  void zero_grad() { impl().grad.reset(); }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  // Backward from a scalar (grad defaults to 1) or with an explicit upstream gradient.
  void backward(const Tensor& grad = Tensor()) const;
  // A handle to the same data with no autograd history.
  Tensor detach() const;
  // Called with the final gradient of this leaf during each backward, as soon as no later node can
  // add to it (data parallel starts its all-reduce bucket from here).
  void register_grad_ready_hook(std::function<void(const Tensor&)> hook);

  // --- views (differentiable, share storage)
  Tensor reshape(const Shape& shape) const;  // a view when strides allow, else a copy
  Tensor view(const Shape& shape) const;     // a view or an error
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end) const { return narrow(dim, start, end - start); }
  Tensor expand(const Shape& shape) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor contiguous() const;  // itself if already contiguous
  Tensor to(DType dtype) const;  // cast (itself if already that dtype)
  Tensor to(Device device) const;
  Tensor clone() const;

  // --- in place, never recorded by autograd
  Tensor& copy_(const Tensor& src);  // broadcasts src to this shape and casts
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }

  // --- host access
  template <typename T = float>
  std::vector<T> to_vector() const;
  double item() const;  // one-element tensors
  std::string str(int64_t max_elements = 16) const;

  TensorImpl& impl() const {
    LD_ASSERT(impl_, "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// --- factories
Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = kCPU);
Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = kCPU);
Tensor scalar_tensor(double value, DType dtype = DType::f32, Device device = kCPU);
template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = kCPU);
Tensor arange(int64_t n, DType dtype = DType::i64, Device device = kCPU);
// Random tensors from a Philox generator (the default one unless given); identical for any thread count.
class Generator;
Tensor randn(const Shape& shape, Generator* gen = nullptr, Device device = kCPU);                  // N(0, 1)
Tensor rand(const Shape& shape, Generator* gen = nullptr, Device device = kCPU);                   // U[0, 1)
Tensor uniform(const Shape& shape, float lo, float hi, Generator* gen = nullptr, Device device = kCPU);
Tensor normal(const Shape& shape, float mean, float std, Generator* gen = nullptr, Device device = kCPU);
// Wrap existing memory without copying; `owner` keeps it alive (an mmap, another buffer).
Tensor from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner, Device device = kCPU);

// Check that a tensor has the expected dtype; the message names the op and the argument.
void check_dtype(const Tensor& t, DType expected, const char* op, const char* arg);
void check_same_device(const Tensor& a, const Tensor& b, const char* op);

}  // namespace ld
