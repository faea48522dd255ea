// liandan_bench_train: tokens/s of a whole training step, the twin of the peer's
// /work/shared/bench/bench_train.py (same configs, same protocol, same JSON field names).
// One step = forward + cross-entropy (train::clm_loss, the trainer's loss) + backward + AdamW
// (train::Optimizer, the trainer's: lr 3e-4, betas 0.9/0.999, eps 1e-8, weight decay 0.1 on weight
// matrices, none on norms, biases and embeddings) + zero_grad, on 4 batches of random tokens used in
// turn. `--warmup` steps are not timed, `--steps` are; tokens_per_s = B*T / median(step time).
// flops_per_token = 6*N + 12*n_layer*n_embd*T with N = params - wpe (the peer's formula, which is
// train::training_flops_per_token). With --lora: rank-8 LoRA (alpha 16) on every block's attn.c_attn
// and attn.c_proj through peft::apply_lora (the base frozen), the optimizer over the LoRA tensors only
// (weight decay 0.1 on them, as the peer), and the peer's LoRA formula 4*N + 12*n_layer*n_embd*T
// (no weight gradients for the frozen base; the adapters' own FLOPs ignored); params is then the
// base's, trainable_params the adapters'. peak_rss_mib is getrusage's ru_maxrss of this process;
// peak_tensor_mib the most tensor bytes the caching allocator had handed out at once, and
// resident_tensor_mib what is still handed out after the last step (weights, optimizer state and
// whatever zero_grad keeps): their difference is the step's activations, gradients and temporaries;
// cached_tensor_mib the freed blocks the allocator keeps for reuse (resident, but not in use).
//
// Usage: liandan_bench_train [--config tiny|small|gpt2-124M] [--threads 2] [--precision fp32|bf16]
//            [--checkpointing none|all] [--lora] [--steps 10] [--warmup 3] [--tag S]
//            [--device cpu|cuda|cuda:N] [--batch B] [--peak-tflops P] [--profile N]
//            [--bf16-weights on|off] [--stochastic-rounding]
// --device places the model, optimizer state and batches there (nn::Module::to, as train.device);
// each step then ends with a device synchronize, so its time is the device's. --batch overrides the
// config's B (the peer's gpt2-124M-b32 is --config gpt2-124M --batch 32). --peak-tflops adds
// mfu = achieved_tflops / peak (the peer's default on CUDA is 790, the H200's bf16 dense rate).
// --precision bf16 runs forward and backward under ops::AutocastScope(bf16) (fp32 master weights
// and optimizer state, as the peer's autocast); it is refused when this build has no autocast.
// Under bf16 the products read bf16 working copies of the weights that AdamW writes in its update,
// as the trainer's train.bf16_weights (on by default) does; --bf16-weights off rounds each weight in
// every product instead, --stochastic-rounding rounds the copies stochastically.
// --profile N runs N more steps after the timed ones under a KernelProfile (backend/kernel_profile.hpp:
// every kernel timed between two synchronizes, so those steps are slower and are not in tokens_per_s)
// and prints where a step's time goes, kernel by kernel, as a markdown table on stderr; the JSON gets
// the same rows as "profile" and the profiled steps' median as "profiled_step_s".
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/backend.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "backend/kernel_profile.hpp"
#include "core/allocator.hpp"
#include "bench_train_setup.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "ops/working_weights.hpp"
#include "peft/lora.hpp"
#include "train/objectives.hpp"
#include "train/optimizer.hpp"
#include "train/plan.hpp"
#include "train/run_config.hpp"

#if __has_include("ops/autocast.hpp")
#include "ops/autocast.hpp"
#define LD_BENCH_HAS_AUTOCAST 1
#else
#define LD_BENCH_HAS_AUTOCAST 0
#endif

namespace {

using ld::Tensor;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string config = "tiny";
  int threads = 2;
  std::string precision = "fp32";
  std::string checkpointing = "none";
  bool lora = false;
  int steps = 10;
  int warmup = 3;
  std::string tag;
  std::string device = "cpu";
  int64_t batch = 0;  // 0: the config's
  double peak_tflops = 0;
  int profile_steps = 0;
  bool bf16_weights = true;
  bool stochastic_rounding = false;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "liandan_bench_train: " << message << "\n"
            << "usage: liandan_bench_train [--config tiny|small|gpt2-124M] [--threads 2] [--precision fp32|bf16] "
               "[--checkpointing none|all] [--lora] [--steps 10] [--warmup 3] [--tag S] [--device cpu|cuda|cuda:N] "
               "[--batch B] [--peak-tflops P] [--profile N] [--bf16-weights on|off] [--stochastic-rounding]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--config") o.config = value();
      else if (a == "--threads") o.threads = std::stoi(value());
      else if (a == "--precision") o.precision = value();
      else if (a == "--checkpointing") o.checkpointing = value();
      else if (a == "--lora") o.lora = true;
      else if (a == "--steps") o.steps = std::stoi(value());
      else if (a == "--warmup") o.warmup = std::stoi(value());
      else if (a == "--tag") o.tag = value();
      else if (a == "--device") o.device = value();
      else if (a == "--batch") o.batch = std::stoll(value());
      else if (a == "--peak-tflops") o.peak_tflops = std::stod(value());
      else if (a == "--profile") o.profile_steps = std::stoi(value());
      else if (a == "--bf16-weights") {
        const std::string v = value();
        if (v != "on" && v != "off") usage_error("--bf16-weights must be on or off");
        o.bf16_weights = v == "on";
      }
      else if (a == "--stochastic-rounding") o.stochastic_rounding = true;
      else usage_error("unknown option " + a);
    } catch (const std::logic_error&) {
      usage_error("bad number for " + a);
    }
  }
  if (o.precision != "fp32" && o.precision != "bf16") usage_error("--precision must be fp32 or bf16");
  if (o.precision == "bf16" && !LD_BENCH_HAS_AUTOCAST)
    usage_error("--precision bf16 needs ops/autocast.hpp, which this build does not have");
  if (o.checkpointing != "none" && o.checkpointing != "all") usage_error("--checkpointing must be none or all");
  if (o.steps < 1 || o.warmup < 0 || o.threads < 1) usage_error("--steps and --threads must be >= 1, --warmup >= 0");
  if (o.batch < 0 || o.peak_tflops < 0 || o.profile_steps < 0)
    usage_error("--batch, --peak-tflops and --profile must be >= 0");
  return o;
}

