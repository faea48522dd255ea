#include "core/tensor.hpp"

#include <cstring>
#include <sstream>

#include "autograd/engine.hpp"
#include "backend/backend.hpp"
#include "core/rng.hpp"

namespace ld {

int64_t Tensor::size(int64_t d) const { return shape()[size_t(wrap_dim(d, dim(), "size"))]; }
int64_t Tensor::stride(int64_t d) const { return strides()[size_t(wrap_dim(d, dim(), "stride"))]; }
Backend& Tensor::backend() const { return backend_for(device()); }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

void* Tensor::raw() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * int64_t(dtype_size(dtype()));
}

Tensor& Tensor::set_requires_grad(bool value) {
  LD_CHECK(is_leaf(), "set_requires_grad: only leaf tensors (not produced by an op) can be marked");
  LD_CHECK(!value || is_floating(dtype()), "set_requires_grad: a ", dtype_name(dtype()),
           " tensor cannot require gradients (floating dtypes only)");
  impl().requires_grad = value;
  return *this;
}

void Tensor::backward(const Tensor& grad) const {
  LD_CHECK(requires_grad(), "backward: the tensor does not require grad (no parameter or input with "
                            "requires_grad took part in computing it)");
  Tensor seed = grad;
  if (!seed.defined()) {
    LD_CHECK(numel() == 1, "backward: a gradient must be given for a non-scalar tensor of shape ",
             shape_str(shape()));
    seed = ones(shape(), dtype(), device());
  }
  LD_CHECK(seed.shape() == shape(), "backward: gradient shape ", shape_str(seed.shape()),
           " does not match tensor shape ", shape_str(shape()));
  autograd::run_backward({*this}, {seed});
}

Tensor Tensor::detach() const {
  auto out = std::make_shared<TensorImpl>();
  out->storage = impl().storage;
  out->shape = shape();
  out->strides = strides();
  out->offset = offset();
  out->dtype = dtype();
  return Tensor(out);
}

void Tensor::register_grad_ready_hook(std::function<void(const Tensor&)> hook) {
  LD_CHECK(is_leaf() && requires_grad(), "register_grad_ready_hook: only on leaves that require grad");
  impl().grad_ready_hooks.push_back(std::move(hook));
}

Tensor& Tensor::copy_(const Tensor& src) {
  LD_CHECK(device() == src.device(), "copy_: source on ", src.device().str(), ", destination on ",
           device().str());
  Shape b = broadcast_shapes(shape(), src.shape(), "copy_");
  LD_CHECK(b == shape(), "copy_: cannot broadcast source ", shape_str(src.shape()), " to ",
           shape_str(shape()));
  // expand src to our shape by giving broadcast dims stride 0
  Shape src_strides(shape().size(), 0);
  size_t lead = shape().size() - src.shape().size();
  for (size_t i = 0; i < src.shape().size(); ++i)
    src_strides[lead + i] = src.shape()[i] == 1 ? 0 : src.strides()[i];
  backend().copy_strided(int(dim()), shape().data(), src.dtype(), src.raw(), src_strides.data(), dtype(), raw(),
                         strides().data());
  return *this;
}

