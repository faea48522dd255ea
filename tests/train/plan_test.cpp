// `liandan plan`'s figures against hand computation and against models built for real: GPT-2 124M's
// parameters and FLOPs per token (bench/README.md's table), MoE active parameters counted from the
// built model's tensors, memory and activation estimates, and a measured throughput.
#include "train/plan.hpp"

#include <gtest/gtest.h>

#include "core/rng.hpp"
#include "models/causal_lm.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"

namespace ld::train {
namespace {

RunConfig gpt2_124m() {
  return parse_run_config("model: {type: gpt2}\ntrain: {batch_size: 1, seq_len: 1024}", "gpt2.yaml");
}

TEST(Plan, Gpt2SmallMatchesTheBenchTable) {
  const Plan p = make_plan(gpt2_124m());
  EXPECT_EQ(p.parameters, 124'439'808);  // ../shared/bench/README.md, tied wte/lm_head
  // 6 N' + 12 L C T with N' = params - wpe (1024 x 768)
  const int64_t n = 124'439'808 - 1024 * 768;
  EXPECT_EQ(p.flops_parameters, n);
  EXPECT_EQ(p.flops_per_token, 6 * n + 12 * 12 * 768 * 1024);
  EXPECT_EQ(p.flops_per_token, 855'166'464);  // the bench table's figure
  EXPECT_EQ(p.tokens_per_step, 1024);
  EXPECT_EQ(p.weight_bytes, 4 * 124'439'808);
  EXPECT_EQ(p.gradient_bytes, 4 * 124'439'808);
  EXPECT_EQ(p.optimizer_bytes, 8 * 124'439'808);
  EXPECT_EQ(p.half_copy_bytes, 0);
}

int64_t expert_parameters(const nn::Module& model) {
  int64_t n = 0;
  for (const auto& [name, t] : model.named_parameters())
    if (name.find(".experts.") != std::string::npos) n += t.numel();
  return n;
}

// Parameter counts from the model built for real; the active ones: top_k of num_experts experts.
void expect_moe_counts(const RunConfig& c, int64_t lookup) {
  const io::HfModelConfig& hf = c.model.hf;
  Generator gen(0);
  auto model = models::make_causal_lm(hf, gen);
  const int64_t total = model->parameter_count();
  const int64_t experts = expert_parameters(*model);
  ASSERT_GT(experts, 0);
  const int64_t active = total - experts + experts / hf.moe.num_experts * hf.moe.top_k;
  const Plan p = make_plan(c);
  EXPECT_EQ(p.parameters, total);
  EXPECT_EQ(p.active_parameters, active);
  EXPECT_EQ(p.flops_parameters, active - lookup);
  EXPECT_EQ(p.flops_per_token,
            6 * (active - lookup) + 12 * hf.stack.n_layer * hf.stack.n_embd * c.train.seq_len);
}

TEST(Plan, MoeGpt2CountsOnlyTheRoutedExperts) {
  const RunConfig c = parse_run_config("model: {type: gpt2, n_layer: 2, n_head: 4, n_embd: 32, vocab_size: 50, "
                                       "n_positions: 16, num_local_experts: 4, num_experts_per_tok: 2}",
                                       "moe.yaml");
  expect_moe_counts(c, 16 * 32);  // wpe; the tied wte is the lm_head matmul
  // by hand: per layer 2 LN (4C), c_attn C x 3C + 3C, c_proj C x C + C, router C x E, per expert
  // c_fc C x 4C + 4C and c_proj 4C x C + C; final LN 2C; wte V x C; wpe 16 x C.
  const int64_t C = 32, E = 4, k = 2;
  const int64_t expert = C * 4 * C + 4 * C + 4 * C * C + C;
  const int64_t layer_shared = 4 * C + C * 3 * C + 3 * C + C * C + C + C * E;
  EXPECT_EQ(make_plan(c).parameters, 50 * C + 16 * C + 2 * (layer_shared + E * expert) + 2 * C);
  EXPECT_EQ(make_plan(c).active_parameters, 50 * C + 16 * C + 2 * (layer_shared + k * expert) + 2 * C);
}

TEST(Plan, MixtralCountsOnlyTheRoutedExperts) {
  const RunConfig c = parse_run_config("model: {type: mixtral, hidden_size: 32, num_hidden_layers: 2, "
                                       "num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 48, "
                                       "vocab_size: 50, num_local_experts: 8, num_experts_per_tok: 2}\n"
                                       "train: {seq_len: 64}",
                                       "mixtral.yaml");
  expect_moe_counts(c, 50 * 32);  // the untied input embedding is a lookup
}

TEST(Plan, MemoryFollowsOptimizerAndPrecision) {
  RunConfig c = gpt2_124m();
  c.train.precision = "bf16";
  c.train.optimizer = "sgd";
  c.train.momentum = 0.0;
  Plan p = make_plan(c);
  // bf16 scratch for the LM head's product: 1024 tokens x 768 plus 50257 x 768, 2 bytes each
  EXPECT_EQ(p.half_copy_bytes, 2 * (c.train.batch_size * c.train.seq_len * 768 + 50257 * 768));
  c.train.precision = "fp16";  // emulated: rounded values kept in f32
  EXPECT_EQ(make_plan(c).half_copy_bytes, 4 * (c.train.batch_size * c.train.seq_len * 768 + 50257 * 768));
  c.train.precision = "bf16";
  EXPECT_EQ(p.optimizer_bytes, 0);
  c.train.momentum = 0.9;
  EXPECT_EQ(make_plan(c).optimizer_bytes, 4 * p.parameters);
}

TEST(Plan, ActivationsByHandForGpt2) {
  RunConfig c = parse_run_config("model: {type: gpt2, n_layer: 4, n_head: 4, n_embd: 64, vocab_size: 100, "
                                 "n_positions: 32}\ntrain: {batch_size: 3, seq_len: 32}",
                                 "a.yaml");
  const int64_t B = 3, T = 32, L = 4, C = 64, H = 4, I = 256, V = 100;
  // per token and layer: 2C norm inputs, C attention input, 3C q k v, C attention output, H softmax
  // statistics, C MLP input, 2I MLP activations
  const int64_t layer = 2 * C + C + 3 * C + C + H + C + 2 * I;
  // the loss (ops::linear_cross_entropy): the final norm's input and the head's dx per token, dW
  // [V, C] once, and one chunk of logits, here every row's
  const int64_t head = 2 * C, loss = 4 * V * C + B * T * V * 4;
  const Plan p = make_plan(c);
  EXPECT_EQ(p.activation_bytes_none, B * T * (L * layer + head) * 4 + loss);
  // all checkpointed: each layer's input, plus one layer rebuilt in backward
  EXPECT_EQ(p.activation_bytes_all, B * T * (L * C + layer + head) * 4 + loss);
  EXPECT_EQ(p.activation_bytes_configured, p.activation_bytes_none);
  // every 2nd layer (0 and 2) checkpointed
  EXPECT_EQ(activation_bytes(c.model.hf, B, T, "every_k", 2, "fp32"),
            B * T * (2 * C + 2 * layer + layer + head) * 4 + loss);
  EXPECT_LT(p.activation_bytes_all, p.activation_bytes_none);
  // bf16: the projections' inputs (attention input and output, MLP input, GELU output) are the 16-bit
  // copies the linears keep; the chunk's logits are 16-bit, rounded from an f32 product
  const int64_t inputs = C + C + C + I;
  const int64_t layer_bf16 = (layer - inputs) * 4 + inputs * 2;
  EXPECT_EQ(activation_bytes(c.model.hf, B, T, "none", 1, "bf16"),
            B * T * (L * layer_bf16 + head * 4) + 4 * V * C + B * T * V * 6);
  // fp16 keeps the two ops (loss scaling): the LM head's 16-bit input and the f32 logits per token
  EXPECT_EQ(activation_bytes(c.model.hf, B, T, "all", 1, "fp16"),
            B * T * (L * C * 4 + layer_bf16 + C * 4 + C * 2 + 4 * V));
  // GPT-2's vocabulary: chunks of 2^27 / 50257 = 2670 rows
  EXPECT_EQ(ops::linear_cross_entropy_chunk_rows(8 * 1024, 50257), 2670);
  EXPECT_EQ(ops::linear_cross_entropy_chunk_rows(1000, 50257), 1000);
}

TEST(Plan, MeasuresAThroughput) {
  RunConfig c = parse_run_config("model: {type: llama, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, "
                                 "intermediate_size: 48, vocab_size: 40, max_position_embeddings: 16}\n"
                                 "train: {batch_size: 2}",
                                 "t.yaml");
  const Throughput th = measure_throughput(c, 2);
  EXPECT_EQ(th.steps, 2);
  EXPECT_EQ(th.tokens_per_step, 2 * 16);
  EXPECT_GT(th.seconds, 0.0);
  EXPECT_NEAR(th.tokens_per_s, 2 * 32 / th.seconds, 1e-6 * th.tokens_per_s);
  RunConfig b = parse_run_config("model: {type: bert, hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, "
                                 "intermediate_size: 48, vocab_size: 40, max_position_embeddings: 16}",
                                 "b.yaml");
  EXPECT_GT(measure_throughput(b, 1).tokens_per_s, 0.0);
  c.train.checkpointing = "all";  // measured with the recompute the run will do
  EXPECT_GT(measure_throughput(c, 1).tokens_per_s, 0.0);
  EXPECT_EQ(test::error_message([&] { measure_throughput(c, 0); }), "plan: measuring needs at least 1 step, got 0");
}

}  // namespace
}  // namespace ld::train
