#include "tune/finetune_model.hpp"

#include "core/error.hpp"
#include "core/rng.hpp"
#include "peft/peft_io.hpp"
#include "peft/projections.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::tune {

namespace fs = std::filesystem;

namespace {

peft::LoraConfig lora_config(const train::LoraSection& s) {
  return {.r = s.r, .alpha = s.alpha, .dropout = s.dropout, .target_modules = s.target_modules,
          .use_rslora = s.use_rslora};
}

void apply_method(TunedModel& m, const train::RunConfig& c, const tok::Tokenizer* tokenizer) {
  Generator gen(uint64_t(c.train.seed));
  if (m.method == "lora") {
    m.lora = peft::apply_lora(*m.lm, lora_config(c.lora), gen, m.lm->hf_config().model_type);
  } else if (m.method == "adapter") {
    m.adapter = peft::apply_houlsby(*m.lm, {.width = c.adapter.width, .nonlinearity = c.adapter.nonlinearity}, gen);
  } else if (m.method == "prompt") {
    peft::PromptTuningConfig p{.num_virtual_tokens = c.prompt_tuning.num_virtual_tokens,
                               .init = c.prompt_tuning.init == "text" ? peft::PromptTuningConfig::Init::text
                                                                      : peft::PromptTuningConfig::Init::random,
                               .init_text = c.prompt_tuning.init_text};
    if (p.init == peft::PromptTuningConfig::Init::text) {
      LD_CHECK(tokenizer != nullptr, "prompt_tuning.init=text needs a tokenizer");
      m.prompt = peft::apply_prompt_tuning(*m.lm, p, gen, *tokenizer);
    } else {
      m.prompt = peft::apply_prompt_tuning(*m.lm, p, gen);
    }
  }
}

void adopt_checkpoint_adapter(TunedModel& m, const fs::path& checkpoint) {
  peft::LoadedAdapter loaded = peft::load_adapter(*m.lm, checkpoint);
  const std::string expected = m.method == "lora" ? "LORA" : m.method == "prompt" ? "PROMPT_TUNING" : "LIANDAN_ADAPTER";
  LD_CHECK(loaded.peft_type == expected, checkpoint.string(), ": holds a ", loaded.peft_type,
           " adapter, but finetune.method=", m.method);
  m.lora = std::move(loaded.lora);
  m.prompt = std::move(loaded.prompt);
  m.adapter = std::move(loaded.adapter);
}

}  // namespace

TunedModel load_tuned_model(const train::RunConfig& c, const fs::path& checkpoint, const tok::Tokenizer* tokenizer) {
  TunedModel m;
  m.method = c.finetune.method;
  m.base = c.model.from;
  const bool full = m.method == "full";
  m.lm = models::load_causal_lm(full && !checkpoint.empty() ? checkpoint : m.base);
  if (full) return m;
  if (checkpoint.empty())
    apply_method(m, c, tokenizer);
  else
    adopt_checkpoint_adapter(m, checkpoint);
  return m;
}

std::vector<std::pair<std::string, Tensor>> TunedModel::trainable_parameters() const {
  if (method == "prompt") return {{"prompt_embeddings", prompt.prompt->weight}};
  return lm->named_parameters();
}

int64_t TunedModel::trainable_count() const {
  if (method == "prompt") return prompt.prompt->weight.numel();
  return peft::trainable_parameter_count(*lm);
}

int64_t TunedModel::total_count() const {
  return lm->parameter_count() + (method == "prompt" ? prompt.prompt->weight.numel() : 0);
}

void TunedModel::save(const fs::path& dir, bool force) const {
  const peft::SaveOptions options{.base_model_name_or_path = base.string(), .force = force};
  if (method == "full")
    models::save_pretrained(*lm, lm->hf_config(), dir, force, base);
  else if (method == "lora")
    peft::save_lora(lora, dir, options);
  else if (method == "adapter")
    peft::save_houlsby(adapter, dir, options);
  else
    peft::save_prompt_tuning(prompt, dir, options);
}

}  // namespace ld::tune
