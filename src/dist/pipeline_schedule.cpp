#include "dist/pipeline_schedule.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include "core/allocator.hpp"
#include "core/error.hpp"
#include "ops/ops.hpp"

namespace ld::dist {

namespace {

// Micro-batch m's activation goes forward under tag 2m, its gradient back under 2m + 1 (below the
// stage's checkpoint tags).
constexpr int64_t kMaxMicroBatches = 16000;
int activation_tag(int64_t m) { return int(2 * m); }
int gradient_tag(int64_t m) { return int(2 * m + 1); }

// One step's forwards and backwards on this stage, with what each micro-batch keeps in between.
class StepRunner {
 public:
  StepRunner(PipelineStage& stage, const std::vector<MicroBatch>& micro_batches)
      : stage_(stage), comm_(stage.communicator()), micro_batches_(micro_batches), losses_(micro_batches.size(), 0.0) {}

  void run(const PipelineAction& action) {
    action.forward ? forward(action.micro_batch) : backward(action.micro_batch);
    peak_bytes_ = std::max(peak_bytes_, CachingHostAllocator::instance().stats().bytes_in_use);
  }
  PipelineStepResult finish();

 private:
  // A micro-batch between its forward and its backward.
  struct InFlight {
    Tensor input;   // the received activation, a leaf whose .grad goes back (not on the first stage)
    Tensor output;  // what backward starts from: the stage's output, or on the last the divided loss
  };
  struct PendingSend {
    WorkPtr work;
    Tensor buffer;  // kept alive until the send is done
    int64_t micro_batch;
  };

  void forward(int64_t m);
  void backward(int64_t m);
  Shape activation_shape(int64_t m) const;
  Tensor receive(const Shape& shape, int source, int tag);
  void post_send(const Tensor& t, int dest, int tag, int64_t m);
  void wait_sends(int64_t m);

