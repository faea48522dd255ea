#pragma once
// Data parallel training over a communicator: every rank holds the whole model, trains on its own
// slice of the global batch, and the gradients are averaged over the ranks before the update.
//
// Buckets. The trainable parameters, in reverse registration order (the order backward finishes
// them), are packed into flat f32 buckets of about bucket_bytes. On the step's last micro-batch a
// parameter's grad-ready hook copies its gradient into its bucket; a bucket is reduced as soon as it
// is full, on the communicator's progress thread, while backward computes the next ones. Buckets are
// launched strictly in order, so every rank issues the same collectives in the same order even when
// hooks fire differently; a bucket some of whose parameters got no gradient is launched (zeros for
// them) by finish_backward(). Earlier micro-batches of the step only accumulate locally: gradient
// accumulation costs no communication.
//
// ZeRO (Rajbhandari et al.). Stage 0: buckets are all-reduced and every rank updates every
// parameter. Stage 1: still all-reduced, but each bucket is cut into `ranks` equal chunks and a
// rank's optimizer holds state only for its chunk of every bucket (its segments), then the updated
// chunks are all-gathered into every rank's parameters: optimizer memory / ranks. Stage 2: buckets
// are reduce-scattered instead, so a rank keeps only its chunk's averaged gradient (bucket buffers
// live only while in flight, and the parameters' full gradients are freed as they are copied):
// gradient memory / ranks as well.
//
// The averaged gradient is the mean over ranks of each rank's mean over its micro-batches, which is
// the gradient of the global batch when every rank's loss averages the same number of tokens (as
// pretraining's fixed-size windows do).
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "dist/communicator.hpp"

namespace ld::dist {

struct DataParallelOptions {
  int zero_stage = 0;                   // 0, 1 or 2
  int64_t bucket_bytes = 25ll << 20;
};

// What this rank's optimizer updates: a whole parameter (stage 0) or this rank's contiguous
// segment [offset, offset + numel) of the flattened parameter (stages 1, 2).
struct Segment {
  std::string name;   // the parameter's
  Tensor full;        // the parameter
  Tensor part;        // a 1-D view of `full` (the parameter itself at stage 0); its .grad is set
  int64_t offset = 0;
  size_t param = 0;   // full's index among the parameters (parameter_names() order)
};

struct CommStats {
  double reduce_seconds = 0;   // time the gradient reductions took on the progress thread's clock
  double exposed_seconds = 0;  // time the trainer waited for them after backward
  int64_t steps = 0;
};

class DataParallel {
 public:
  // named_params: the trainable parameters (f32), identical on every rank.
  DataParallel(Communicator& comm, const std::vector<std::pair<std::string, Tensor>>& named_params,
               DataParallelOptions options);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int ranks() const { return comm_.size(); }
  int zero_stage() const { return options_.zero_stage; }
  const std::vector<Segment>& segments() const { return segments_; }

  // Before a step's first micro-batch: forgets the last step's gradients.
  void start_step();
  // Before each micro-batch's backward; `last`: the step's last one, whose backward reduces.
  void begin_micro_batch(bool last);
  // After the last backward: waits for every bucket. Then each segment's part has its averaged
  // gradient as .grad.
  void finish_backward();
  // After the optimizer updated the segments: stages 1, 2 all-gather them into every rank's
  // parameters. No-op at stage 0.
  void finish_step();

  // Bytes of optimizer-visible state this rank keeps per element kind, for the memory figures.
  int64_t owned_elements() const;     // elements of the parameters this rank updates
  int64_t gradient_bytes_held() const;  // gradient memory held between steps

  const CommStats& stats() const { return stats_; }

  // ZeRO checkpoints: the per-element state tensors of this rank's segments (`parts`, one per
  // segment, in segments() order) gathered into `fulls` (one per parameter, laid out as the
  // parameter) on rank 0, or scattered from `fulls` (read on every rank) into `parts`.
  void gather_to_rank0(const std::vector<Tensor>& parts, const std::vector<Tensor>& fulls);
  void scatter_from_full(const std::vector<Tensor>& fulls, const std::vector<Tensor>& parts) const;
  // The parameters, in the order gather/scatter's `fulls` are indexed (Segment::param).
  const std::vector<std::string>& parameter_names() const { return names_; }

 private:
  struct Bucket;
  struct Hooks;

  void build_buckets(const std::vector<std::pair<std::string, Tensor>>& named_params);
  void build_segments();
  void on_grad_ready(size_t param, const Tensor& grad);
  void pack(Bucket& b, size_t param, const Tensor& grad);
  void launch_ready_buckets();
  void launch(Bucket& b);
  int64_t chunk_of(const Bucket& b) const;

  Communicator& comm_;
  DataParallelOptions options_;
  std::vector<std::string> names_;
  std::vector<Tensor> params_;
  std::vector<size_t> bucket_of_;   // param -> bucket
  std::vector<int64_t> offset_in_bucket_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  size_t next_launch_ = 0;          // buckets are launched in order
  bool reducing_ = false;           // hooks armed (the step's last backward)
  std::vector<Segment> segments_;
  std::shared_ptr<Hooks> hooks_;    // what the parameters' hooks reach; disarmed by the destructor
  CommStats stats_;
};

}  // namespace ld::dist
