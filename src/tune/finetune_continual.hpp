#pragma once
// Continual fine-tuning (continual.*; docs/finetuning.md): the run's task is the new one, an earlier
// task's data come from continual.replay_from (its training file, or an earlier finetune run's folder
// whose resolved.yaml names it) and continual.earlier_val.
//   replay      continual.replay_fraction of the micro-batches are drawn from the earlier data
//               (tune/task_mixer.hpp's replay probabilities; the mixing is tune/finetune_sources.hpp's)
//   EWC         with continual.ewc_lambda > 0, the empirical diagonal Fisher of the trained
//               parameters over continual.fisher_batches batches of the earlier data, anchored at
//               the parameters the run starts from (tune/ewc.hpp), estimated once at the start of a
//               fresh run; λ/2 Σ F (θ - θ*)² is added to every micro-batch's loss
//   forgetting  at each evaluation the earlier task's headline metric (accuracy, or exact match) on
//               earlier_val, and its drop from the value measured before the first step
// A checkpoint (and the run folder at the end) holds ewc.safetensors and continual.json (the
// baseline), so a resume continues with the same anchor, Fisher and baseline.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "nn/module.hpp"
#include "ops/autocast.hpp"
#include "train/run_config.hpp"
#include "tune/ewc.hpp"
#include "tune/finetune_sources.hpp"

namespace ld::tune {

inline constexpr const char* kEwcFile = "ewc.safetensors";
inline constexpr const char* kContinualFile = "continual.json";

// Whether any continual key is set away from its default.
bool continual_enabled(const train::RunConfig& config);

// continual.replay_from as a training file: the file itself, or a run folder's data.train.
std::string earlier_train_file(const train::RunConfig& config);

class Continual {
 public:
  // `earlier`: the earlier task's source (training data = replay_from or, without it, earlier_val;
  // val = earlier_val). Fresh run (`checkpoint` ""): measures the baseline and estimates the Fisher
  // now, with `model` as it starts; a resume reads both from the checkpoint.
  Continual(const train::RunConfig& config, Source& earlier, nn::Module& model, const NamedParams& trained,
            const std::filesystem::path& checkpoint, bool print);

  bool uses_ewc() const { return ewc_.has_value(); }
  // λ/2 Σ F (θ - θ*)², or an undefined Tensor without EWC.
  Tensor penalty(const NamedParams& trained) const;
  // {"earlier_<metric>": now, "earlier_<metric>_start": baseline, "forgetting": baseline - now}, or {}
  // without earlier_val.
  nlohmann::ordered_json evaluate(int64_t step, ops::ComputePrecision precision) const;
  // ewc.safetensors (with EWC) and continual.json into `dir`.
  void save(const std::filesystem::path& dir) const;

 private:
  const train::RunConfig& config_;
  Source& earlier_;
  std::optional<Ewc> ewc_;
  double baseline_ = 0;
};

}  // namespace ld::tune
