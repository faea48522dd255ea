#include "train/checkpoint.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "models/causal_lm.hpp"
#include "train/optimizer.hpp"

namespace ld::train {

namespace fs = std::filesystem;
using nlohmann::json;

json trainer_state_to_json(const TrainerState& s) {
  json j;
  j["step"] = s.step;
  j["tokens_seen"] = s.tokens_seen;
  j["data_cursor"] = s.cursor;
  j["seed"] = s.seed;
  j["mask_stream"] = s.mask_stream;
  j["generator"] = {{"seed", s.generator_seed}, {"offset", s.generator_offset}};
  j["loss_scaler"] = s.loss_scaler;
  j["best_val_loss"] = std::isfinite(s.best_val_loss) ? json(s.best_val_loss) : json(nullptr);
  j["optimizer"] = s.optimizer;
  return j;
}

TrainerState trainer_state_from_json(const json& j, const std::string& source) {
  LD_CHECK(j.is_object(), source, ": expected a JSON object");
  auto field = [&](const char* key) -> const json& {
    LD_CHECK(j.contains(key), source, ": '", key, "' is missing");
    return j.at(key);
  };
  auto integer = [&](const char* key) {
    const json& v = field(key);
    LD_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0, source, ": '", key,
             "' must be an integer >= 0, got ", v.dump());
    return v.get<int64_t>();
  };
  TrainerState s;
  s.step = integer("step");
  s.tokens_seen = integer("tokens_seen");
  try {
    s.cursor = field("data_cursor").get<data::LoaderCursor>();
  } catch (const Error& e) {
    LD_FAIL(source, ": data_cursor: ", e.what());
  }
  s.seed = uint64_t(integer("seed"));
  s.mask_stream = uint64_t(integer("mask_stream"));
  const json& generator = field("generator");
  LD_CHECK(generator.is_object() && generator.contains("seed") && generator.contains("offset") &&
               generator["seed"].is_number_unsigned() && generator["offset"].is_number_unsigned(),
           source, ": 'generator' must be {\"seed\": n, \"offset\": n}, got ", generator.dump());
  s.generator_seed = generator["seed"].get<uint64_t>();
  s.generator_offset = generator["offset"].get<uint64_t>();
  s.loss_scaler = field("loss_scaler");
  LD_CHECK(s.loss_scaler.is_object(), source, ": 'loss_scaler' must be an object, got ", s.loss_scaler.dump());
  const json& best = field("best_val_loss");
  LD_CHECK(best.is_null() || best.is_number(), source, ": 'best_val_loss' must be a number or null, got ",
           best.dump());
  s.best_val_loss = best.is_null() ? std::numeric_limits<double>::infinity() : best.get<double>();
  if (j.contains("optimizer") && j["optimizer"].is_string()) s.optimizer = j["optimizer"].get<std::string>();
  return s;
}

TrainerState read_trainer_state(const fs::path& dir) {
  const fs::path file = dir / kTrainerStateFile;
  std::ifstream in(file);
  LD_CHECK(in.good(), file.string(), ": cannot open (is ", dir.string(), " a training checkpoint?)");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    LD_FAIL(file.string(), ": not valid JSON (", e.what(), ")");
  }
  return trainer_state_from_json(j, file.string());
}

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%06lld", (long long)step);
  return buf;
}

namespace {

// The step of a "step-N" folder name, or -1.
int64_t step_of(const std::string& name) {
  if (name.rfind("step-", 0) != 0 || name.size() == 5) return -1;
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

}  // namespace

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  const fs::path dir = run_dir / kCheckpointsDir;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const int64_t step = step_of(entry.path().filename().string());
    if (step >= 0 && fs::exists(entry.path() / kTrainerStateFile, ec)) out.emplace_back(step, entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path resolve_resume(const fs::path& dir) {
  std::error_code ec;
  LD_CHECK(fs::is_directory(dir, ec), "--resume ", dir.string(), ": no such folder");
  if (fs::exists(dir / kTrainerStateFile, ec)) return dir;
  const auto found = list_checkpoints(dir);
  LD_CHECK(!found.empty(), "--resume ", dir.string(), ": neither a checkpoint (no ", kTrainerStateFile,
           ") nor a run folder with checkpoints (nothing in ", (dir / kCheckpointsDir).string(), ")");
  return found.back().second;
}

fs::path save_checkpoint(const fs::path& run_dir, int64_t step, const ModelWriter& write_model,
                         const Optimizer& optimizer, const TrainerState& state) {
  const fs::path dir = run_dir / kCheckpointsDir / checkpoint_name(step);
  fs::create_directories(dir.parent_path());
  write_folder_atomically(dir, /*force=*/true, [&](const fs::path& tmp) {
    // Writers build their own temporary beside `tmp/model` and rename it into place; the files then
    // move up into the checkpoint folder itself.
    const fs::path model_dir = tmp / "model";
    write_model(model_dir);
    for (const auto& entry : fs::directory_iterator(model_dir)) fs::rename(entry.path(), tmp / entry.path().filename());
    fs::remove(model_dir);
    optimizer.save(tmp / kOptimizerFile);
    write_file_atomically(tmp / kTrainerStateFile, trainer_state_to_json(state).dump(2) + "\n");
  });
  return dir;
}

fs::path save_checkpoint(const fs::path& run_dir, const CheckpointContent& c) {
  return save_checkpoint(
      run_dir, c.state.step,
      [&](const fs::path& model_dir) {
        models::save_pretrained(c.model, c.config, model_dir, /*force=*/false, c.tokenizer_from);
      },
      c.optimizer, c.state);
}

void prune_checkpoints(const fs::path& run_dir, int64_t keep_last) {
  if (keep_last <= 0) return;
  const auto found = list_checkpoints(run_dir);
  for (size_t i = 0; i + size_t(keep_last) < found.size(); ++i) {
    std::error_code ec;
    fs::remove_all(found[i].second, ec);
    LD_CHECK(!ec, found[i].second.string(), ": cannot remove an old checkpoint (", ec.message(), ")");
  }
}

}  // namespace ld::train
