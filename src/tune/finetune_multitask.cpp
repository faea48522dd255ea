#include "tune/finetune_multitask.hpp"

#include <cstdlib>
#include <filesystem>
#include <set>

#include "core/error.hpp"
#include "tune/task_mixer.hpp"

namespace ld::tune {

namespace {

double parse_weight(const std::string& text, size_t i) {
  char* end = nullptr;
  const double w = std::strtod(text.c_str(), &end);
  LD_CHECK(!text.empty() && end == text.c_str() + text.size() && w >= 0 && std::isfinite(w),
           "multitask.weights[", i, "]: \"", text, "\" is not a non-negative number");
  return w;
}

void check_length(const std::vector<std::string>& list, size_t n, const char* key) {
  LD_CHECK(list.empty() || list.size() == n, key, ": ", list.size(), " entries for ", n,
           " datasets (multitask.train); give one per dataset or none");
}

}  // namespace

std::vector<MultitaskDataset> multitask_datasets(const train::RunConfig& c) {
  const train::MultitaskSection& m = c.multitask;
  LD_CHECK(!m.train.empty(), "finetune: multitask.train: required for finetune.task=multitask (a list of "
                             "instruction JSONL files, one per dataset)");
  const size_t n = m.train.size();
  check_length(m.val, n, "multitask.val");
  check_length(m.names, n, "multitask.names");
  check_length(m.weights, n, "multitask.weights");
  std::vector<MultitaskDataset> datasets(n);
  std::set<std::string> names;
  for (size_t i = 0; i < n; ++i) {
    MultitaskDataset& d = datasets[i];
    d.train = m.train[i];
    d.val = m.val.empty() ? "" : m.val[i];
    d.name = m.names.empty() ? std::filesystem::path(d.train).stem().string() : m.names[i];
    d.weight = m.weights.empty() ? 1.0 : parse_weight(m.weights[i], i);
    LD_CHECK(!d.name.empty(), "multitask.names[", i, "]: empty");
    LD_CHECK(names.insert(d.name).second, "multitask: two datasets are named \"", d.name,
             "\" (their metrics would collide); set multitask.names");
  }
  return datasets;
}

std::vector<double> multitask_probabilities(const train::RunConfig& c, const std::vector<MultitaskDataset>& datasets,
                                            const std::vector<int64_t>& sizes) {
  if (c.multitask.sampling == "temperature") return temperature_probabilities(sizes, c.multitask.temperature);
  std::vector<double> weights;
  for (const MultitaskDataset& d : datasets) weights.push_back(d.weight);
  return weight_probabilities(weights);
}

}  // namespace ld::tune
