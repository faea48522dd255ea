#pragma once
// The sft task of `liandan finetune`: instruction JSONL (tune/sft_data.hpp) in batches of
// tune/sft_loader.hpp, the loss over response tokens only, and at each evaluation the validation
// loss over the response tokens of data.val plus exact match: the assistant reply of the first
// eval.batches x batch_size validation conversations generated greedily from their prompt (the
// conversation before its last assistant turn, rendered up to the generation prompt), cut at the
// template's end-of-turn text, trimmed, compared with the reference reply (trimmed).
#include <cstdint>
#include <memory>
#include <vector>

#include "models/causal_lm.hpp"
#include "ops/autocast.hpp"
#include "train/checkpoint.hpp"
#include "train/metrics_log.hpp"
#include "train/objectives.hpp"
#include "train/run_config.hpp"
#include "train/trainer.hpp"
#include "tune/chat_template.hpp"
#include "tune/sft_data.hpp"
#include "tune/sft_loader.hpp"

namespace ld::tok {
class Tokenizer;
}

namespace ld::tune {

// cross_entropy of the model's logits (the attention mask passed to it) against batch.targets,
// ignoring -100: the mean over the trained tokens.
train::LossParts sft_loss(const models::CausalLM& model, const SftBatch& batch);

// The reply `model` generates greedily for `prompt_ids`, decoded and cut at `end_of_turn` (when
// not empty), trimmed.
std::string greedy_reply(const models::CausalLM& model, const tok::Tokenizer& tokenizer,
                         const std::vector<int32_t>& prompt_ids, int64_t max_new_tokens,
                         const std::vector<int32_t>& eos_ids, const std::string& end_of_turn);

class SftData {
 public:
  // Reads and tokenizes data.train (and data.val); `print` shows the truncation warnings.
  SftData(const train::RunConfig& config, const tok::Tokenizer& tokenizer, ChatTemplate chat_template,
          int64_t prefix_tokens, bool print);

  // Data parallel: every rank draws the global batch (train.batch_size x ranks rows) and trains on
  // its rows, its loss weighted by its share of the batch's trained tokens, so that the mean over
  // the ranks is the loss of the whole batch (ranks would otherwise weigh their tokens unequally).
  void set_rank(int rank, int ranks) { rank_ = rank, ranks_ = ranks; }
  void start(const train::TrainerState& state);
  train::LossParts next_loss(const models::CausalLM& model, train::TrainerState& state);
  bool evaluates() const { return config_.eval.every > 0 && !val_.empty(); }
  train::EvalReport evaluate(const models::CausalLM& model, int64_t step, ops::ComputePrecision precision,
                             train::MetricsLog& log, bool print) const;
  int64_t train_examples() const { return int64_t(train_examples_.size()); }

 private:
  double validation_loss(const models::CausalLM& model, ops::ComputePrecision precision, int64_t& tokens) const;
  int64_t exact_matches(const models::CausalLM& model, int64_t& asked) const;

  const train::RunConfig& config_;
  const tok::Tokenizer& tokenizer_;
  ChatTemplate template_;
  int64_t prefix_tokens_;  // prompt-tuning positions in front of every row
  std::vector<SftExample> train_examples_;
  std::vector<Conversation> val_;
  std::vector<SftExample> val_examples_;
  std::unique_ptr<SftLoader> loader_;
  int rank_ = 0, ranks_ = 1;
};

}  // namespace ld::tune
