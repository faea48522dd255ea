#pragma once
// What every decoder-only language model offers (GPT-2, the LLaMA family, Mixtral), so that
// generation, training and evaluation are written once: a forward pass over token ids with an
// optional KV cache and a Hugging Face attention mask, and the auxiliary loss of MoE layers.
//
// Padding follows Hugging Face: attention_mask [B, past + T] has 1 for real tokens and 0 for padding
// (left padding for batches of uneven prompts); positions are counted over real tokens only
// (cumsum(mask) - 1, HF's position_ids), and no query attends to a padding key.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "io/hf_config.hpp"
#include "models/kv_cache.hpp"
#include "nn/layers.hpp"
#include "nn/module.hpp"

namespace ld {
class Generator;
}

namespace ld::models {

// Prompt tuning (src/peft): N learned embeddings placed before the token embeddings of every row, as
// Hugging Face PEFT does. They are ordinary positions for attention and learned position tables (a
// GPT-2 then covers N + T positions), always attended (N ones in front of the attention mask), and
// absent from the logits, so callers see [B, T, V] as without them. With a KV cache they are written
// on the first call (empty cache) and stay there: pass the same prefix on every call of a sequence,
// and an attention_mask that covers the real tokens only ([B, past - N + T]).
struct LmInputs {
  Tensor ids;                       // i32/i64 [B, T]
  KvCache* cache = nullptr;         // when given: T tokens continue the cached ones, then are appended
  Tensor attention_mask{};          // optional i32/i64/u8 [B, past + T] (no prefix slots); undefined = all real
  bool last_position_only = false;  // logits for the last position only (decoding): [B, 1, V]
  Tensor prefix_embeds{};           // optional f32 [N, C]; undefined = the model's prompt (set_prompt), if any
  // Only the final hidden states (LmOutput::hidden), no logits: skips the vocabulary projection, the
  // largest GEMM of a small model, for heads that read the hidden states (sequence classification).
  bool hidden_only = false;
};

struct LmOutput {
  Tensor logits;    // [B, T, V] (or [B, 1, V]); undefined with hidden_only
  Tensor hidden;    // [B, T, C] (or [B, 1, C]): after the final norm, what lm_head reads
  Tensor aux_loss;  // MoE models: the sum over layers of each layer's weighted auxiliary loss; else undefined
  int64_t dropped_tokens = 0;  // MoE with a capacity factor: (token, choice) slots dropped, all layers
};

// The next-token loss of one forward pass (CausalLM::loss).
struct LmLoss {
  Tensor lm_loss;   // scalar: mean cross-entropy over the targets not ignored
  Tensor aux_loss;  // MoE models: as LmOutput::aux_loss; else undefined
};

class CausalLM : public nn::Module {
 public:
  explicit CausalLM(io::HfModelConfig config) : config_(std::move(config)) {}

  virtual LmOutput run(const LmInputs& inputs) const = 0;
  // The vocabulary projection the logits come from (lm_head: [V, C], maybe tied, maybe with adapters).
  virtual const nn::Linear& output_head() const = 0;
  // Mean cross-entropy of the logits against targets [B, T] (ignore_index -100, PyTorch's): through
  // ops::linear_cross_entropy from the hidden states when the head carries no adapters, so the
  // [B, T, V] logits never exist whole (nor their gradient); otherwise logits, then cross_entropy.
  LmLoss loss(const LmInputs& inputs, const Tensor& targets) const;
  // Logits only, the common case.
  Tensor forward(const Tensor& ids, KvCache* cache = nullptr, const Tensor& attention_mask = Tensor()) const {
    return run({.ids = ids, .cache = cache, .attention_mask = attention_mask}).logits;
  }

  // Maps a checkpoint's tensors onto this model's names before a strict load: prefixes a checkpoint
  // saved from the bare base model lacks, buffers that are not parameters (GPT-2's attn.bias).
  virtual nn::StateDict normalize_checkpoint(nn::StateDict state) const { return state; }

  const io::HfModelConfig& hf_config() const { return config_; }
  const StackConfig& config() const { return config_.stack; }
  // Room for max_len tokens per row, plus the prompt-tuning rows of set_prompt, on device().
  KvCache make_cache(int64_t batch, int64_t max_len) const;
  // Where the weights are (the host for a model without any): inputs built on the host go there.
  Device device() const;

  // Prompt tuning without changing callers: `prompt` [N, C] (a handle: training it in place is seen
  // here) is the prefix of every run whose inputs carry none. Undefined removes it.
  void set_prompt(const Tensor& prompt);
  const Tensor& prompt() const { return prompt_; }

