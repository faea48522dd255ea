#include "peft/prompt_tuning.hpp"

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "nn/layers.hpp"
#include "ops/ops.hpp"
#include "peft/projections.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::peft {

namespace {

// PEFT's TEXT init: the text's ids cut to N, or repeated until there are N.
std::vector<int64_t> repeat_to(const std::vector<int64_t>& ids, int64_t n) {
  std::vector<int64_t> out;
  out.reserve(size_t(n));
  for (int64_t i = 0; i < n; ++i) out.push_back(ids[size_t(i) % ids.size()]);
  return out;
}

void init_from_text(PromptEmbedding& prompt, const Tensor& table, const std::vector<int64_t>& ids) {
  LD_CHECK(!ids.empty(), "Prompt tuning: text init needs the init text's token ids (the text encodes to none)");
  const int64_t V = table.size(0);
  for (int64_t id : ids)
    LD_CHECK(id >= 0 && id < V, "Prompt tuning: init token id ", id, " is outside the vocabulary (", V, ")");
  const int64_t n = prompt.weight.size(0);
  autograd::NoGradGuard no_grad;
  prompt.weight.copy_(ops::embedding(from_vector(repeat_to(ids, n), {n}).to(table.device()), table));
}

}  // namespace

void PromptTuningConfig::validate() const {
  LD_CHECK(num_virtual_tokens >= 1, "Prompt tuning: num_virtual_tokens=", num_virtual_tokens, " must be at least 1");
}

PromptEmbedding::PromptEmbedding(int64_t n, int64_t dim, Generator& gen) {
  auto embedding = register_module("embedding", std::make_shared<nn::Embedding>(n, dim, gen));
  embedding->weight.copy_(randn({n, dim}, &gen));  // nn.Embedding's N(0, 1), as PEFT's RANDOM init
  weight = embedding->weight;
}

Tensor input_embeddings(const models::CausalLM& model) {
  for (const auto& [name, t] : model.named_parameters())
    if (name == "transformer.wte.weight" || name == "model.embed_tokens.weight") return t;
  LD_FAIL("Prompt tuning: the model has no token embedding (transformer.wte or model.embed_tokens)");
}

PromptTuning apply_prompt_tuning(models::CausalLM& model, const PromptTuningConfig& config, Generator& gen,
                                 const std::vector<int64_t>& init_ids) {
  config.validate();
  const models::StackConfig& c = model.config();
  PromptTuning out{.config = config,
                   .prompt = std::make_shared<PromptEmbedding>(config.num_virtual_tokens, c.n_embd, gen),
                   .token_dim = c.n_embd,
                   .num_attention_heads = c.n_head,
                   .num_layers = c.n_layer};
  const Tensor table = input_embeddings(model);
  out.prompt->to(table.device());  // made on the host: beside a model already on a device
  if (config.init == PromptTuningConfig::Init::text) init_from_text(*out.prompt, table, init_ids);
  freeze_all(model);
  model.set_prompt(out.prompt->weight);
  return out;
}

PromptTuning apply_prompt_tuning(models::CausalLM& model, const PromptTuningConfig& config, Generator& gen,
                                 const tok::Tokenizer& tokenizer) {
  const std::vector<int32_t> ids = tokenizer.encode(config.init_text);
  return apply_prompt_tuning(model, config, gen, std::vector<int64_t>(ids.begin(), ids.end()));
}

}  // namespace ld::peft
