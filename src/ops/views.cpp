// View ops: new shape/strides over the same storage; each backward maps the gradient back.
#include <numeric>

#include "autograd/node.hpp"
#include "ops/ops.hpp"

namespace ld {

using autograd::make_node;
using autograd::Node;
using autograd::set_history;

namespace {

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(impl);
}

// Strides for viewing `x` as `shape` without a copy, if that is possible (as in PyTorch's
// computeStride): each run of merged input dims must be contiguous within itself.
std::optional<Shape> view_strides(const Tensor& x, const Shape& shape) {
  if (x.numel() == 0 || x.is_contiguous()) return contiguous_strides(shape);
  const Shape& old_shape = x.shape();
  const Shape& old_strides = x.strides();
  Shape strides(shape.size());
  int64_t view_d = int64_t(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[size_t(d)];
    if (d == 0 || (old_shape[size_t(d - 1)] != 1 &&
                   old_strides[size_t(d - 1)] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[size_t(view_d)] == 1)) {
        strides[size_t(view_d)] = view_numel * chunk_base_stride;
        view_numel *= shape[size_t(view_d)];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = old_strides[size_t(d - 1)];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return strides;
}

Shape infer_shape(const Shape& requested, int64_t numel, const char* op, const Shape& from) {
  Shape shape = requested;
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      LD_CHECK(infer_at < 0, op, ": only one dimension can be -1 in ", shape_str(requested));
      infer_at = int64_t(i);
    } else {
      LD_CHECK(shape[i] >= 0, op, ": invalid size in ", shape_str(requested));
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    LD_CHECK(known > 0 && numel % known == 0, op, ": cannot reshape ", shape_str(from), " to ", shape_str(requested));
    shape[size_t(infer_at)] = numel / known;
  }
  LD_CHECK(shape_numel(shape) == numel, op, ": cannot reshape ", shape_str(from), " (", numel, " elements) to ",
           shape_str(requested));
  return shape;
}

struct ReshapeBackward : Node {
  Shape input_shape;
  explicit ReshapeBackward(Shape s) : input_shape(std::move(s)) {}
  const char* name() const override { return "ReshapeBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {g[0].reshape(input_shape)}; }
};

struct PermuteBackward : Node {
  std::vector<int64_t> inverse;
  explicit PermuteBackward(std::vector<int64_t> inv) : inverse(std::move(inv)) {}
  const char* name() const override { return "PermuteBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {g[0].permute(inverse)}; }
};

struct NarrowBackward : Node {
  Shape input_shape;
  int64_t dim, start;
  NarrowBackward(Shape s, int64_t d, int64_t st) : input_shape(std::move(s)), dim(d), start(st) {}
  const char* name() const override { return "NarrowBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override {
    Tensor out = zeros(input_shape, g[0].dtype(), g[0].device());
    out.narrow(dim, start, g[0].size(dim)).copy_(g[0]);
    return {out};
  }
};

struct ExpandBackward : Node {
  Shape input_shape;
  explicit ExpandBackward(Shape s) : input_shape(std::move(s)) {}
  const char* name() const override { return "ExpandBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {ops::sum_to_shape(g[0], input_shape)}; }
};

struct IdentityBackward : Node {
  const char* name() const override { return "ContiguousBackward"; }
  std::vector<Tensor> backward(const std::vector<Tensor>& g) override { return {g[0]}; }
};

}  // namespace

Tensor Tensor::view(const Shape& requested) const {
  Shape shape = infer_shape(requested, numel(), "view", this->shape());
  auto strides = view_strides(*this, shape);
  LD_CHECK(strides, "view: tensor of shape ", shape_str(this->shape()), " with strides ", shape_str(this->strides()),
           " cannot be viewed as ", shape_str(shape), " without a copy; use reshape");
  Tensor out = make_view(*this, shape, *strides, offset());
  set_history(out, make_node<ReshapeBackward>({*this}, this->shape()));
  return out;
}

Tensor Tensor::reshape(const Shape& requested) const {
  Shape shape = infer_shape(requested, numel(), "reshape", this->shape());
  if (view_strides(*this, shape)) return view(shape);
  return contiguous().view(shape);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  LD_CHECK(int64_t(dims.size()) == dim(), "permute: ", dims.size(), " dims given for a tensor of ", dim(), " dims");
  Shape shape(dims.size()), strides(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    LD_CHECK(inverse[size_t(d)] < 0, "permute: dim ", d, " repeated");
    inverse[size_t(d)] = int64_t(i);
    shape[i] = this->shape()[size_t(d)];
    strides[i] = this->strides()[size_t(d)];
  }
  Tensor out = make_view(*this, shape, strides, offset());
  set_history(out, make_node<PermuteBackward>({*this}, inverse));
  return out;
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> dims(static_cast<size_t>(dim()));
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[size_t(wrap_dim(d0, dim(), "transpose"))], dims[size_t(wrap_dim(d1, dim(), "transpose"))]);
  return permute(dims);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  int64_t n = shape()[size_t(d)];
  LD_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow: range [", start, ", ", start + length,
           ") is out of bounds for dim ", d, " of size ", n, " (shape ", shape_str(shape()), ")");
  Shape s = shape();
  s[size_t(d)] = length;
  Tensor out = make_view(*this, s, strides(), offset() + start * strides()[size_t(d)]);
  set_history(out, make_node<NarrowBackward>({*this}, shape(), d, start));
  return out;
}

Tensor Tensor::expand(const Shape& requested) const {
  LD_CHECK(requested.size() >= shape().size(), "expand: cannot expand ", shape_str(shape()), " to fewer dims ",
           shape_str(requested));
  size_t lead = requested.size() - shape().size();
  Shape s(requested.size()), st(requested.size(), 0);
  for (size_t i = 0; i < requested.size(); ++i) {
    if (i < lead) {
      LD_CHECK(requested[i] >= 0, "expand: new leading dims need explicit sizes, got ", shape_str(requested));
      s[i] = requested[i];
      continue;
    }
    int64_t have = shape()[i - lead];
    int64_t want = requested[i] == -1 ? have : requested[i];
    LD_CHECK(have == want || have == 1, "expand: cannot expand ", shape_str(shape()), " to ", shape_str(requested),
             " (dim ", i, ": ", have, " vs ", want, ")");
    s[i] = want;
    st[i] = have == want ? strides()[i - lead] : 0;
  }
  if (s == shape()) return *this;
  Tensor out = make_view(*this, s, st, offset());
  set_history(out, make_node<ExpandBackward>({*this}, shape()));
  return out;
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return view(s);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  LD_CHECK(shape()[size_t(d)] == 1, "squeeze: dim ", d, " has size ", shape()[size_t(d)], ", not 1");
  Shape s = shape();
  s.erase(s.begin() + d);
  return view(s);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  start_dim = wrap_dim(start_dim, dim(), "flatten");
  end_dim = wrap_dim(end_dim, dim(), "flatten");
  Shape s(shape().begin(), shape().begin() + start_dim);
  int64_t merged = 1;
  for (int64_t i = start_dim; i <= end_dim; ++i) merged *= shape()[size_t(i)];
  s.push_back(merged);
  s.insert(s.end(), shape().begin() + end_dim + 1, shape().end());
  return reshape(s);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous() && offset() >= 0) return *this;
  Tensor out = empty(shape(), dtype(), device());
  {
    autograd::NoGradGuard no_grad;
    out.copy_(*this);
  }
  set_history(out, make_node<IdentityBackward>({*this}));
  return out;
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  set_history(out, make_node<IdentityBackward>({*this}));
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  return ops::cast(*this, target);
}

}  // namespace ld