  // The parameters, and the prompt in place (the handle its PromptEmbedding holds follows).
  void to(Device device) override;

  // Activation checkpointing for training (autograd/checkpoint.hpp): every_k = 0 keeps every
  // block's activations (the default), 1 recomputes every block in backward, k every k-th block
  // (blocks 0, k, 2k, ...). Only forwards that record gradients without a KV cache are affected;
  // the results and gradients are the same either way, only the memory and the time differ.
  void set_checkpointing(int64_t every_k);
  int64_t checkpointing() const { return checkpoint_every_; }

 protected:
  // Whether run() should wrap block i in autograd::checkpoint for these inputs.
  bool checkpoints_block(int64_t i, const LmInputs& inputs) const;

 private:
  io::HfModelConfig config_;
  int64_t checkpoint_every_ = 0;
  Tensor prompt_;
};

// What one forward pass's attention layers share: the positions of the new tokens and the mask over
// the keys (padding, and Mistral's sliding window). Computed once per forward by the model.
// T counts the slots this forward adds: the tokens, plus the prompt-tuning prefix when it is placed.
struct AttentionContext {
  Tensor positions;  // i64 [T] (no padding) or [B, T]
  Tensor mask;       // undefined, or u8 [B or 1, 1, T or 1, past + T] (1 = may attend); combined with causal
  int64_t past = 0;  // tokens already in the cache
  Tensor prefix;     // [N, C] placed by this forward before the tokens (cache empty or none); else undefined
};

// What one pre-norm decoder block hands to the next: the residual stream, the next norm's output
// (the norms are fused into the residual adds), and an MoE block's auxiliary loss and dropped slots.
struct BlockOutput {
  Tensor residual, normed, aux_loss;  // aux_loss: MoE blocks only
  int64_t dropped = 0;
};

// Runs `block` (residual, normed -> BlockOutput, without a KV cache) under activation checkpointing:
// nothing inside it is kept for backward, which runs it again. The function is kept until then, so
// it must own (copy) what it reads besides the module it points to.
using BlockFn = std::function<BlockOutput(const Tensor& residual, const Tensor& normed)>;
BlockOutput run_checkpointed(const BlockFn& block, const Tensor& residual, const Tensor& normed);

// Checks ids against the vocabulary and the cache, then builds the context. max_positions limits the
// positions reached (learned position tables); sliding_window 0 = none.
// The model's prompt (CausalLM::prompt) is used when inputs.prefix_embeds is undefined.
AttentionContext make_attention_context(const LmInputs& inputs, const StackConfig& config, int64_t sliding_window,
                                        const Tensor& model_prompt = Tensor());

// Token embeddings [B, T, C] with the context's prefix (if any) in front: [B, N + T, C].
Tensor prepend_prefix(const Tensor& token_embeds, const AttentionContext& ctx);
// Hidden states [B, N + T, C] back to the tokens' [B, T, C] (a view).
Tensor drop_prefix(const Tensor& hidden, const AttentionContext& ctx);

// Builds the model a config describes, with random weights from gen (HF's init: N(0, 0.02)
// matrices, norm weights 1, biases 0). An architecture that is not a causal LM is an error naming
// the supported ones.
std::unique_ptr<CausalLM> make_causal_lm(const io::HfModelConfig& config, Generator& gen);

// Reads dir/config.json and the safetensors weights (sharded too) into the model config.json names;
// strict: every parameter must be there with its shape, and nothing else. Errors name the folder.
std::unique_ptr<CausalLM> load_causal_lm(const std::filesystem::path& dir);

// Writes a Hugging Face folder: config.json, generation_config.json, model.safetensors (tied
// weights once, under the name transformers keeps), and the tokenizer files of `tokenizer_from`
// when given (tokenizer.json, tokenizer_config.json, special_tokens_map.json, tokenizer.model,
// vocab.json, merges.txt, vocab.txt, added_tokens.json, GPT-2's encoder.json and vocab.bpe: those
// present). Built in a temporary folder and renamed into place.
void save_pretrained(const nn::Module& model, const io::HfModelConfig& config, const std::filesystem::path& dir,
                     bool force = false, const std::filesystem::path& tokenizer_from = {});
// The same for a chosen list of (name, tensor), e.g. a model's parameters without its adapters'.
void save_pretrained(const std::vector<std::pair<std::string, Tensor>>& params, const io::HfModelConfig& config,
                     const std::filesystem::path& dir, bool force = false,
                     const std::filesystem::path& tokenizer_from = {});

}  // namespace ld::models
