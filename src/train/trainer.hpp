#pragma once
// Pretraining (`liandan pretrain`): the loop that takes a RunConfig from random weights to a trained
// model, with checkpoints that resume exactly. The loop is shared with fine-tuning: it runs a
// train::TrainTask (train_task.hpp; pretraining's is pretrain_task.hpp, fine-tuning's
// tune/finetune.hpp), and what is said below of the data, objective and saved model is pretraining's.
//
// One step = train.grad_accum micro-batches of train.batch_size x seq_len tokens from the dataset's
// train split (data/loader.hpp), each loss divided by grad_accum before its backward so the
// gradients are the mean over the step's micro-batches; then gradient clipping by global norm
// (train.grad_clip), the learning rate of lr_schedule.hpp for this step, and one optimizer update
// (optimizer.hpp). The objective is objectives.hpp's: next-token cross-entropy (+ MoE aux loss) for
// causal models, masked-token cross-entropy for BERT.
//
// The run folder (output_dir) receives resolved.yaml, metrics.jsonl (metrics_log.hpp),
// checkpoints/step-NNNNNN every checkpoint.every steps and at the end (checkpoint.hpp; the newest
// checkpoint.keep_last are kept), and model/, the final model as a Hugging Face folder. A fresh run
// refuses a folder that already holds a run; TrainOptions::resume continues one.
//
// Resume is exact: weights, optimizer moments and step, the loader's cursor, the masking stream and
// the loss scale are restored, so the losses after a resume are those of an uninterrupted run.
//
// Stops: a stop request (request_stop, or SIGINT/SIGTERM under a StopOnSignals) ends the run after
// the current step with a checkpoint. A non-finite loss or gradient norm (without fp16 loss
// scaling, which skips such steps instead) stops the run with an error naming the step; no
// checkpoint is written after it, so the newest one is the last good state.
//
// Precision (train.precision): fp32, or mixed precision with fp32 master weights: bf16 and fp16 run
// each micro-batch's forward and backward (and evaluation) under ops::AutocastScope, so the matrix
// products round their operands to the half type; weights, activations, gradients and optimizer
// state stay fp32. fp16 adds dynamic loss scaling (LossScaler): the loss is scaled before backward,
// gradients unscaled before clipping, and a step with a non-finite gradient is skipped (the scale
// halves) and reported (StepReport::skipped, the progress line, metrics.jsonl's "skipped").
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "train/run_config.hpp"
#include "train/stop_request.hpp"

namespace ld::dist {
class Communicator;
}

namespace ld::train {

struct StepReport {
  int64_t step = 0;          // updates done, this one included
  double loss = 0;           // mean over the micro-batches of the loss minimised (lm_loss + aux_loss)
  double lm_loss = 0;        // the cross-entropy part
  double aux_loss = 0;       // the MoE auxiliary part (0 for dense models)
  double lr = 0;
  double grad_norm = 0;      // before clipping
  int64_t tokens = 0;        // training tokens consumed so far (all steps, resumed ones included)
  double tokens_per_s = 0;   // this step's
  bool skipped = false;      // fp16: an overflow skipped the update
};

struct EvalReport {
  int64_t step = 0;
  double val_loss = 0, val_ppl = 0;
  int64_t tokens = 0;  // scored tokens
  std::vector<std::pair<std::string, std::string>> samples;  // (prompt, continuation)
  double exact_match = std::nan("");  // fine-tuning (sft): the fraction of replies equal to the reference
};

struct TrainOptions {
  std::filesystem::path resume;  // a checkpoint folder, or a run folder (its newest checkpoint); "" = fresh
  double peak_tflops = 0;        // MFU is reported against this peak; 0 = no MFU
  bool print = true;             // progress lines on stdout
  std::function<void(const StepReport&)> on_step;  // after each step, before its checkpoint
  std::function<void(const EvalReport&)> on_eval;
  double initial_loss_scale = 65536.0;  // fp16: the loss scale of a fresh run (GradScaler's default, 2^16)
  // The ranks that train together (data parallel when more than one; rank 0 writes the run);
  // nullptr: dist::world(), every rank of the job.
  dist::Communicator* communicator = nullptr;
};

struct TrainResult {
  int64_t step = 0;                 // updates done when the run ended
  std::vector<double> losses;       // each step's loss, for the steps this call ran
  std::vector<double> val_losses;   // each evaluation's, in order
  bool interrupted = false;         // ended by a stop request
  std::filesystem::path last_checkpoint;
};

// Runs the configured pretraining. Errors (bad config for this data, a diverged loss, ...) are
// ld::Error with a message a user can act on.
TrainResult pretrain(const RunConfig& config, const TrainOptions& options = {});

// train.precision: fp32, bf16 and fp16 pass; anything else throws naming the valid ones.
void check_precision_supported(const std::string& precision);

}  // namespace ld::train
