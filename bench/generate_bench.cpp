// liandan_bench_generate: greedy decode throughput with the KV cache, the twin of the peer's
// /work/shared/bench/bench_infer.py (same protocol, same JSON fields): `--batch` sequences, a prompt
// of 16 random tokens each (seeded), 128 new tokens by argmax; the prefill (logits of the last
// position only) gives token 1, then 127 single-token decode steps give tokens 2..128. One warm-up
// generation, then `--reps` timed ones; each figure is the median over the reps.
//   decode_tok_s_median = batch*127 / decode time; decode_ms_per_step_median = decode time / 127;
//   e2e_tok_s_median = batch*128 / (prefill + decode) (the peer's JSON field names).
// Weights are random (seeded). --dtype bfloat16 stores the Linear and Embedding weights in bf16
// (infer::to_bf16_weights); activations and the KV cache stay f32.
//
// Usage: liandan_bench_generate [--config tiny|small|gpt2-124M] [--batch 1] [--dtype float32|bfloat16]
//            [--threads 2] [--reps 5] [--new-tokens 128] [--prompt-len 16] [--arch gpt2|llama] [--tag S]
//            [--decode fused|general] [--head argmax|logits] [--top-k K] [--device cpu|cuda|cuda:N]
// --decode general runs every decode step through model.run() instead of infer::DecodeStep (what
// infer::generate uses for these models), to measure what the fused step saves. --head logits has the
// fused step compute every logit (DecodeStep::run) and takes the argmax here, instead of
// DecodeStep::run_greedy's screened argmax (what infer::generate does when decoding greedily).
// --top-k K samples each token from the K most likely at temperature 1 (seeded infer::Sampler, one
// per row) instead of taking the argmax, with DecodeStep::run_top_k (--head argmax) or run(); the
// peer has no such mode.
// --device puts the weights, the prompt and the KV cache there (nn::Module::to, as train.device) and
// synchronizes it before each timer read, as the peer does. The fused step is host code, so a device
// decodes through model.run() (--decode general, its default there), as infer::generate does. The
// cache is made once, where the model is (CausalLM::make_cache), and reset before each generation,
// as the peer allocates its cache before starting the timer.
// --arch llama runs a LLaMA stack of the same sizes (intermediate_size 8C/3: the same parameter count
// as GPT-2's 4C MLP), for use while GPT-2 cannot be built.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/grad_mode.hpp"
#include "backend/backend.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "infer/bf16_weights.hpp"
#include "infer/decode_step.hpp"
#include "infer/sampling.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "ops/ops.hpp"
#include "train/run_config.hpp"

namespace {

using ld::Tensor;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string config = "tiny";
  int64_t batch = 1;
  std::string dtype = "float32";
  int threads = 2;
  int reps = 5;
  int64_t new_tokens = 128;
  int64_t prompt_len = 16;
  std::string arch = "gpt2";
  std::string tag;
  std::string decode;  // fused on the host, general on a device
  std::string device = "cpu";
  std::string head = "argmax";  // fused decode: run_greedy, or logits: run() and an argmax here
  int top_k = 0;                 // > 0: sample from the top k at temperature 1 instead of argmax
};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "liandan_bench_generate: " << message << "\n"
            << "usage: liandan_bench_generate [--config tiny|small|gpt2-124M] [--batch 1] "
               "[--dtype float32|bfloat16] [--threads 2] [--reps 5] [--new-tokens 128] [--prompt-len 16] "
               "[--arch gpt2|llama] [--tag S] [--decode fused|general] [--head argmax|logits] [--top-k K] "
               "[--device cpu|cuda|cuda:N]\n";
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
      else if (a == "--batch") o.batch = std::stoll(value());
      else if (a == "--dtype") o.dtype = value();
      else if (a == "--threads") o.threads = std::stoi(value());
      else if (a == "--reps") o.reps = std::stoi(value());
      else if (a == "--new-tokens") o.new_tokens = std::stoll(value());
      else if (a == "--prompt-len") o.prompt_len = std::stoll(value());
      else if (a == "--arch") o.arch = value();
      else if (a == "--tag") o.tag = value();
      else if (a == "--decode") o.decode = value();
      else if (a == "--device") o.device = value();
      else if (a == "--head") o.head = value();
      else if (a == "--top-k") o.top_k = std::stoi(value());
      else usage_error("unknown option " + a);
    } catch (const std::logic_error&) {
      usage_error("bad number for " + a);
    }
  }
  if (o.dtype != "float32" && o.dtype != "bfloat16") usage_error("--dtype must be float32 or bfloat16");
  if (o.arch != "gpt2" && o.arch != "llama") usage_error("--arch must be gpt2 or llama");
  if (o.decode.empty()) o.decode = o.device == "cpu" ? "fused" : "general";
  if (o.decode != "fused" && o.decode != "general") usage_error("--decode must be fused or general");
  if (o.decode == "fused" && o.device != "cpu")
    usage_error("--decode fused is host code (infer::DecodeStep); on --device " + o.device + " use --decode general");
  if (o.head != "argmax" && o.head != "logits") usage_error("--head must be argmax or logits");
  if (o.top_k < 0) usage_error("--top-k must be >= 0 (0: argmax)");
  if (o.top_k > 0 && o.decode != "fused") usage_error("--top-k needs --decode fused");
  if (o.batch < 1 || o.reps < 1 || o.new_tokens < 2 || o.prompt_len < 1 || o.threads < 1)
    usage_error("--batch, --reps, --prompt-len, --threads must be >= 1 and --new-tokens >= 2");
  return o;
}

