#pragma once
// The datasets a classify, multitask or continual fine-tuning run draws micro-batches from, mixed by
// tune/task_mixer.hpp: each micro-batch comes whole from one dataset, the mixer's draw k choosing the
// dataset of micro-batch k. The run's data cursor (trainer_state.json) is then {"epoch": 0,
// "position": micro-batches drawn}: replaying the mixer's draws gives each dataset's batch count,
// and each dataset's loader cursor follows from its count (every epoch has ceil(N / B) batches,
// tune/classify_batches.hpp's and tune/sft_loader.hpp's unpacked rule), so a resume is exact.
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "models/causal_lm.hpp"
#include "ops/autocast.hpp"
#include "train/checkpoint.hpp"
#include "train/metrics_log.hpp"
#include "train/objectives.hpp"
#include "train/run_config.hpp"
#include "tune/chat_template.hpp"
#include "tune/classify_batches.hpp"
#include "tune/finetune_sft.hpp"
#include "tune/sequence_classifier.hpp"
#include "tune/task_mixer.hpp"

namespace ld::tok {
class Tokenizer;
}

namespace ld::tune {

// One dataset: training batches from a cursor, and held-out metrics.
class Source {
 public:
  virtual ~Source() = default;
  virtual int64_t train_examples() const = 0;
  // Starts the training batches at `cursor` (shuffled by `seed`).
  virtual void start(const SftCursor& cursor, uint64_t seed) = 0;
  // The next micro-batch's loss; adds the tokens it consumed to `tokens`.
  virtual train::LossParts next_loss(int64_t& tokens) = 0;
  virtual bool has_val() const = 0;
  // The held-out metrics, e.g. {"accuracy", "macro_f1", "examples"} or {"val_loss", "val_ppl",
  // "exact_match", "exact_match_of"}; the first is the task's headline metric (forgetting is its drop).
  virtual nlohmann::ordered_json evaluate(int64_t step, ops::ComputePrecision precision) const = 0;
  // The headline metric: accuracy (classify) or exact match (sft).
  virtual std::string headline() const = 0;
};

// Instruction data (tune/finetune_sft.hpp) of `train_file` / `val_file`, unpacked.
std::unique_ptr<Source> make_sft_source(const train::RunConfig& config, const std::string& train_file,
                                        const std::string& val_file, const tok::Tokenizer& tokenizer,
                                        const ChatTemplate& chat_template, const models::CausalLM& model,
                                        bool print);

// {"text", "label"} JSONL through `model`; `val_file` "" = none.
std::unique_ptr<Source> make_classify_source(const train::RunConfig& config, const std::string& train_file,
                                             const std::string& val_file, const std::vector<std::string>& label_set,
                                             const tok::Tokenizer& tokenizer, const SequenceClassifier& model);

// Sources mixed by a TaskMixer; source i is drawn with probabilities[i].
class MixedSources {
 public:
  // batch_size: every source's (train.batch_size).
  MixedSources(std::vector<Source*> sources, std::vector<double> probabilities, int64_t batch_size);
  void start(const train::TrainerState& state);
  train::LossParts next_loss(train::TrainerState& state);

 private:
  std::vector<Source*> sources_;
  std::vector<double> probabilities_;
  int64_t batch_size_;
  std::unique_ptr<TaskMixer> mixer_;
};

// The cursor after `batches` batches of B from N examples (ceil(N / B) batches an epoch).
SftCursor cursor_after(int64_t batches, int64_t examples, int64_t batch_size);

}  // namespace ld::tune
