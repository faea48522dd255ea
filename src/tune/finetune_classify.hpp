#pragma once
// The model of `liandan finetune` with task classify: a SequenceClassifier (tune/sequence_classifier.hpp)
// over the causal LM of model.from, trained by finetune.method:
//   full  every weight, the score head included; saved as a *ForSequenceClassification folder
//   lora  LoRA on lora.target_modules of the body (the base frozen) and the score head trained whole,
//         as PEFT's modules_to_save does for a SEQ_CLS model; saved in PEFT's layout with
//         "task_type": "SEQ_CLS", "modules_to_save": ["score"] and the head under PEFT's saved name
//         "base_model.model.score.weight" (PEFT strips "modules_to_save.default" when saving).
// model.from may itself be a classifier folder (an earlier classify run's model/): its head and
// labels are kept, and the data's label set must match them.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "peft/lora.hpp"
#include "train/run_config.hpp"
#include "tune/sequence_classifier.hpp"

namespace ld::tune {

inline constexpr const char* kPeftScoreKey = "base_model.model.score.weight";

struct ClassifierModel {
  std::string method;  // full | lora
  std::unique_ptr<SequenceClassifier> classifier;
  peft::LoraModel lora;        // method lora
  std::filesystem::path base;  // model.from

  std::vector<std::pair<std::string, Tensor>> trainable_parameters() const;
  int64_t trainable_count() const;
  int64_t total_count() const;
  // The classifier folder (full) or the adapter folder with the head (lora).
  void save(const std::filesystem::path& dir, bool force) const;
};

// Whether `dir`'s config.json names a *ForSequenceClassification architecture.
bool is_classifier_folder(const std::filesystem::path& dir);

// `checkpoint` ("" = fresh) is a classify checkpoint of the same method; `label_set` the data's.
ClassifierModel load_classifier_model(const train::RunConfig& config, const std::filesystem::path& checkpoint,
                                      const std::vector<std::string>& label_set);

}  // namespace ld::tune
