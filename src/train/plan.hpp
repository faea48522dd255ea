#pragma once
// What a run will cost before it starts (`liandan plan`): parameters, training FLOPs per token,
// memory (weights, gradients, optimizer state, activations with and without checkpointing) and the
// time for a number of tokens at a throughput measured on this machine or given.
//
// FLOPs per token (training: forward + backward) = 6 N + 12 L C T, the PaLM / nanoGPT convention
// that bench/README.md uses: N counts the parameters a token is multiplied with (the tied
// embedding / lm_head once; lookup-only tables excluded: GPT-2's wpe, BERT's position and token-type
// embeddings, an untied model's input embedding; for MoE only top_k of the experts, plus the router),
// 12 L C T the attention scores and their use over the full T x T (not halved for causality).
//
// Activations (what backward keeps), per token and layer, in elements: 2C norm inputs (the residual
// stream before each norm), C attention input (the first norm's output), C + 2 C_kv for q, k, v,
// C attention output (the output projection's input), H softmax statistics (flash attention keeps no
// T x T matrix), C MLP input, then the MLP: 2I for GELU (fc output, activation output), 3I for
// SwiGLU (gate, up, their product); an MoE layer instead keeps E router logits and, per token, top_k
// copies of its input and MLP activations. This is Korthikanti et al. 2022's count (34 + 5 a T / C
// half-precision bytes per token per channel) without dropout masks and without the T x T term.
// Elements are 4 bytes, except the projections' inputs under bf16/fp16 (the attention input and
// output, the MLP input and the down projection's input; MoE: the router's input and top_k experts'),
// which a linear keeps as the 16-bit copy its forward read (ops/autocast.hpp): 2 bytes. Separate q,
// k, v (or gate and up) projections each keep a copy of their shared input; this counts one.
// Outside the layers: the final norm's input and output (2C; BERT's MLM head adds 2C; the LM head's
// input, the norm's output, is a projection input), and the fp32 logits (4 V bytes per token).
// With checkpointing a checkpointed layer keeps only its input (C); one layer's full activations
// are added back for the recompute in backward.
#include <cstdint>
#include <string>

#include "io/hf_config.hpp"
#include "train/run_config.hpp"

namespace ld::train {

// Parameters that are looked up, not multiplied (see above).
int64_t lookup_parameters(const io::HfModelConfig& config);
// Parameters one token uses: all of them except the experts it is not routed to (MoE).
int64_t active_parameters(const io::HfModelConfig& config);
// 6 N + 12 L C T with N = active_parameters - lookup_parameters.
int64_t training_flops_per_token(const io::HfModelConfig& config, int64_t seq_len);

// Activation elements one layer keeps per token without checkpointing, and bytes of a micro-batch.
int64_t layer_activation_elements(const io::HfModelConfig& config);
// Of those, the projections' inputs (the elements that are 16-bit under bf16/fp16).
int64_t layer_projection_input_elements(const io::HfModelConfig& config);
// precision: train.precision (fp32, bf16, fp16).
int64_t activation_bytes(const io::HfModelConfig& config, int64_t batch, int64_t seq_len,
                         const std::string& checkpointing, int64_t every_k, const std::string& precision);
// bf16/fp16: the scratch copies of the largest product's operands (the LM head's: the tokens'
// hidden states and the vocabulary matrix), 2 bytes an element for bf16, 4 for fp16 (emulated:
// rounded values kept in f32); 0 for fp32.
int64_t autocast_scratch_bytes(const io::HfModelConfig& config, int64_t batch, int64_t seq_len,
                               const std::string& precision);

struct Plan {
  int64_t parameters = 0;         // all (tied weights once)
  int64_t active_parameters = 0;  // per token (MoE: top_k experts)
  int64_t flops_parameters = 0;   // N of the FLOPs formula
  int64_t flops_per_token = 0;
  int64_t tokens_per_step = 0;    // batch_size x seq_len x grad_accum
  int64_t weight_bytes = 0, gradient_bytes = 0, optimizer_bytes = 0, half_copy_bytes = 0;
  int64_t activation_bytes_none = 0, activation_bytes_all = 0, activation_bytes_configured = 0;
  int64_t total_bytes() const {
    return weight_bytes + gradient_bytes + optimizer_bytes + half_copy_bytes + activation_bytes_configured;
  }
};
Plan make_plan(const RunConfig& config);

struct Throughput {
  double tokens_per_s = 0;
  int64_t steps = 0;          // timed steps (after one warm-up step)
  int64_t tokens_per_step = 0;
  double seconds = 0;         // of the timed steps
  std::string device;         // where they ran: train.device
};
// Builds the configured model with random weights and times `steps` forward + backward + AdamW steps
// on random tokens at batch_size x seq_len, under train.precision with the configured activation
// checkpointing, on train.device (the CPU: the threads the backend has; the caller applies
// train.threads).
Throughput measure_throughput(const RunConfig& config, int64_t steps);

}  // namespace ld::train
