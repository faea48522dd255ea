#include "dist/data_parallel.hpp"

#include <algorithm>
#include <chrono>

#include "core/error.hpp"

namespace ld::dist {

using Clock = std::chrono::steady_clock;

struct DataParallel::Bucket {
  std::vector<size_t> params;
  int64_t size = 0;    // elements of its parameters
  int64_t padded = 0;  // size rounded up to a multiple of the ranks (the chunks are equal)
  Tensor buffer;       // [padded]: the gradients packed (stage 2: only while in flight)
  Tensor shard;        // stage 2: [padded / ranks], this rank's chunk of the averaged gradient
  size_t arrived = 0;
  std::vector<char> got;  // per entry of params: its gradient arrived this step
  WorkPtr work;
};

struct DataParallel::Hooks {
  DataParallel* owner = nullptr;
};

DataParallel::DataParallel(Communicator& comm, const std::vector<std::pair<std::string, Tensor>>& named_params,
                           DataParallelOptions options)
    : comm_(comm), options_(options), hooks_(std::make_shared<Hooks>()) {
  LD_CHECK(options_.zero_stage >= 0 && options_.zero_stage <= 2, "dist.zero: ", options_.zero_stage,
           " is not a ZeRO stage (0, 1 or 2)");
  LD_CHECK(options_.bucket_bytes > 0, "dist.bucket_mb must be positive");
  build_buckets(named_params);
  build_segments();
  hooks_->owner = this;
  for (size_t i = 0; i < params_.size(); ++i)
    params_[i].register_grad_ready_hook([hooks = hooks_, i](const Tensor& grad) {
      if (hooks->owner) hooks->owner->on_grad_ready(i, grad);
    });
}

DataParallel::~DataParallel() { hooks_->owner = nullptr; }

void DataParallel::build_buckets(const std::vector<std::pair<std::string, Tensor>>& named_params) {
  for (const auto& [name, p] : named_params) {
    if (!p.requires_grad()) continue;
    LD_CHECK(p.dtype() == DType::f32 && p.is_contiguous(), "data parallel: parameter ", name,
             " is not a contiguous f32 tensor");
    names_.push_back(name);
    params_.push_back(p);
  }
  const int64_t per_bucket = std::max<int64_t>(1, options_.bucket_bytes / int64_t(sizeof(float)));
  bucket_of_.assign(params_.size(), 0);
  offset_in_bucket_.assign(params_.size(), 0);
  for (size_t k = params_.size(); k-- > 0;) {  // backward finishes the last layers first
    if (buckets_.empty() || buckets_.back()->size >= per_bucket) buckets_.push_back(std::make_unique<Bucket>());
    Bucket& b = *buckets_.back();
    bucket_of_[k] = buckets_.size() - 1;
    offset_in_bucket_[k] = b.size;
    b.params.push_back(k);
    b.size += params_[k].numel();
  }
  const int64_t n = comm_.size();
  for (auto& b : buckets_) {
    b->padded = (b->size + n - 1) / n * n;
    b->got.assign(b->params.size(), 0);
    if (options_.zero_stage < 2) b->buffer = zeros({b->padded});
    else b->shard = zeros({b->padded / n});
  }
}

int64_t DataParallel::chunk_of(const Bucket& b) const { return b.padded / comm_.size(); }

void DataParallel::build_segments() {
  if (options_.zero_stage == 0) {
    for (size_t i = 0; i < params_.size(); ++i) segments_.push_back({names_[i], params_[i], params_[i], 0, i});
    return;
  }
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    const Bucket& b = *buckets_[bi];
    const int64_t lo = comm_.rank() * chunk_of(b), hi = lo + chunk_of(b);
    for (size_t k : b.params) {
      const int64_t o = offset_in_bucket_[k], n = params_[k].numel();
      const int64_t a = std::max(o, lo), e = std::min(o + n, hi);
      if (a >= e) continue;
      Tensor flat = params_[k].detach().view({n});
      segments_.push_back({names_[k], params_[k], flat.narrow(0, a - o, e - a), a - o, k});
    }
  }
}

void DataParallel::start_step() {
  for (Tensor& p : params_) p.zero_grad();
  for (const Segment& s : segments_) Tensor(s.part).zero_grad();
  for (auto& b : buckets_) {
    b->arrived = 0;
    std::fill(b->got.begin(), b->got.end(), 0);
  }
  next_launch_ = 0;
  reducing_ = false;
}

void DataParallel::begin_micro_batch(bool last) { reducing_ = last; }

void DataParallel::on_grad_ready(size_t param, const Tensor& grad) {
  if (!reducing_ || !grad.defined()) return;
  Bucket& b = *buckets_[bucket_of_[param]];
  if (!b.buffer.defined()) b.buffer = zeros({b.padded});  // stage 2: allocated while in flight
  const size_t entry = size_t(std::find(b.params.begin(), b.params.end(), param) - b.params.begin());
  if (b.got[entry]) return;
  pack(b, param, grad);
  b.got[entry] = 1;
  ++b.arrived;
  // The bucket holds the gradient now; the parameter's own copy is freed early.
  Tensor(params_[param]).zero_grad();
  launch_ready_buckets();
}

// The gradient into its bucket slot, divided by the ranks as it goes, so that the reduced sum is the
// mean with no pass over the buckets after the wait.
void DataParallel::pack(Bucket& b, size_t param, const Tensor& grad) {
  Tensor slot = b.buffer.narrow(0, offset_in_bucket_[param], params_[param].numel());
  slot.view(params_[param].shape()).copy_(grad);
  float* v = slot.data<float>();
  const int64_t n = slot.numel();
  const float inv = 1.0f / float(comm_.size());
#pragma omp parallel for simd schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) v[i] *= inv;
}