Tensor& Tensor::fill_(double value) {
  if (is_contiguous()) {
    backend().fill(dtype(), raw(), numel(), value);
  } else {
    copy_(full({}, value, dtype(), device()));
  }
  return *this;
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = dtype() == dtype_of<T>::value ? contiguous() : to(dtype_of<T>::value);
  c = c.to(kCPU);
  std::vector<T> out(size_t(c.numel()));
  if (!out.empty()) std::memcpy(out.data(), c.raw(), out.size() * sizeof(T));
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<uint8_t> Tensor::to_vector<uint8_t>() const;
template std::vector<int8_t> Tensor::to_vector<int8_t>() const;

double Tensor::item() const {
  LD_CHECK(numel() == 1, "item: tensor of shape ", shape_str(shape()), " has ", numel(), " elements, not 1");
  if (dtype() == DType::i64) return double(to_vector<int64_t>()[0]);
  return double(to_vector<float>()[0]);
}

std::string Tensor::str(int64_t max_elements) const {
  std::ostringstream os;
  os << "Tensor(" << shape_str(shape()) << ", " << dtype_name(dtype()) << ", " << device().str() << ") [";
  std::vector<float> v = to(DType::f32).to_vector<float>();
  for (int64_t i = 0; i < int64_t(v.size()) && i < max_elements; ++i) os << (i ? ", " : "") << v[size_t(i)];
  if (int64_t(v.size()) > max_elements) os << ", ...";
  os << "]";
  return os.str();
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), target);
  // Device to device: the destination's copy orders itself after its own stream only, so the
  // source's queued writes must be done first.
  if (device().kind != DeviceKind::cpu && target.kind != DeviceKind::cpu) src.backend().synchronize();
  if (target.kind == DeviceKind::cpu)
    src.backend().copy_to_host(out.raw(), src.raw(), nbytes());
  else
    out.backend().copy_from_host(out.raw(), src.raw(), nbytes());
  return out;
}

// --- factories

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) LD_CHECK(s >= 0, "empty: negative size in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = backend_for(device).allocate(size_t(shape_numel(shape)) * dtype_size(dtype));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.backend().fill(dtype, t.raw(), t.numel(), value);
  return t;
}
Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor scalar_tensor(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device) {
  LD_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
           " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, dtype_of<T>::value, device);
  if (!values.empty()) t.backend().copy_from_host(t.raw(), values.data(), values.size() * sizeof(T));
  return t;
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&, Device);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&, Device);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&, Device);
template Tensor from_vector<uint8_t>(const std::vector<uint8_t>&, const Shape&, Device);
template Tensor from_vector<int8_t>(const std::vector<int8_t>&, const Shape&, Device);

Tensor arange(int64_t n, DType dtype, Device device) {
  std::vector<int64_t> v(static_cast<size_t>(std::max<int64_t>(n, 0)));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = i;
  Tensor t = from_vector(v, {n}, device);
  return dtype == DType::i64 ? t : t.to(dtype);
}

namespace {
Tensor random_tensor(const Shape& shape, RandomKind kind, float a, float b, Generator* gen, Device device) {
  Generator& g = gen ? *gen : default_generator();
  Tensor t = empty(shape, DType::f32, device);
  uint64_t offset = g.advance(uint64_t(t.numel()));
  t.backend().random_fill(kind, t.data<float>(), t.numel(), g.seed(), offset, a, b);
  return t;
}
}  // namespace

Tensor randn(const Shape& shape, Generator* gen, Device device) {
  return random_tensor(shape, RandomKind::normal, 0.0f, 1.0f, gen, device);
}
Tensor rand(const Shape& shape, Generator* gen, Device device) {
  return random_tensor(shape, RandomKind::uniform, 0.0f, 1.0f, gen, device);
}
Tensor uniform(const Shape& shape, float lo, float hi, Generator* gen, Device device) {
  return random_tensor(shape, RandomKind::uniform, lo, hi, gen, device);
}
Tensor normal(const Shape& shape, float mean, float std, Generator* gen, Device device) {
  return random_tensor(shape, RandomKind::normal, mean, std, gen, device);
}

Tensor from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> owner, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  size_t nbytes = size_t(shape_numel(shape)) * dtype_size(dtype);
  impl->storage = std::make_shared<Storage>(data, nbytes, device, [owner](void*, size_t) mutable { owner.reset(); });
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

void check_dtype(const Tensor& t, DType expected, const char* op, const char* arg) {
  LD_CHECK(t.dtype() == expected, op, ": ", arg, " must be ", dtype_name(expected), ", got ",
           dtype_name(t.dtype()), " (shape ", shape_str(t.shape()), ")");
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  LD_CHECK(a.device() == b.device(), op, ": tensors on different devices (", a.device().str(), " and ",
           b.device().str(), ")");
}

}  // namespace ld