  PipelineStage& stage_;
  Communicator& comm_;
  const std::vector<MicroBatch>& micro_batches_;
  std::vector<double> losses_;
  std::map<int64_t, InFlight> in_flight_;
  std::vector<PendingSend> sends_;
  int64_t max_in_flight_ = 0;
  size_t peak_bytes_ = 0;
};

Shape StepRunner::activation_shape(int64_t m) const {
  const Tensor& ids = micro_batches_[size_t(m)].inputs;
  return {ids.size(0), ids.size(1), stage_.hf_config().stack.n_embd};
}

Tensor StepRunner::receive(const Shape& shape, int source, int tag) {
  Tensor t = empty(shape, stage_.activation_dtype());
  comm_.recv(t.raw(), int64_t(t.nbytes()), ElemType::u8, source, tag);
  return t;
}

void StepRunner::post_send(const Tensor& t, int dest, int tag, int64_t m) {
  LD_CHECK(t.dtype() == stage_.activation_dtype(), "pipeline stage ", stage_.stage(), ": sending a ",
           dtype_name(t.dtype()), " activation, the stages expect ", dtype_name(stage_.activation_dtype()));
  Tensor buffer = t.contiguous();
  WorkPtr work = comm_.send_async(buffer.raw(), int64_t(buffer.nbytes()), ElemType::u8, dest, tag);
  sends_.push_back({std::move(work), std::move(buffer), m});
}

// Sends of micro-batch m (all, when m < 0).
void StepRunner::wait_sends(int64_t m) {
  auto done = [m](PendingSend& s) {
    if (m >= 0 && s.micro_batch != m) return false;
    s.work->wait();
    return true;
  };
  sends_.erase(std::remove_if(sends_.begin(), sends_.end(), done), sends_.end());
}

void StepRunner::forward(int64_t m) {
  const MicroBatch& mb = micro_batches_[size_t(m)];
  InFlight f;
  if (!stage_.is_first()) {
    f.input = receive(activation_shape(m), stage_.stage() - 1, activation_tag(m));
    f.input.set_requires_grad(true);
  }
  const Tensor out = stage_.forward(mb.inputs, f.input);
  if (stage_.is_last()) {
    const Tensor loss = stage_.loss(out, mb.targets);
    losses_[size_t(m)] = loss.item();
    f.output = ops::scale(loss, 1.0 / double(micro_batches_.size()));
  } else {
    f.output = out;
    post_send(out.detach(), stage_.stage() + 1, activation_tag(m), m);  // without the graph
  }
  in_flight_.emplace(m, std::move(f));
  max_in_flight_ = std::max(max_in_flight_, int64_t(in_flight_.size()));
}

void StepRunner::backward(int64_t m) {
  const auto it = in_flight_.find(m);
  LD_CHECK(it != in_flight_.end(), "pipeline stage ", stage_.stage(), ": backward of micro-batch ", m,
           " before its forward");
  InFlight f = std::move(it->second);
  in_flight_.erase(it);  // the activations go with f at the end of this backward
  if (stage_.is_last()) {
    f.output.backward();
  } else {
    f.output.backward(receive(f.output.shape(), stage_.stage() + 1, gradient_tag(m)));
  }
  wait_sends(m);  // the next stage answered, so m's activation has arrived
  if (stage_.is_first()) return;
  const Tensor grad = f.input.grad().defined() ? f.input.grad() : zeros(f.input.shape(), f.input.dtype());
  post_send(grad, stage_.stage() - 1, gradient_tag(m), m);
}

PipelineStepResult StepRunner::finish() {
  wait_sends(-1);
  LD_CHECK(in_flight_.empty(), "pipeline stage ", stage_.stage(), ": ", in_flight_.size(),
           " micro-batches were never run backward");
  stage_.reduce_tied_gradients();
  comm_.broadcast(losses_.data(), int64_t(losses_.size()), ElemType::f64, stage_.stages() - 1);
  return {std::move(losses_), max_in_flight_, peak_bytes_};
}

void check_micro_batches(const std::vector<MicroBatch>& micro_batches) {
  LD_CHECK(!micro_batches.empty(), "pipeline: a step needs at least one micro-batch");
  LD_CHECK(int64_t(micro_batches.size()) <= kMaxMicroBatches, "pipeline: ", micro_batches.size(),
           " micro-batches in one step, at most ", kMaxMicroBatches);
  for (size_t m = 0; m < micro_batches.size(); ++m) {
    const MicroBatch& mb = micro_batches[m];
    LD_CHECK(mb.inputs.defined() && mb.inputs.dim() == 2, "pipeline: micro-batch ", m, " needs inputs [B, T]");
    LD_CHECK(mb.targets.defined() && mb.targets.shape() == mb.inputs.shape(), "pipeline: micro-batch ", m,
             " needs targets shaped like its inputs ", shape_str(mb.inputs.shape()));
  }
}

}  // namespace

std::string schedule_name(Schedule schedule) { return schedule == Schedule::gpipe ? "gpipe" : "1f1b"; }

std::vector<PipelineAction> schedule_actions(Schedule schedule, int stages, int stage, int64_t micro_batches) {
  LD_CHECK(stage >= 0 && stage < stages, "pipeline: stage ", stage, " of ", stages, " does not exist");
  // GPipe is 1F1B whose warm-up covers every micro-batch.
  const int64_t warmup =
      schedule == Schedule::gpipe ? micro_batches : std::min<int64_t>(stages - stage - 1, micro_batches);
  std::vector<PipelineAction> actions;
  for (int64_t m = 0; m < warmup; ++m) actions.push_back({true, m});
  for (int64_t m = warmup; m < micro_batches; ++m) {
    actions.push_back({true, m});
    actions.push_back({false, m - warmup});
  }
  for (int64_t m = micro_batches - warmup; m < micro_batches; ++m) actions.push_back({false, m});
  return actions;
}

PipelineStepResult run_pipeline_step(PipelineStage& stage, const std::vector<MicroBatch>& micro_batches,
                                     Schedule schedule) {
  check_micro_batches(micro_batches);
  StepRunner runner(stage, micro_batches);
  for (const PipelineAction& action :
       schedule_actions(schedule, stage.stages(), stage.stage(), int64_t(micro_batches.size())))
    runner.run(action);
  return runner.finish();
}

}  // namespace ld::dist
