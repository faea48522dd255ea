#pragma once
// Pretraining as a TrainTask (train/train_task.hpp): a model built from the run configuration with
// random weights (or a checkpoint's), a prepared dataset read by data::DataLoader, the objective of
// objectives.hpp (next-token cross-entropy + MoE aux loss for causal models, masked tokens for
// BERT), validation loss and greedy samples (eval.samples) at each evaluation, and the Hugging Face
// folder as checkpoint model and final output (RUN_DIR/model).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/loader.hpp"
#include "dist/gpt2_model_parallel.hpp"
#include "models/bert.hpp"
#include "models/causal_lm.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/run_config.hpp"
#include "train/train_task.hpp"

namespace ld::train {

// train.checkpointing as CausalLM::set_checkpointing's every_k (none 0, all 1, every_k k).
int64_t activation_checkpoint_every(const TrainSection& train);

class PretrainTask : public TrainTask {
 public:
  // Builds the model config.model describes; `checkpoint` ("" = none) supplies its weights.
  PretrainTask(const RunConfig& config, const std::filesystem::path& checkpoint);
  // Trains a model the caller owns and saves (fine-tuning's clm task: domain-adaptive training of a
  // loaded model on a prepared dataset); write_checkpoint_model and save_final are then the caller's.
  PretrainTask(const RunConfig& config, models::CausalLM& model);

  std::string describe() const override;
  nn::Module& model() override;
  std::vector<std::pair<std::string, Tensor>> trainable_parameters() override;
  int64_t flops_per_token() const override { return flops_per_token_; }
  bool splits_aux_loss() const override;
  void set_data_rank(int rank, int ranks) override;
  // Tensor or pipeline parallel GPT-2 (dist/gpt2_model_parallel.hpp); the whole model stays here
  // for evaluation and saving on rank 0 (gather_model brings it up to date).
  void set_model_parallel(dist::ProcessGrid& grid) override;
  bool counts_in_grad_norm(const std::string& name) const override;
  std::optional<std::vector<LossParts>> run_step_micro_batches(TrainerState& state, int64_t count) override;
  nn::StateDict gather_like_parameters(const NamedTensors& parts) override;
  NamedTensors shard_like_parameters(const nn::StateDict& full) override;
  NamedTensors full_parameters() override { return model().named_parameters(); }
  void gather_model() override;
  void start_data(const TrainerState& state) override;
  LossParts next_loss(TrainerState& state) override;
  bool evaluates() const override { return eval_loader_ != nullptr; }
  EvalReport evaluate(int64_t step, ops::ComputePrecision precision, MetricsLog& log, bool print) override;
  void write_checkpoint_model(const std::filesystem::path& dir) const override;
  std::filesystem::path save_final(const std::filesystem::path& run_dir) const override;

 private:
  void open_data();
  void open_eval_data(int64_t batch_size);
  void build_model();
  void setup_tokenizer();
  void setup_masking();
  void place_model();  // onto train.device (after the weights are built or loaded)
  LossParts micro_loss(const data::Batch& batch, uint64_t mask_stream) const;
  const nn::Module& module() const;
  const models::CausalLM* causal() const { return borrowed_ ? borrowed_ : lm_.get(); }
  io::HfModelConfig saved_config() const;
  std::filesystem::path tokenizer_folder() const;  // the tokenizer files saved with the model ("" = none)

  const RunConfig& c_;
  data::DatasetIndex index_;
  int64_t seq_len_ = 0;
  std::unique_ptr<models::CausalLM> lm_;
  std::unique_ptr<models::BertForMaskedLM> bert_;
  models::CausalLM* borrowed_ = nullptr;
  std::filesystem::path tokenizer_path_;
  std::unique_ptr<tok::Tokenizer> tokenizer_;
  MlmMasking masking_;
  std::unique_ptr<data::DataLoader> loader_;
  std::unique_ptr<data::EvalLoader> eval_loader_;
  int64_t flops_per_token_ = 0;
  Device device_ = kCPU;  // train.device: the model's, and each batch's once read
  int rank_ = 0, ranks_ = 1;  // data parallel: this rank's slice of each global batch
  std::unique_ptr<dist::Gpt2ModelParallel> split_;  // tensor or pipeline parallel: this rank's part
};

}  // namespace ld::train