ld::bench::BenchConfig config_for(const std::string& name) {
  const auto c = ld::bench::bench_config(name);
  if (!c) usage_error("unknown --config " + name + " (tiny, small, gpt2-124M)");
  return *c;
}

// The peer's LoRA (gpt_model.py add_lora): rank 8, alpha 16, on attn qkv and out proj; apply_lora
// freezes the whole base first.
constexpr int64_t kLoraRank = 8;
constexpr double kLoraAlpha = 16.0;

ld::peft::LoraModel add_lora(ld::models::CausalLM& model, ld::Generator& gen) {
  ld::peft::LoraConfig c;
  c.r = kLoraRank;
  c.alpha = kLoraAlpha;
  c.target_modules = {"attn.c_attn", "attn.c_proj"};
  return ld::peft::apply_lora(model, c, gen, "gpt2");
}

// The peer's formula: 6*N + attention for full training; a frozen base skips its weight gradients
// (2*N of the 6*N), so 4*N + attention with LoRA.
int64_t flops_per_token(const ld::io::HfModelConfig& hf, int64_t T, bool lora) {
  const int64_t n = ld::train::active_parameters(hf) - ld::train::lookup_parameters(hf);
  return ld::train::training_flops_per_token(hf, T) - (lora ? 2 * n : 0);
}

