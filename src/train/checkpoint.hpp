#pragma once
// Training checkpoints: RUN_DIR/checkpoints/step-000100/ holds
//   config.json, generation_config.json, model.safetensors   the model as a Hugging Face folder
//                                                            (models::save_pretrained), loadable as is
//   tokenizer files                                          when the run knows its tokenizer folder
//   optimizer.safetensors                                    train/optimizer.hpp
//   trainer_state.json                                       TrainerState below
// Each folder is written whole or not at all (core/atomic_file.hpp), then the oldest are removed so
// that checkpoint.keep_last remain.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "data/loader.hpp"
#include "io/hf_config.hpp"
#include "nn/module.hpp"

namespace ld::train {

class Optimizer;

inline constexpr const char* kTrainerStateFile = "trainer_state.json";
inline constexpr const char* kCheckpointsDir = "checkpoints";

// Everything besides the weights and the optimizer that an exact resume needs, plus the record.
struct TrainerState {
  int64_t step = 0;         // optimizer updates done
  int64_t tokens_seen = 0;  // training tokens consumed (inputs, all micro-batches)
  data::LoaderCursor cursor;  // where the training loader continues
  uint64_t seed = 0;          // train.seed: the loader shuffle and the masking draws
  uint64_t mask_stream = 0;   // the next masked-LM masking stream (micro-batches masked so far)
  uint64_t generator_seed = 0, generator_offset = 0;  // the default generator (dropout, if a model draws)
  nlohmann::json loss_scaler = nlohmann::json::object();  // LossScaler::state_dict() ({} when off)
  double best_val_loss = std::numeric_limits<double>::infinity();  // null in JSON until an evaluation
  std::string optimizer;  // "adamw" | "sgd", for the record
};
nlohmann::json trainer_state_to_json(const TrainerState& state);
// Errors name `source` and the key.
TrainerState trainer_state_from_json(const nlohmann::json& json, const std::string& source);
TrainerState read_trainer_state(const std::filesystem::path& checkpoint_dir);

// "step-000100" (at least six digits).
std::string checkpoint_name(int64_t step);

// The run's checkpoints that hold a trainer_state.json, by step (ascending).
std::vector<std::pair<int64_t, std::filesystem::path>> list_checkpoints(const std::filesystem::path& run_dir);

// What --resume DIR means: DIR itself when it is a checkpoint (has trainer_state.json), else the
// latest checkpoint of DIR as a run folder. Errors say what was looked for.
std::filesystem::path resolve_resume(const std::filesystem::path& dir);

struct CheckpointContent {
  const nn::Module& model;
  const io::HfModelConfig& config;
  const Optimizer& optimizer;
  const TrainerState& state;
  std::filesystem::path tokenizer_from;  // a folder with tokenizer files to copy; "" = none
};

// Writes RUN_DIR/checkpoints/step-NNNNNN atomically (replacing one of the same step) and returns it.
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, const CheckpointContent& content);

// The same with the model part written by `write_model` into a new, empty folder whose files then
// become the checkpoint's (a fine-tuning run writes its adapter there instead of the whole model).
using ModelWriter = std::function<void(const std::filesystem::path& dir)>;
std::filesystem::path save_checkpoint(const std::filesystem::path& run_dir, int64_t step,
                                      const ModelWriter& write_model, const Optimizer& optimizer,
                                      const TrainerState& state);

// Removes all but the newest keep_last checkpoints (keep_last 0 keeps all).
void prune_checkpoints(const std::filesystem::path& run_dir, int64_t keep_last);

}  // namespace ld::train
