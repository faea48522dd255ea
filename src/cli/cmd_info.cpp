// `liandan info --model DIR`: what a Hugging Face model folder holds: architecture, sizes, parameter
// count (from the weights, checked against config.json), stored dtype and the memory its weights need.
#include <cstdio>
#include <memory>
#include <set>
#include <string>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"

namespace ld::cli {

namespace {

std::string human_bytes(int64_t bytes) {
  char buf[64];
  const double b = double(bytes);
  if (b >= 1024.0 * 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else if (b >= 1024.0 * 1024)
    std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024));
  else
    std::snprintf(buf, sizeof buf, "%.2f KiB", b / 1024.0);
  return buf;
}

void run_info(const std::string& dir) {
  io::HfModelConfig config = io::read_hf_config(dir);
  // As stored (no conversion): memory-mapped views, so this costs no copy of the weights.
  auto tensors = io::load_checkpoint(dir, std::nullopt);
  int64_t params = 0;
  std::set<std::string> dtypes;
  for (const auto& [name, t] : tensors) {
    if (config.tie_word_embeddings && name == "lm_head.weight") continue;  // the embedding, counted once
    params += t.numel();
    dtypes.insert(std::string(dtype_name(t.dtype())));
  }
  const int64_t expected = io::expected_parameter_count(config);
  LD_CHECK(params == expected, dir, ": the weights hold ", params, " parameters but config.json implies ", expected);
  std::string dtype;
  for (const auto& d : dtypes) dtype += (dtype.empty() ? "" : ", ") + d;

  const models::StackConfig& s = config.stack;
  std::printf("model         %s\n", dir.c_str());
  std::printf("architecture  %s (model_type %s)\n", config.architecture.c_str(), config.model_type.c_str());
  std::printf("layers        %lld, hidden %lld, heads %lld (kv %lld), intermediate %lld\n", (long long)s.n_layer,
              (long long)s.n_embd, (long long)s.n_head, (long long)s.n_kv_head, (long long)s.intermediate_size);
  std::printf("vocab         %lld, context %lld, tied embeddings %s\n", (long long)s.vocab_size,
              (long long)s.n_positions, config.tie_word_embeddings ? "yes" : "no");
  if (config.moe.enabled())
    std::printf("experts       %lld per layer, top-%lld routing\n", (long long)config.moe.num_experts,
                (long long)config.moe.top_k);
  if (config.attention_bias) std::printf("attention     q/k/v biases\n");
  if (config.sliding_window > 0) std::printf("attention     sliding window %lld\n", (long long)config.sliding_window);
  std::printf("parameters    %lld\n", (long long)params);
  std::printf("dtype         %s\n", dtype.c_str());
  std::printf("memory f32    %s (%lld bytes)\n", human_bytes(params * 4).c_str(), (long long)(params * 4));
  std::printf("memory bf16   %s (%lld bytes)\n", human_bytes(params * 2).c_str(), (long long)(params * 2));
}

}  // namespace

void add_info_command(CLI::App& app, std::function<void()>& run) {
  auto* cmd = app.add_subcommand("info", "Describe a Hugging Face model folder: architecture, parameters, dtype, memory");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("--model", *dir, "model folder (config.json + model.safetensors)")->required();
  run = [dir] { run_info(*dir); };
}

}  // namespace ld::cli
