// `liandan plan --config FILE [--tokens N] [--tokens-per-s X] [--section.key=value ...]`: what the
// run a config describes will cost: parameters, FLOPs per token, memory (weights, gradients,
// optimizer state, activations with and without checkpointing) and the time for N tokens at a
// throughput measured here (a few timed training steps of the model on random tokens) or given.
#include <cstdio>
#include <memory>
#include <string>

#include "backend/cpu/cpu_backend.hpp"
#include "cli/commands.hpp"
#include "core/error.hpp"
#include "train/plan.hpp"
#include "train/run_config.hpp"

namespace ld::cli {

namespace {

struct PlanOptions {
  std::string config;
  double tokens = 0;        // 0: max_steps x tokens per step
  double tokens_per_s = 0;  // 0: measure
  int64_t steps = 2;
  bool print_docs = false;
};

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

std::string human_bytes(int64_t bytes) {
  char buf[64];
  const double b = double(bytes);
  if (b >= 1024.0 * 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / (1024.0 * 1024));
  return buf;
}

std::string duration(double seconds) {
  char buf[64];
  if (seconds < 60)
    std::snprintf(buf, sizeof buf, "%.1f s", seconds);
  else if (seconds < 48 * 3600)
    std::snprintf(buf, sizeof buf, "%lldh %02lldm %02llds", (long long)(seconds / 3600),
                  (long long)(seconds / 60) % 60, (long long)seconds % 60);
  else
    std::snprintf(buf, sizeof buf, "%.1f days", seconds / 86400);
  return buf;
}

void print_model(const train::RunConfig& c, const train::Plan& p) {
  const io::HfModelConfig& hf = c.model.hf;
  const models::StackConfig& s = hf.stack;
  std::printf("model         %s (%s): %lld layers, hidden %lld, %lld heads (kv %lld), vocab %lld\n",
              hf.model_type.c_str(), hf.architecture.c_str(), (long long)s.n_layer, (long long)s.n_embd,
              (long long)s.n_head, (long long)s.n_kv_head, (long long)s.vocab_size);
  std::printf("parameters    %s\n", with_commas(p.parameters).c_str());
  if (hf.moe.enabled())
    std::printf("active        %s per token (%lld of %lld experts)\n", with_commas(p.active_parameters).c_str(),
                (long long)hf.moe.top_k, (long long)hf.moe.num_experts);
  std::printf("FLOPs/token   %s = 6 x %s + 12 x %lld x %lld x %lld (training, T=%lld)\n",
              with_commas(p.flops_per_token).c_str(), with_commas(p.flops_parameters).c_str(), (long long)s.n_layer,
              (long long)s.n_embd, (long long)c.train.seq_len, (long long)c.train.seq_len);
  std::printf("step          %lld x %lld tokens x grad_accum %lld = %s tokens\n", (long long)c.train.batch_size,
              (long long)c.train.seq_len, (long long)c.train.grad_accum, with_commas(p.tokens_per_step).c_str());
}

void print_memory(const train::RunConfig& c, const train::Plan& p) {
  std::printf("memory        weights %s (fp32), gradients %s, optimizer state %s (%s)\n",
              human_bytes(p.weight_bytes).c_str(), human_bytes(p.gradient_bytes).c_str(),
              human_bytes(p.optimizer_bytes).c_str(), c.train.optimizer.c_str());
  if (p.half_copy_bytes > 0)
    std::printf("              %s matmul scratch %s\n", c.train.precision.c_str(), human_bytes(p.half_copy_bytes).c_str());
  std::printf("activations   %s without checkpointing, %s with (all layers), per micro-batch (f32: autocast rounds "
              "only the matmuls' operands)\n",
              human_bytes(p.activation_bytes_none).c_str(), human_bytes(p.activation_bytes_all).c_str());
  std::printf("total         %s (checkpointing %s)\n", human_bytes(p.total_bytes()).c_str(),
              c.train.checkpointing.c_str());
}

void run_plan(const PlanOptions& o, const std::vector<std::string>& extras) {
  if (o.print_docs) {
    std::fputs(train::config_reference_markdown().c_str(), stdout);
    return;
  }
  LD_CHECK(!o.config.empty(), "plan: --config FILE is required");
  const train::RunConfig config = train::load_run_config(o.config, train::parse_overrides(extras));
  const train::Plan p = train::make_plan(config);
  print_model(config, p);
  print_memory(config, p);

  const double tokens = o.tokens > 0 ? o.tokens : double(config.train.max_steps) * double(p.tokens_per_step);
  double tokens_per_s = o.tokens_per_s;
  if (tokens_per_s > 0) {
    std::printf("throughput    %.1f tokens/s (given by --tokens-per-s)\n", tokens_per_s);
  } else {
    std::fflush(stdout);
    if (config.train.threads > 0) set_num_threads(int(config.train.threads));
    const train::Throughput th = train::measure_throughput(config, o.steps);
    tokens_per_s = th.tokens_per_s;
    const std::string where = th.device == "cpu" ? std::to_string(num_threads()) + " threads" : th.device;
    std::printf("throughput    %.1f tokens/s (measured here: %lld timed step(s) of forward + backward + AdamW on "
                "random tokens, %lld tokens each, %s, checkpointing %s, %s, %.2f s)\n",
                tokens_per_s, (long long)th.steps, (long long)th.tokens_per_step, config.train.precision.c_str(),
                config.train.checkpointing.c_str(), where.c_str(), th.seconds);
  }
  std::printf("time          %s for %.4g tokens%s (%.3g PFLOP)\n", duration(tokens / tokens_per_s).c_str(), tokens,
              o.tokens > 0 ? "" : " (max_steps x tokens per step)", tokens * double(p.flops_per_token) / 1e15);
}

}  // namespace

void add_plan_command(CLI::App& app, std::function<void()>& run) {
  auto* cmd = app.add_subcommand("plan", "What a run config will cost: parameters, FLOPs, memory, time");
  auto o = std::make_shared<PlanOptions>();
  cmd->add_option("--config", o->config, "run configuration (YAML; see docs/config.md)");
  cmd->add_option("--tokens", o->tokens, "tokens to train on (default: max_steps x tokens per step)");
  cmd->add_option("--tokens-per-s", o->tokens_per_s, "throughput to assume instead of measuring it");
  cmd->add_option("--steps", o->steps, "timed training steps when measuring (after one warm-up)")->default_val(2);
  cmd->add_flag("--print-config-docs", o->print_docs, "print docs/config.md")->group("");
  cmd->allow_extras();  // --section.key=value overrides
  cmd->footer("Overrides: --section.key=value after the options, e.g. --train.lr=3e-4 --model.n_layer=4");
  run = [o, cmd] { run_plan(*o, cmd->remaining()); };
}

}  // namespace ld::cli