void DataParallel::launch_ready_buckets() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_]->arrived == buckets_[next_launch_]->params.size())
    launch(*buckets_[next_launch_++]);
}

void DataParallel::launch(Bucket& b) {
  float* data = b.buffer.data<float>();
  if (options_.zero_stage < 2)
    b.work = comm_.all_reduce_async(data, b.size, ElemType::f32, ReduceOp::sum);
  else
    b.work = comm_.reduce_scatter_async(data, b.shard.data<float>(), chunk_of(b), ElemType::f32, ReduceOp::sum);
}

void DataParallel::finish_backward() {
  // Gradients no hook delivered (a pipeline stage runs its backwards itself, without arming them)
  // are taken from the parameters; parameters with none (unused this step) count as zeros.
  for (size_t bi = next_launch_; bi < buckets_.size(); ++bi) {
    Bucket& b = *buckets_[bi];
    if (!b.buffer.defined()) b.buffer = zeros({b.padded});
    for (size_t e = 0; e < b.params.size(); ++e) {
      if (b.got[e]) continue;
      Tensor& p = params_[b.params[e]];
      if (p.grad().defined()) pack(b, b.params[e], p.grad()), p.zero_grad();
      else b.buffer.narrow(0, offset_in_bucket_[b.params[e]], p.numel()).zero_();
    }
  }
  reducing_ = false;
  const Clock::time_point start = Clock::now();
  while (next_launch_ < buckets_.size()) launch(*buckets_[next_launch_++]);
  for (auto& b : buckets_) {
    b->work->wait();
    b->work.reset();
  }
  stats_.exposed_seconds += std::chrono::duration<double>(Clock::now() - start).count();
  ++stats_.steps;
  // Hand the averaged gradients out as views of the buckets.
  const int64_t rank = comm_.rank();
  for (Segment& s : segments_) {
    const size_t k = s.param;
    Bucket& b = *buckets_[bucket_of_[k]];
    const int64_t at = offset_in_bucket_[k] + s.offset;
    Tensor grad = options_.zero_stage < 2 ? b.buffer.narrow(0, at, s.part.numel())
                                          : b.shard.narrow(0, at - rank * chunk_of(b), s.part.numel());
    Tensor(s.part).set_grad(options_.zero_stage == 0 ? grad.view(s.full.shape()) : grad);
  }
  if (options_.zero_stage == 2)
    for (auto& b : buckets_) b->buffer = Tensor();
}

void DataParallel::finish_step() {
  if (options_.zero_stage == 0) return;
  std::vector<Tensor> parts, fulls;
  for (const Segment& s : segments_) parts.push_back(s.part);
  for (const Tensor& p : params_) fulls.push_back(p);
  // Every rank receives every chunk: the gather writes into all ranks' parameters.
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    const Bucket& b = *buckets_[bi];
    const int64_t chunk = chunk_of(b);
    Tensor send = zeros({chunk}), recv = empty({b.padded});
    const int64_t lo = comm_.rank() * chunk;
    for (size_t si = 0; si < segments_.size(); ++si) {
      const size_t k = segments_[si].param;
      if (bucket_of_[k] != bi) continue;
      send.narrow(0, offset_in_bucket_[k] + segments_[si].offset - lo, parts[si].numel()).copy_(parts[si]);
    }
    comm_.all_gather(send.data<float>(), recv.data<float>(), chunk, ElemType::f32);
    for (size_t k : b.params)
      Tensor(params_[k]).view({params_[k].numel()}).copy_(recv.narrow(0, offset_in_bucket_[k], params_[k].numel()));
  }
}

void DataParallel::gather_to_rank0(const std::vector<Tensor>& parts, const std::vector<Tensor>& fulls) {
  LD_ASSERT(parts.size() == segments_.size() && fulls.size() == params_.size(), "one tensor per segment/parameter");
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    const Bucket& b = *buckets_[bi];
    const int64_t chunk = chunk_of(b), lo = comm_.rank() * chunk;
    Tensor send = zeros({chunk}), recv = empty({b.padded});
    for (size_t si = 0; si < segments_.size(); ++si) {
      const size_t k = segments_[si].param;
      if (bucket_of_[k] != bi) continue;
      send.narrow(0, offset_in_bucket_[k] + segments_[si].offset - lo, parts[si].numel()).copy_(parts[si]);
    }
    comm_.all_gather(send.data<float>(), recv.data<float>(), chunk, ElemType::f32);
    if (comm_.rank() != 0) continue;
    for (size_t k : b.params)
      Tensor(fulls[k]).view({params_[k].numel()}).copy_(recv.narrow(0, offset_in_bucket_[k], params_[k].numel()));
  }
}

void DataParallel::scatter_from_full(const std::vector<Tensor>& fulls, const std::vector<Tensor>& parts) const {
  LD_ASSERT(parts.size() == segments_.size() && fulls.size() == params_.size(), "one tensor per segment/parameter");
  for (size_t si = 0; si < segments_.size(); ++si) {
    const Segment& s = segments_[si];
    const Tensor full = fulls[s.param];
    Tensor(parts[si]).copy_(full.reshape({full.numel()}).narrow(0, s.offset, s.part.numel()));
  }
}

int64_t DataParallel::owned_elements() const {
  int64_t n = 0;
  for (const Segment& s : segments_) n += s.part.numel();
  return n;
}

int64_t DataParallel::gradient_bytes_held() const {
  int64_t bytes = 0;
  for (const auto& b : buckets_) {
    if (b->buffer.defined()) bytes += b->buffer.numel() * 4;
    if (b->shard.defined()) bytes += b->shard.numel() * 4;
  }
  return bytes;
}

}  // namespace ld::dist
