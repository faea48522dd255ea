#pragma once
// finetune.task multitask: several instruction datasets (multitask.train[i], .val[i], .names[i],
// .weights[i]) trained together, each micro-batch drawn from one dataset by multitask.sampling:
// `weights` (normalised; [] = equal) or `temperature` (p_i ∝ n_i^(1/T), n_i the training examples).
// Metrics are reported per dataset, prefixed by its name (docs/finetuning.md).
#include <cstdint>
#include <string>
#include <vector>

#include "train/run_config.hpp"

namespace ld::tune {

struct MultitaskDataset {
  std::string name, train, val;
  double weight = 1;
};

// The datasets of the multitask section; errors name the key: no train files, lists of another
// length, a weight that is not a non-negative number, repeated names.
std::vector<MultitaskDataset> multitask_datasets(const train::RunConfig& config);

// The sampling probabilities for datasets of `sizes` training examples.
std::vector<double> multitask_probabilities(const train::RunConfig& config,
                                            const std::vector<MultitaskDataset>& datasets,
                                            const std::vector<int64_t>& sizes);

}  // namespace ld::tune
