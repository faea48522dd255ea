#include "train/plan.hpp"

#include <chrono>
#include <random>

#include "backend/backend.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "models/bert.hpp"
#include "models/causal_lm.hpp"
#include "ops/autocast.hpp"
#include "ops/ops.hpp"
#include "train/adamw.hpp"

namespace ld::train {

int64_t lookup_parameters(const io::HfModelConfig& c) {
  const models::StackConfig& s = c.stack;
  const int64_t token_table = s.vocab_size * s.n_embd;
  const int64_t input_embedding = c.tie_word_embeddings ? 0 : token_table;  // tied: it is the lm_head matmul
  if (c.model_type == "gpt2") return s.n_positions * s.n_embd + input_embedding;
  if (c.model_type == "bert") {
    const int64_t tables = (s.n_positions + c.type_vocab_size) * s.n_embd;
    // Without an MLM head (BertModel, classification) the word embedding is never multiplied with.
    const bool has_decoder = c.architecture == "BertForMaskedLM";
    return tables + (has_decoder && c.tie_word_embeddings ? 0 : token_table);
  }
  return input_embedding;  // the LLaMA family has no position table (RoPE)
}

int64_t active_parameters(const io::HfModelConfig& c) {
  if (!c.moe.enabled() || c.moe.top_k == c.moe.num_experts) return io::expected_parameter_count(c);
  // The same model with only top_k experts, then the router's columns for the others back.
  io::HfModelConfig k_experts = c;
  k_experts.moe.num_experts = c.moe.top_k;
  const int64_t router_rest = c.stack.n_layer * c.stack.n_embd * (c.moe.num_experts - c.moe.top_k);
  return io::expected_parameter_count(k_experts) + router_rest;
}

int64_t training_flops_per_token(const io::HfModelConfig& c, int64_t seq_len) {
  const int64_t n = active_parameters(c) - lookup_parameters(c);
  return 6 * n + 12 * c.stack.n_layer * c.stack.n_embd * seq_len;
}

int64_t layer_activation_elements(const io::HfModelConfig& c) {
  const models::StackConfig& s = c.stack;
  const int64_t C = s.n_embd, kv = s.n_kv_head * s.head_dim(), I = s.intermediate_size;
  const int64_t attention = C + (C + 2 * kv) + C + s.n_head;  // input, q k v, output, softmax statistics
  const int64_t mlp_per_path = (s.kind == models::StackKind::llama ? 3 : 2) * I;
  const int64_t mlp = c.moe.enabled() ? c.moe.num_experts + c.moe.top_k * (C + mlp_per_path) : mlp_per_path;
  return 2 * C + attention + C + mlp;
}

int64_t layer_projection_input_elements(const io::HfModelConfig& c) {
  const int64_t C = c.stack.n_embd, I = c.stack.intermediate_size;
  const int64_t attention = C + C;  // the q k v projections' input, the output projection's
  // the up (and gate) projections' input and the down projection's; MoE: the router's, then top_k
  // experts' copies
  const int64_t mlp = c.moe.enabled() ? C + c.moe.top_k * (C + I) : C + I;
  return attention + mlp;
}

int64_t activation_bytes(const io::HfModelConfig& c, int64_t batch, int64_t seq_len, const std::string& checkpointing,
                         int64_t every_k, const std::string& precision) {
  const int64_t input_bytes = precision == "fp32" ? 4 : 2;  // a projection's saved input
  const int64_t L = c.stack.n_layer, C = c.stack.n_embd;
  const int64_t inputs = layer_projection_input_elements(c);
  const int64_t full = 4 * (layer_activation_elements(c) - inputs) + input_bytes * inputs;
  int64_t checkpointed = 0;
  if (checkpointing == "all") checkpointed = L;
  if (checkpointing == "every_k") checkpointed = (L + every_k - 1) / every_k;  // layers 0, k, 2k, ...
  int64_t layers = checkpointed * 4 * C + (L - checkpointed) * full;
  if (checkpointed > 0) layers += full;  // one layer rebuilt at a time in backward
  const int64_t V = c.stack.vocab_size, rows = batch * seq_len;
  if (c.is_causal_lm() && precision != "fp16") {
    // CausalLM::loss (ops::linear_cross_entropy): the final norm's input and the head's dx kept per
    // token, dW once, and one chunk of logits at the forward's end (bf16: 16-bit, and the f32
    // product the CPU rounds them from)
    const int64_t chunk = ops::linear_cross_entropy_chunk_rows(rows, V) * V * (precision == "bf16" ? 6 : 4);
    return rows * (layers + 8 * C) + 4 * V * C + chunk;
  }
  // the final norm's input (BERT: and the MLM transform's), the LM head's input, the f32 logits
  const int64_t head = 4 * (c.model_type == "bert" ? 3 : 1) * C + input_bytes * C;
  return rows * (layers + head + 4 * V);
}

int64_t autocast_scratch_bytes(const io::HfModelConfig& c, int64_t batch, int64_t seq_len,
                               const std::string& precision) {
  if (precision == "fp32") return 0;
  const int64_t element = precision == "bf16" ? 2 : 4;
  const int64_t C = c.stack.n_embd;
  return element * (batch * seq_len * C + c.stack.vocab_size * C);
}

Plan make_plan(const RunConfig& config) {
  const io::HfModelConfig& hf = config.model.hf;
  const TrainSection& t = config.train;
  Plan p;
  p.parameters = io::expected_parameter_count(hf);
  p.active_parameters = active_parameters(hf);
  p.flops_parameters = p.active_parameters - lookup_parameters(hf);
  p.flops_per_token = training_flops_per_token(hf, t.seq_len);
  p.tokens_per_step = t.batch_size * t.seq_len * t.grad_accum;
  p.weight_bytes = 4 * p.parameters;
  p.gradient_bytes = 4 * p.parameters;
  if (t.optimizer == "adamw") p.optimizer_bytes = 8 * p.parameters;  // m and v
  if (t.optimizer == "sgd" && t.momentum > 0) p.optimizer_bytes = 4 * p.parameters;
  p.half_copy_bytes = autocast_scratch_bytes(hf, t.batch_size, t.seq_len, t.precision);
  p.activation_bytes_none = activation_bytes(hf, t.batch_size, t.seq_len, "none", 1, t.precision);
  p.activation_bytes_all = activation_bytes(hf, t.batch_size, t.seq_len, "all", 1, t.precision);
  p.activation_bytes_configured =
      activation_bytes(hf, t.batch_size, t.seq_len, t.checkpointing, t.checkpoint_every_k, t.precision);
  return p;
}

namespace {

Tensor random_tokens(int64_t batch, int64_t seq_len, int64_t vocab, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
  std::vector<int64_t> ids(size_t(batch * seq_len));
  for (int64_t& id : ids) id = pick(rng);
  return from_vector(ids, {batch, seq_len});
}

}  // namespace

Throughput measure_throughput(const RunConfig& config, int64_t steps) {
  LD_CHECK(steps >= 1, "plan: measuring needs at least 1 step, got ", steps);
  const TrainSection& t = config.train;
  const io::HfModelConfig& hf = config.model.hf;
  Generator gen(uint64_t(t.seed));
  std::mt19937_64 rng(uint64_t(t.seed));
  const int64_t V = hf.stack.vocab_size;

  int64_t every_k = 0;  // the configured activation checkpointing, as the trainer applies it
  if (t.checkpointing == "all") every_k = 1;
  if (t.checkpointing == "every_k") every_k = t.checkpoint_every_k;
  std::shared_ptr<nn::Module> module;
  std::function<Tensor(const Tensor&, const Tensor&)> loss_of;
  if (hf.is_causal_lm()) {
    std::shared_ptr<models::CausalLM> lm = models::make_causal_lm(hf, gen);
    loss_of = [lm](const Tensor& ids, const Tensor& targets) {
      const models::LmLoss out = lm->loss({.ids = ids}, targets);
      return out.aux_loss.defined() ? ops::add(out.lm_loss, out.aux_loss) : out.lm_loss;
    };
    lm->set_checkpointing(every_k);
    module = lm;
  } else {
    io::HfModelConfig mlm = hf;
    mlm.architecture = "BertForMaskedLM";
    auto bert = std::make_shared<models::BertForMaskedLM>(mlm, gen);
    loss_of = [bert](const Tensor& ids, const Tensor& labels) {
      return bert->mlm_loss({.ids = ids, .attention_mask = Tensor(), .token_type_ids = Tensor()}, labels);
    };
    bert->bert->encoder->checkpoint_every = every_k;
    module = bert;
  }
  const Device device = training_device(t);
  module->to(device);  // before the optimizer, which makes its state where the parameters are
  std::vector<Tensor> params = module->parameters();
  AdamW optimizer({ParamGroup{params, float(t.weight_decay)}},
                  {.lr = float(t.lr), .beta1 = float(t.beta1), .beta2 = float(t.beta2), .eps = float(t.eps),
                   .weight_decay = float(t.weight_decay)});
  auto step = [&] {
    ops::AutocastScope autocast(ops::compute_precision_from_name(t.precision));
    const Tensor ids = random_tokens(t.batch_size, t.seq_len, V, rng).to(device);
    const Tensor targets = random_tokens(t.batch_size, t.seq_len, V, rng).to(device);  // its loss does not matter
    Tensor loss = loss_of(ids, targets);
    loss.backward();
    optimizer.step();
    optimizer.zero_grad();
  };
  Backend& backend = backend_for(device);
  step();  // warm-up: allocator pools, first-touch pages
  backend.synchronize();  // a device's queued work is timed where it runs
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  backend.synchronize();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Throughput th;
  th.device = device.str();
  th.steps = steps;
  th.tokens_per_step = t.batch_size * t.seq_len;
  th.seconds = seconds;
  th.tokens_per_s = double(steps * th.tokens_per_step) / seconds;
  return th;
}

}  // namespace ld::train
