#include "tune/finetune_continual.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>

#include "core/atomic_file.hpp"
#include "core/error.hpp"

namespace ld::tune {

namespace fs = std::filesystem;
using nlohmann::json;

bool continual_enabled(const train::RunConfig& c) {
  for (const std::string& key : c.given_in("continual"))
    if (c.set_away_from_default(key)) return true;
  return false;
}

std::string earlier_train_file(const train::RunConfig& c) {
  const fs::path from = c.continual.replay_from;
  if (from.empty() || !fs::is_directory(from)) return from.string();
  const fs::path resolved = from / "resolved.yaml";
  LD_CHECK(fs::exists(resolved), "continual.replay_from: ", from.string(),
           " is a folder but not a finetune run (no resolved.yaml); give the earlier task's training JSONL");
  const train::RunConfig earlier = train::load_run_config(resolved);
  LD_CHECK(!earlier.data.train.empty(), "continual.replay_from: ", resolved.string(), " has no data.train");
  return earlier.data.train;
}

Continual::Continual(const train::RunConfig& config, Source& earlier, nn::Module& model, const NamedParams& trained,
                     const fs::path& checkpoint, bool print)
    : config_(config), earlier_(earlier), baseline_(std::nan("")) {
  const bool ewc = config.continual.ewc_lambda > 0;
  if (!checkpoint.empty()) {
    if (ewc) ewc_ = Ewc::load(checkpoint / kEwcFile);
    std::ifstream in(checkpoint / kContinualFile);
    LD_CHECK(in.good(), (checkpoint / kContinualFile).string(), ": missing (a continual run's checkpoint has it)");
    const json saved = json::parse(in);
    const auto it = saved.find("earlier_start");  // null when the start was not measured
    baseline_ = it != saved.end() && it->is_number() ? it->get<double>() : std::nan("");
    return;
  }
  if (earlier_.has_val()) {
    model.eval();
    const json start = earlier_.evaluate(0, ops::ComputePrecision::f32);
    baseline_ = start.value(earlier_.headline(), std::nan(""));
  }
  if (ewc) {
    model.eval();  // no dropout in the Fisher's gradients
    earlier_.start({}, uint64_t(config.train.seed));
    ewc_ = Ewc::estimate(
        trained, [&](int64_t) { int64_t tokens = 0; return earlier_.next_loss(tokens).loss; },
        config.continual.fisher_batches);
    if (print)
      std::printf("EWC: diagonal Fisher of %zu tensors over %lld batches of %s\n", ewc_->entries().size(),
                  (long long)config.continual.fisher_batches, earlier_train_file(config).c_str());
  }
  model.train();
}

Tensor Continual::penalty(const NamedParams& trained) const {
  return ewc_ ? ewc_->penalty(trained, config_.continual.ewc_lambda) : Tensor();
}

nlohmann::ordered_json Continual::evaluate(int64_t step, ops::ComputePrecision precision) const {
  if (!earlier_.has_val()) return nlohmann::ordered_json::object();
  const std::string metric = earlier_.headline();
  const double now = earlier_.evaluate(step, precision).value(metric, std::nan(""));
  return {{"earlier_" + metric, now}, {"earlier_" + metric + "_start", baseline_}, {"forgetting", baseline_ - now}};
}

void Continual::save(const fs::path& dir) const {
  if (ewc_) ewc_->save(dir / kEwcFile);
  write_file_atomically(dir / kContinualFile, json{{"earlier_start", baseline_}}.dump(2) + "\n");
}

}  // namespace ld::tune
