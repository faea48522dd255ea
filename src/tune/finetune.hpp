#pragma once
// `liandan finetune`: trains a loaded causal LM (model.from) by finetune.method (full, lora, adapter,
// prompt; tune/finetune_model.hpp) on finetune.task (sft: instruction JSONL, tune/finetune_sft.hpp;
// clm: continued next-token training on a prepared dataset, as pretraining reads it; classify,
// multitask and continual runs: tune/finetune_mixed.hpp), through the
// same loop as pretraining (train/train_task.hpp): schedule, accumulation, clipping, precision,
// progress, metrics.jsonl, checkpoints and exact resume. A checkpoint holds the method's output
// (the full Hugging Face folder, or the adapter folder alone), the optimizer state of the trained
// tensors and trainer_state.json; the run ends with RUN_DIR/model (full) or RUN_DIR/adapter.
// docs/finetuning.md describes the keys, data formats and outputs.
#include <filesystem>
#include <memory>

#include "train/run_config.hpp"
#include "train/train_task.hpp"
#include "train/trainer.hpp"
#include "tune/chat_template.hpp"

namespace ld::tune {

// data.tokenizer, or model.from when it is empty.
std::filesystem::path finetune_tokenizer_source(const train::RunConfig& config);
// data.template: ChatML, or the tokenizer folder's chat_template.
ChatTemplate finetune_chat_template(const train::RunConfig& config);

// The errors a fine-tuning configuration can have before anything is loaded: no model.from, model
// keys (the base's config is fixed by its weights), a method a task does not support, keys only
// pretraining reads, options of another method or task, malformed multitask lists, continual keys
// without their earlier data, missing data.
void check_finetune_config(const train::RunConfig& config);

train::TrainResult finetune(const train::RunConfig& config, const train::TrainOptions& options = {});

// The task finetune() runs (checked config; `checkpoint` = the resolved checkpoint to resume, "" =
// fresh), for callers that want the model in memory after train::run_training (tests). Its model()
// is the models::CausalLM being tuned.
std::unique_ptr<train::TrainTask> make_finetune_task(const train::RunConfig& config,
                                                     const std::filesystem::path& checkpoint, bool print);

}  // namespace ld::tune
