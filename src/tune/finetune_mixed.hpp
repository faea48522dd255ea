#pragma once
// The fine-tuning runs whose batches come from tune/finetune_sources.hpp's mixed datasets:
// finetune.task classify (tune/finetune_classify.hpp's model), multitask (tune/finetune_multitask.hpp),
// and sft or classify with continual.* set (tune/finetune_continual.hpp). Evaluation reports each
// dataset's metrics (prefixed "<name>/" for multitask) and, in a continual run, the earlier task's
// metric and its forgetting, in the progress line and in metrics.jsonl's eval lines.
#include <filesystem>
#include <memory>

#include "train/run_config.hpp"
#include "train/train_task.hpp"

namespace ld::tune {

// Whether `config` (checked) runs through make_mixed_finetune_task.
bool uses_mixed_sources(const train::RunConfig& config);

std::unique_ptr<train::TrainTask> make_mixed_finetune_task(const train::RunConfig& config,
                                                           const std::filesystem::path& checkpoint, bool print);

}  // namespace ld::tune
