#include "models/causal_lm.hpp"

#include <limits>
#include <string>
#include <vector>

#include "autograd/checkpoint.hpp"
#include "autograd/grad_mode.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "io/safetensors.hpp"
#include "models/gpt2.hpp"
#include "models/load_weights.hpp"
#include "models/llama.hpp"
#include "ops/ops.hpp"

namespace ld::models {

namespace fs = std::filesystem;

LmLoss CausalLM::loss(const LmInputs& inputs, const Tensor& targets) const {
  const nn::Linear& head = output_head();
  LmInputs in = inputs;
  in.hidden_only = head.adapters().empty();
  const LmOutput out = run(in);
  LmLoss r;
  r.lm_loss = in.hidden_only ? ops::linear_cross_entropy(out.hidden, head.weight, head.bias, targets)
                             : ops::cross_entropy(out.logits, targets);
  r.aux_loss = out.aux_loss;
  return r;
}

void CausalLM::set_checkpointing(int64_t every_k) {
  LD_CHECK(every_k >= 0, "activation checkpointing: every_k must be >= 0 (0 = off), got ", every_k);
  checkpoint_every_ = every_k;
}

bool CausalLM::checkpoints_block(int64_t i, const LmInputs& inputs) const {
  return checkpoint_every_ > 0 && i % checkpoint_every_ == 0 && inputs.cache == nullptr && autograd::grad_enabled();
}

BlockOutput run_checkpointed(const BlockFn& block, const Tensor& residual, const Tensor& normed) {
  auto dropped = std::make_shared<int64_t>(0);
  auto fn = [block, dropped](const std::vector<Tensor>& x) {
    BlockOutput r = block(x[0], x[1]);
    *dropped = r.dropped;
    std::vector<Tensor> out{r.residual, r.normed};
    if (r.aux_loss.defined()) out.push_back(r.aux_loss);
    return out;
  };
  std::vector<Tensor> out = autograd::checkpoint(fn, {residual, normed});
  return {.residual = out[0], .normed = out[1], .aux_loss = out.size() > 2 ? out[2] : Tensor(), .dropped = *dropped};
}

namespace {

void check_inputs(const LmInputs& in, const StackConfig& c, int64_t new_slots) {
  const Tensor& ids = in.ids;
  LD_CHECK(ids.defined() && ids.dim() == 2 && (ids.dtype() == DType::i64 || ids.dtype() == DType::i32),
           "causal LM: ids must be i32/i64 [B, T], got ",
           ids.defined() ? std::string(dtype_name(ids.dtype())) + " " + shape_str(ids.shape()) : "nothing");
  LD_CHECK(ids.size(1) >= 1, "causal LM: ids ", shape_str(ids.shape()), " hold no tokens");
  if (in.cache == nullptr) return;
  LD_CHECK(in.cache->n_layer() == c.n_layer && in.cache->batch() == ids.size(0), "causal LM: the KV cache (",
           in.cache->n_layer(), " layers, batch ", in.cache->batch(), ") does not fit this model (", c.n_layer,
           " layers) and batch ", ids.size(0));
  in.cache->check_room(new_slots);  // before any layer writes
}

// The prompt-tuning prefix of this forward: the inputs' or else the model's; checked against the model.
Tensor choose_prefix(const LmInputs& in, const StackConfig& c, const Tensor& model_prompt) {
  const Tensor& prefix = in.prefix_embeds.defined() ? in.prefix_embeds : model_prompt;
  if (!prefix.defined()) return prefix;
  LD_CHECK(prefix.dim() == 2 && prefix.size(0) >= 1 && prefix.size(1) == c.n_embd && prefix.dtype() == DType::f32,
           "causal LM: the prompt-tuning prefix must be f32 [N >= 1, n_embd=", c.n_embd, "], got ",
           dtype_name(prefix.dtype()), " ", shape_str(prefix.shape()));
  return prefix;
}

// HF's position_ids for a padded batch: cumsum(mask) - 1 over real tokens, 1 on padding.
Tensor positions_from_mask(const std::vector<uint8_t>& keep, int64_t B, int64_t total, int64_t T) {
  std::vector<int64_t> pos(size_t(B * T));
  for (int64_t b = 0; b < B; ++b) {
    int64_t seen = 0;
    for (int64_t j = 0; j < total; ++j) {
      const bool real = keep[size_t(b * total + j)] != 0;
      seen += real ? 1 : 0;
      if (j >= total - T) pos[size_t(b * T + j - (total - T))] = real ? seen - 1 : 1;
    }
  }
  return from_vector(pos, {B, T});
}

// prefix_rows: prompt-tuning slots the model adds in front of the mask (named in the error).
std::vector<uint8_t> read_mask(const Tensor& mask, int64_t B, int64_t total, int64_t prefix_rows) {
  LD_CHECK(mask.dim() == 2 && mask.size(0) == B && mask.size(1) == total, "causal LM: attention_mask ",
           shape_str(mask.shape()), " must be [B=", B, ", past + T=", total, "] (1 = token, 0 = padding)",
           prefix_rows ? ", not counting the " + std::to_string(prefix_rows) + " prompt-tuning slots" : "");
  LD_CHECK(mask.dtype() == DType::i64 || mask.dtype() == DType::i32 || mask.dtype() == DType::u8,
           "causal LM: attention_mask must be i64/i32/u8, got ", dtype_name(mask.dtype()));
  const std::vector<int64_t> v = mask.to(kCPU).to(DType::i64).contiguous().to_vector<int64_t>();
  std::vector<uint8_t> keep(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    LD_CHECK(v[i] == 0 || v[i] == 1, "causal LM: attention_mask holds ", v[i], "; only 0 and 1 are allowed");
    keep[i] = uint8_t(v[i]);
  }
  return keep;
}

// [B, width] -> [B, n + width] with n ones in front of each row.
std::vector<uint8_t> prepend_ones(const std::vector<uint8_t>& keep, int64_t B, int64_t width, int64_t n) {
  std::vector<uint8_t> out;
  out.reserve(size_t(B * (n + width)));
  for (int64_t b = 0; b < B; ++b) {
    out.insert(out.end(), size_t(n), uint8_t(1));
    out.insert(out.end(), keep.begin() + b * width, keep.begin() + (b + 1) * width);
  }
  return out;
}

// Additive f32 mask [Bm, 1, Tm, total]: 0 where a query may attend, -inf where not (padding keys;
// keys window or more slots behind the query).
Tensor additive_mask(const std::vector<uint8_t>* keep, int64_t B, int64_t T, int64_t total, int64_t window) {
  const int64_t Bm = keep != nullptr ? B : 1, Tm = window > 0 ? T : 1;
  const float blocked = -std::numeric_limits<float>::infinity();
  std::vector<float> m(size_t(Bm * Tm * total), 0.0f);
  for (int64_t b = 0; b < Bm; ++b)
    for (int64_t i = 0; i < Tm; ++i)
      for (int64_t j = 0; j < total; ++j) {
        const int64_t query_slot = total - T + i;
        const bool padding = keep != nullptr && (*keep)[size_t(b * total + j)] == 0;
        const bool outside = window > 0 && query_slot - j >= window;
        if (padding || outside) m[size_t((b * Tm + i) * total + j)] = blocked;
      }
  return from_vector(m, {Bm, 1, Tm, total});
}

}  // namespace

AttentionContext make_attention_context(const LmInputs& in, const StackConfig& c, int64_t sliding_window,
                                        const Tensor& model_prompt) {
  const Tensor prefix = choose_prefix(in, c, model_prompt);
  const int64_t prefix_rows = prefix.defined() ? prefix.size(0) : 0;
  AttentionContext ctx;
  ctx.past = in.cache != nullptr ? in.cache->length() : 0;
  // The prefix is placed once per sequence: by a forward without a cache or the first into one.
  if (ctx.past == 0) ctx.prefix = prefix;
  const int64_t T = in.ids.defined() && in.ids.dim() == 2 ? in.ids.size(1) + (ctx.past == 0 ? prefix_rows : 0) : 0;
  check_inputs(in, c, T);
  const int64_t B = in.ids.size(0);
  const int64_t total = ctx.past + T;
  if (c.kind == StackKind::gpt2)
    LD_CHECK(total <= c.n_positions, "causal LM: ", total, " tokens",
             prefix_rows ? " (prompt-tuning prefix included)" : "", " exceed the model's n_positions=", c.n_positions, " (its learned position table)");
  const bool window = sliding_window > 0 && total > sliding_window;
  const Device device = in.ids.device();  // built on the host, used where the model runs
  if (!in.attention_mask.defined()) {
    ctx.positions = arange(total).narrow(0, ctx.past, T).contiguous().to(device);
    if (window) ctx.mask = additive_mask(nullptr, B, T, total, sliding_window).to(device);
    return ctx;
  }
  // The caller's mask covers the real tokens; the prefix is always attended (PEFT prepends ones).
  std::vector<uint8_t> keep = read_mask(in.attention_mask, B, total - prefix_rows, prefix_rows);
  if (prefix_rows > 0) keep = prepend_ones(keep, B, total - prefix_rows, prefix_rows);
  ctx.positions = positions_from_mask(keep, B, total, T).to(device);
  ctx.mask = additive_mask(&keep, B, T, total, window ? sliding_window : 0).to(device);
  return ctx;
}

Tensor prepend_prefix(const Tensor& token_embeds, const AttentionContext& ctx) {
  if (!ctx.prefix.defined()) return token_embeds;
  const int64_t B = token_embeds.size(0);
  return ops::concat({ctx.prefix.unsqueeze(0).expand({B, ctx.prefix.size(0), ctx.prefix.size(1)}), token_embeds}, 1);
}

Tensor drop_prefix(const Tensor& hidden, const AttentionContext& ctx) {
  if (!ctx.prefix.defined()) return hidden;
  const int64_t N = ctx.prefix.size(0);
  return hidden.narrow(1, N, hidden.size(1) - N);
}

void CausalLM::set_prompt(const Tensor& prompt) {
  if (prompt.defined())
    LD_CHECK(prompt.dim() == 2 && prompt.size(0) >= 1 && prompt.size(1) == config().n_embd,
             "set_prompt: the prompt must be [N >= 1, n_embd=", config().n_embd, "], got ", shape_str(prompt.shape()));
  prompt_ = prompt;
}

KvCache CausalLM::make_cache(int64_t batch, int64_t max_len) const {
  return KvCache(config_.stack, batch, max_len + (prompt_.defined() ? prompt_.size(0) : 0), device());
}

Device CausalLM::device() const {
  const std::vector<Tensor> params = parameters();
  return params.empty() ? kCPU : params.front().device();
}

void CausalLM::to(Device device) {
  nn::Module::to(device);  // fails, before anything moves, on an unusable device
  if (prompt_.defined() && prompt_.device() != device) nn::move_in_place(prompt_, device);
  if (prompt_.defined() && prompt_.grad().defined() && prompt_.grad().device() != device)
    nn::move_in_place(prompt_.grad(), device);
}

std::unique_ptr<CausalLM> make_causal_lm(const io::HfModelConfig& config, Generator& gen) {
  if (config.model_type == "gpt2") return std::make_unique<Gpt2LMHeadModel>(config, gen);
  if (config.model_type == "llama" || config.model_type == "mistral" || config.model_type == "qwen2" ||
      config.model_type == "mixtral")
    return std::make_unique<LlamaForCausalLM>(config, gen);
  LD_FAIL("model_type \"", config.model_type, "\" (", config.architecture,
          ") is not a causal language model (causal LMs: gpt2, llama, mistral, qwen2, mixtral)");
}

std::unique_ptr<CausalLM> load_causal_lm(const fs::path& dir) {
  const io::HfModelConfig config = io::read_hf_config(dir);
  Generator gen(0);  // the random init is overwritten by the checkpoint
  std::unique_ptr<CausalLM> lm;
  try {
    lm = make_causal_lm(config, gen);
  } catch (const Error& e) {
    LD_FAIL((dir / "config.json").string(), ": ", e.what());
  }
  load_weights(*lm, dir, [&](nn::StateDict state) { return lm->normalize_checkpoint(std::move(state)); });
  return lm;
}

namespace {

const char* const kTokenizerFiles[] = {"tokenizer.json",  "tokenizer_config.json", "special_tokens_map.json",
                                       "tokenizer.model", "vocab.json",            "merges.txt",
                                       "vocab.txt",       "added_tokens.json",     "encoder.json",
                                       "vocab.bpe"};  // the last two: GPT-2's original pair

void copy_tokenizer_files(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  LD_CHECK(fs::is_directory(from, ec), from.string(), ": not a folder (expected the tokenizer files' folder)");
  for (const char* name : kTokenizerFiles) {
    if (!fs::exists(from / name)) continue;
    fs::copy_file(from / name, to / name, fs::copy_options::overwrite_existing, ec);
    LD_CHECK(!ec, (from / name).string(), ": cannot copy into the model folder (", ec.message(), ")");
  }
}

const char* torch_dtype_name(DType d) {
  switch (d) {
    case DType::bf16: return "bfloat16";
    case DType::f16: return "float16";
    default: return "float32";
  }
}

}  // namespace

void save_pretrained(const nn::Module& model, const io::HfModelConfig& config, const fs::path& dir, bool force,
                     const fs::path& tokenizer_from) {
  save_pretrained(model.named_parameters(), config, dir, force, tokenizer_from);
}

void save_pretrained(const std::vector<std::pair<std::string, Tensor>>& params, const io::HfModelConfig& config,
                     const fs::path& dir, bool force, const fs::path& tokenizer_from) {
  io::HfModelConfig written = config;
  written.torch_dtype = params.empty() ? "float32" : torch_dtype_name(params.front().second.dtype());
  write_folder_atomically(dir, force, [&](const fs::path& tmp) {
    io::write_hf_config(tmp, written);
    // named_parameters lists a tied tensor once, under its first name: the one transformers keeps.
    io::save_safetensors(tmp / "model.safetensors", params, {{"format", "pt"}});
    if (!tokenizer_from.empty()) copy_tokenizer_files(tokenizer_from, tmp);
  });
}

}  // namespace ld::models