// bench_infer.py's CONFIGS (n_layer, n_head, n_embd, vocab, T = max positions).
ld::models::StackConfig stack_for(const Options& o) {
  ld::models::StackConfig s;
  if (o.config == "tiny") s.n_layer = 4, s.n_head = 4, s.n_embd = 256, s.vocab_size = 8192, s.n_positions = 256;
  else if (o.config == "small") s.n_layer = 6, s.n_head = 6, s.n_embd = 384, s.vocab_size = 8192, s.n_positions = 256;
  else if (o.config == "gpt2-124M")
    s.n_layer = 12, s.n_head = 12, s.n_embd = 768, s.vocab_size = 50257, s.n_positions = 1024;
  else usage_error("unknown --config " + o.config + " (tiny, small, gpt2-124M)");
  s.n_kv_head = s.n_head;
  s.kind = o.arch == "gpt2" ? ld::models::StackKind::gpt2 : ld::models::StackKind::llama;
  s.intermediate_size = s.kind == ld::models::StackKind::gpt2 ? 4 * s.n_embd : 8 * s.n_embd / 3;
  return s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Timing {
  double prefill_s = 0, decode_s = 0;
};

// The time once the work queued on `backend` (a device's stream) is done.
Clock::time_point synchronized_now(ld::Backend& backend) {
  backend.synchronize();
  return Clock::now();
}

double seconds_since(ld::Backend& backend, Clock::time_point t0) {
  return std::chrono::duration<double>(synchronized_now(backend) - t0).count();
}

// One generation: prefill, then new_tokens - 1 decode steps. The argmax is read back to the host
// each step, as a generation loop has to (the peer's .item()/cat does the same work).
Timing generate_once(const ld::models::CausalLM& model, ld::models::KvCache& cache, const Tensor& prompt,
                     const Options& o, ld::Backend& backend) {
  cache.reset();
  Timing t;
  auto c0 = synchronized_now(backend);
  Tensor logits = model.run({.ids = prompt, .cache = &cache, .attention_mask = Tensor(), .last_position_only = true})
                      .logits;
  Tensor next = ld::ops::argmax(logits, -1);  // [B, 1] i64
  std::vector<int64_t> tokens = next.to(ld::kCPU).to_vector<int64_t>();
  t.prefill_s = seconds_since(backend, c0);
  auto d0 = synchronized_now(backend);
  if (o.decode == "fused") {
    ld::infer::DecodeStep step(model, cache);
    const std::vector<int64_t> no_padding(static_cast<size_t>(o.batch), 0);
    const int64_t V = model.config().vocab_size;
    std::vector<ld::infer::Sampler> samplers;
    for (int64_t b = 0; b < o.batch; ++b) samplers.emplace_back(ld::infer::SamplingOptions{.top_k = o.top_k}, 1234 + b);
    for (int64_t s = 1; s < o.new_tokens && o.top_k > 0; ++s) {
      // As infer::generate samples from the top k: the step keeps the k largest logits where it can.
      const std::span<const float> rows =
          o.head == "argmax" ? step.run_top_k(tokens, no_padding, o.top_k) : step.run(tokens, no_padding);
      for (int64_t b = 0; b < o.batch; ++b)
        tokens[static_cast<size_t>(b)] =
            samplers[static_cast<size_t>(b)].sample(rows.subspan(static_cast<size_t>(b * V), static_cast<size_t>(V)), {});
    }
    for (int64_t s = 1; s < o.new_tokens && o.top_k == 0; ++s) {
      // As infer::generate decodes greedily: the argmax straight from the step where it can.
      const ld::infer::DecodeStep::Greedy g = o.head == "argmax" ? step.run_greedy(tokens, no_padding)
                                                                 : ld::infer::DecodeStep::Greedy{
                                                                       .tokens = {}, .logits = step.run(tokens, no_padding)};
      if (!g.tokens.empty()) {
        std::copy(g.tokens.begin(), g.tokens.end(), tokens.begin());
        continue;
      }
      for (int64_t b = 0; b < o.batch; ++b) {
        const auto row = g.logits.subspan(static_cast<size_t>(b * V), static_cast<size_t>(V));
        tokens[static_cast<size_t>(b)] = std::max_element(row.begin(), row.end()) - row.begin();
      }
    }
    t.decode_s = seconds_since(backend, d0);
    return t;
  }
  for (int64_t step = 1; step < o.new_tokens; ++step) {
    logits = model.run({.ids = next, .cache = &cache, .attention_mask = Tensor(), .last_position_only = true}).logits;
    next = ld::ops::argmax(logits, -1);
    tokens = next.to(ld::kCPU).to_vector<int64_t>();
  }
  t.decode_s = seconds_since(backend, d0);
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  try {
    ld::set_num_threads(o.threads);
    const ld::Device device = ld::train::usable_device(o.device, "--device");  // one clear error if absent
    ld::autograd::NoGradGuard no_grad;
    ld::io::HfModelConfig hf = ld::io::make_hf_config(stack_for(o), /*tie_word_embeddings=*/true);
    ld::Generator gen(1234);
    std::unique_ptr<ld::models::CausalLM> model = ld::models::make_causal_lm(hf, gen);
    if (o.dtype == "bfloat16") ld::infer::to_bf16_weights(*model);  // rounded on the host, then moved
    model->to(device);
    ld::Backend& backend = ld::backend_for(device);
    ld::models::KvCache cache = model->make_cache(o.batch, o.prompt_len + o.new_tokens);
    std::mt19937_64 rng(0);
    std::uniform_int_distribution<int64_t> pick(0, hf.stack.vocab_size - 1);
    std::vector<int64_t> ids(static_cast<size_t>(o.batch * o.prompt_len));
    for (auto& id : ids) id = pick(rng);
    const Tensor prompt = ld::from_vector(ids, {o.batch, o.prompt_len}).to(device);

    std::cerr << "liandan_bench_generate: " << o.config << " (" << o.arch << ") batch " << o.batch << " " << o.dtype
              << " on " << device.str() << ", warm-up\n";
    generate_once(*model, cache, prompt, o, backend);
    std::vector<double> prefill, decode, e2e;
    for (int r = 0; r < o.reps; ++r) {
      Timing t = generate_once(*model, cache, prompt, o, backend);
      prefill.push_back(t.prefill_s);
      decode.push_back(t.decode_s);
      e2e.push_back(t.prefill_s + t.decode_s);
      std::cerr << "  rep " << r << ": prefill " << t.prefill_s * 1e3 << " ms, decode " << t.decode_s * 1e3 << " ms\n";
    }
    const double steps = double(o.new_tokens - 1), B = double(o.batch);
    std::vector<double> each_rate;
    for (double d : decode) each_rate.push_back(B * steps / d);
    nlohmann::json j = {
        {"program", "liandan"},
        {"config", o.config},
        {"arch", o.arch},
        {"batch", o.batch},
        {"dtype", o.dtype},
        {"threads", o.threads},
        {"prompt_len", o.prompt_len},
        {"new_tokens", o.new_tokens},
        {"reps", o.reps},
        {"params", model->parameter_count()},
        {"prefill_ms_median", median(prefill) * 1e3},
        {"decode_tok_s_each", each_rate},
        {"decode_tok_s_median", B * steps / median(decode)},
        {"decode_ms_per_step_median", median(decode) * 1e3 / steps},
        {"e2e_tok_s_median", B * double(o.new_tokens) / median(e2e)},
        {"tag", o.tag},
        {"decode", o.decode},
        {"head", o.head},
        {"top_k", o.top_k},
        {"device", device.str()},
    };
    std::cout << j.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "liandan_bench_generate: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