// One training step; returns the loss (read back to the host, as the peer's loss.item()).
double train_step(const ld::models::CausalLM& model, ld::train::Optimizer& optimizer, const ld::bench::Batch& batch,
                  const Options& o) {
  double loss = 0;
  {
#if LD_BENCH_HAS_AUTOCAST
    std::optional<ld::ops::AutocastScope> autocast;
    if (o.precision == "bf16") autocast.emplace(ld::ops::ComputePrecision::bf16);
#else
    (void)o;
#endif
    const ld::train::LossParts parts = ld::train::clm_loss(model, batch.inputs, batch.targets);
    parts.loss.backward();
    loss = parts.loss.item();
  }
  optimizer.step();
  optimizer.zero_grad();
  return loss;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

constexpr double kMiB = 1024.0 * 1024.0;

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

struct ProfileResult {
  double median_step_s = 0;
  nlohmann::json rows = nlohmann::json::array();
};

// o.profile_steps more steps under a KernelProfile; prints its table on stderr.
ProfileResult profile_steps(const ld::models::CausalLM& model, ld::train::Optimizer& optimizer,
                            const std::vector<ld::bench::Batch>& data, const Options& o, const std::string& name) {
  ProfileResult result;
  if (o.profile_steps == 0) return result;
  ld::KernelProfile profile;
  std::vector<double> times;
  for (int i = 0; i < o.profile_steps; ++i) {
    const auto t0 = Clock::now();
    train_step(model, optimizer, data[size_t(i) % data.size()], o);
    ld::backend_for(data.front().inputs.device()).synchronize();
    times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    std::cerr << name << " profiled step " << i << " " << times.back() << "s\n";
  }
  result.median_step_s = median(times);
  double kernel_s = 0;
  for (const ld::KernelTime& k : profile.totals()) {
    kernel_s += k.seconds;
    result.rows.push_back({{"kernel", k.kernel}, {"device", k.device}, {"calls", k.calls}, {"seconds", k.seconds},
                           {"flops", k.flops}});
  }
  std::cerr << name << " where a step's time goes (" << o.profile_steps << " profiled steps of median "
            << result.median_step_s << " s, " << kernel_s / o.profile_steps
            << " s of it in kernels; each kernel timed between two synchronizes):\n"
            << profile.table(o.profile_steps);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    ld::set_num_threads(o.threads);
    ld::train::TrainSection where;
    where.device = o.device;
    const ld::Device device = ld::train::training_device(where);  // one clear error for a bad or absent device
    const ld::bench::BenchConfig bc = config_for(o.config);
    const int64_t B = o.batch > 0 ? o.batch : bc.batch, T = bc.stack.n_positions;
    const ld::io::HfModelConfig hf = ld::io::make_hf_config(bc.stack, /*tie_word_embeddings=*/true);
    ld::Generator gen(1234);
    std::unique_ptr<ld::models::CausalLM> model = ld::models::make_causal_lm(hf, gen);
    model->set_checkpointing(o.checkpointing == "all" ? 1 : 0);
    int64_t trainable = model->parameter_count();
    if (o.lora) trainable = add_lora(*model, gen).trainable_parameter_count();
    model->to(device);  // before the optimizer, whose state is made where each parameter is
    ld::train::Optimizer optimizer(model->named_parameters(), ld::bench::peer_optimizer_settings());
    std::unique_ptr<ld::ops::WorkingWeights> working;  // as the trainer's train.bf16_weights
    if (o.precision == "bf16" && o.bf16_weights) {
      working = std::make_unique<ld::ops::WorkingWeights>(optimizer.params(), o.stochastic_rounding, 1234);
      optimizer.set_working_weights(working.get());
    }
    std::vector<ld::bench::Batch> data = ld::bench::random_batches(4, B, T, bc.stack.vocab_size);
    for (ld::bench::Batch& batch : data) batch = {batch.inputs.to(device), batch.targets.to(device)};
    ld::Backend& backend = ld::backend_for(device);

    const std::string name = "[" + o.config + " " + o.precision + " checkpointing " + o.checkpointing +
                             (o.lora ? " lora" : "") + "]";
    std::vector<double> warm_times, times, losses;
    for (int i = 0; i < o.warmup + o.steps; ++i) {
      const auto t0 = Clock::now();
      const double loss = train_step(*model, optimizer, data[size_t(i) % data.size()], o);
      backend.synchronize();  // the optimizer step queued on a device is part of this step
      const double dt = std::chrono::duration<double>(Clock::now() - t0).count();
      const bool warm = i < o.warmup;
      (warm ? warm_times : times).push_back(dt);
      losses.push_back(loss);
      std::cerr << name << (warm ? " warmup " : " step ") << (warm ? i : i - o.warmup) << " " << dt << "s loss "
                << loss << "\n";
    }
    const ld::AllocatorStats tensors = ld::CachingHostAllocator::instance().stats();  // host tensors only
    const ProfileResult profile = profile_steps(*model, optimizer, data, o, name);
    const double med = median(times);
    const double tok_s = double(B * T) / med;
    const int64_t flops = flops_per_token(hf, T, o.lora);
    nlohmann::json j = {
        {"program", "liandan"},
        {"bench", o.lora ? "train_lora" : "train"},
        {"config", o.config},
        {"tag", o.tag},
        {"device", device.str()},
        {"dtype", o.precision == "bf16" ? "bfloat16" : "float32"},
        {"precision", o.precision},
        {"bf16_weights", o.precision == "bf16" && o.bf16_weights},
        {"stochastic_rounding", o.stochastic_rounding},
        {"checkpointing", o.checkpointing},
        {"n_layer", bc.stack.n_layer},
        {"n_head", bc.stack.n_head},
        {"n_embd", bc.stack.n_embd},
        {"vocab", bc.stack.vocab_size},
        {"T", T},
        {"B", B},
        {"params", model->parameter_count() - (o.lora ? trainable : 0)},
        {"trainable_params", trainable},
        {"lora", o.lora},
        {"threads", o.threads},
        {"warmup_times_s", warm_times},
        {"step_times_s", times},
        {"median_step_s", med},
        {"min_step_s", *std::min_element(times.begin(), times.end())},
        {"max_step_s", *std::max_element(times.begin(), times.end())},
        {"tokens_per_s", tok_s},
        {"flops_params_N", ld::train::active_parameters(hf) - ld::train::lookup_parameters(hf)},
        {"flops_per_token", flops},
        {"flops_formula", std::string(o.lora ? "4*N" : "6*N") + " + 12*n_layer*n_embd*T, N = params - wpe"},
        {"achieved_tflops", double(flops) * tok_s / 1e12},
        {"peak_tflops", o.peak_tflops},
        {"mfu", o.peak_tflops > 0 ? nlohmann::json(double(flops) * tok_s / 1e12 / o.peak_tflops) : nlohmann::json()},
        {"loss_first", losses.front()},
        {"loss_last", losses.back()},
        {"ln_vocab", std::log(double(bc.stack.vocab_size))},
        {"peak_rss_mib", peak_rss_mib()},
        {"peak_tensor_mib", double(tensors.peak_bytes_in_use) / kMiB},
        {"resident_tensor_mib", double(tensors.bytes_in_use) / kMiB},
        {"cached_tensor_mib", double(tensors.bytes_cached) / kMiB},
    };
    if (o.profile_steps > 0) {
      j["profiled_step_s"] = profile.median_step_s;
      j["profile"] = profile.rows;
    }
    std::cout << j.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "liandan_bench_train: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
