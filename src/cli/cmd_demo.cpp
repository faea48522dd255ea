// `liandan demo`: train a tiny 2-layer GPT on generated data and print the loss as it falls.
// The data is a Markov chain in which every token has two equally likely successors, so the
// best achievable loss is ln 2 and a model that learns the chain gets visibly close to it.
#include <chrono>
#include <cmath>
#include <cstdio>

#include "backend/cpu/cpu_backend.hpp"
#include "cli/commands.hpp"
#include "core/rng.hpp"
#include "models/tiny_transformer.hpp"
#include "ops/ops.hpp"
#include "train/adamw.hpp"

namespace ld::cli {

namespace {

struct DemoOptions {
  int steps = 50;
  int layers = 2;
  int64_t batch = 16, seq = 64, embd = 64, heads = 4, vocab = 64;
  float lr = 3e-3f;
  uint64_t seed = 1234;
  int threads = 0;
  std::string kind = "gpt2";
};

// Successor table: token t goes to next[t][0] or next[t][1].
std::vector<std::array<int64_t, 2>> make_chain(int64_t vocab, Generator& gen) {
  std::vector<float> r = uniform({vocab * 2}, 0.0f, float(vocab), &gen).to_vector<float>();
  std::vector<std::array<int64_t, 2>> next(static_cast<size_t>(vocab));
  for (int64_t t = 0; t < vocab; ++t)
    next[size_t(t)] = {int64_t(r[size_t(2 * t)]) % vocab, int64_t(r[size_t(2 * t + 1)]) % vocab};
  return next;
}

// A batch of B sequences of T+1 tokens; inputs are the first T, targets the last T.
std::pair<Tensor, Tensor> sample_batch(const std::vector<std::array<int64_t, 2>>& next, int64_t batch, int64_t seq,
                                       Generator& gen) {
  std::vector<float> coin = rand({batch * (seq + 1)}, &gen).to_vector<float>();
  std::vector<int64_t> inputs, targets;
  for (int64_t b = 0; b < batch; ++b) {
    int64_t tok = int64_t(coin[size_t(b * (seq + 1))] * float(next.size())) % int64_t(next.size());
    for (int64_t t = 0; t < seq; ++t) {
      int64_t nxt = next[size_t(tok)][coin[size_t(b * (seq + 1) + t + 1)] < 0.5f ? 0 : 1];
      inputs.push_back(tok);
      targets.push_back(nxt);
      tok = nxt;
    }
  }
  return {from_vector(inputs, {batch, seq}), from_vector(targets, {batch * seq})};
}

void run_demo(const DemoOptions& o) {
  if (o.threads > 0) set_num_threads(o.threads);
  models::StackConfig config;
  LD_CHECK(o.kind == "gpt2" || o.kind == "llama", "demo: --kind must be gpt2 or llama, got '", o.kind, "'");
  config.kind = o.kind == "gpt2" ? models::StackKind::gpt2 : models::StackKind::llama;
  config.n_layer = o.layers, config.n_head = o.heads, config.n_kv_head = o.heads;
  config.n_embd = o.embd, config.vocab_size = o.vocab, config.n_positions = o.seq;
  config.intermediate_size = 4 * o.embd;
  models::validate(config);

  Generator gen(o.seed);
  models::Params params = models::init_params(config, gen);
  std::vector<Tensor> decay, no_decay;
  int64_t n_params = 0;
  for (auto& [name, p] : params) {
    (p.dim() >= 2 ? decay : no_decay).push_back(p);
    n_params += p.numel();
  }
  train::AdamWOptions opt;
  opt.lr = o.lr;
  train::AdamW adamw({{decay, 0.1f}, {no_decay, 0.0f}}, opt);
  auto chain = make_chain(o.vocab, gen);

  std::printf("liandan demo: %s, %d layers, %lld parameters, batch %lld x %lld tokens, %d threads\n",
              o.kind.c_str(), o.layers, (long long)n_params, (long long)o.batch, (long long)o.seq, num_threads());
  std::printf("data: a Markov chain over %lld tokens, two successors each (best possible loss ln 2 = %.3f)\n",
              (long long)o.vocab, std::log(2.0));
  auto start = std::chrono::steady_clock::now();
  double first_loss = 0, last_loss = 0;
  for (int step = 1; step <= o.steps; ++step) {
    auto [inputs, targets] = sample_batch(chain, o.batch, o.seq, gen);
    Tensor logits = models::forward_logits(config, params, inputs);
    Tensor loss = ops::cross_entropy(logits.reshape({-1, o.vocab}), targets);
    adamw.zero_grad();
    loss.backward();
    adamw.step();
    last_loss = loss.item();
    if (step == 1) first_loss = last_loss;
    LD_CHECK(std::isfinite(last_loss), "demo: loss became ", last_loss, " at step ", step);
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step == 1 || step % 5 == 0 || step == o.steps) {
      double tok_s = double(step * o.batch * o.seq) / elapsed;
      std::printf("step %3d/%d  loss %.4f  %8.0f tok/s  ETA %.1fs\n", step, o.steps, last_loss, tok_s,
                  elapsed / step * (o.steps - step));
      std::fflush(stdout);
    }
  }
  std::printf("loss fell from %.4f to %.4f in %d steps\n", first_loss, last_loss, o.steps);
}

}  // namespace

void add_demo_command(CLI::App& app, std::function<void()>& run) {
  auto* cmd = app.add_subcommand("demo", "Train a tiny 2-layer GPT on generated data and show the loss falling");
  auto o = std::make_shared<DemoOptions>();
  cmd->add_option("--steps", o->steps, "training steps")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--layers", o->layers, "transformer blocks")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--batch", o->batch, "sequences per step")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seq", o->seq, "tokens per sequence")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--embd", o->embd, "model width")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--heads", o->heads, "attention heads")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--vocab", o->vocab, "vocabulary size of the generated chain")->capture_default_str()->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--lr", o->lr, "AdamW learning rate")->capture_default_str();
  cmd->add_option("--seed", o->seed, "random seed (data and weights)")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads (default: OMP_NUM_THREADS or all cores)");
  cmd->add_option("--kind", o->kind, "gpt2 or llama")->capture_default_str();
  run = [o] { run_demo(*o); };
}

}  // namespace ld::cli
