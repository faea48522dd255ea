#include "data/augment_backtranslate.hpp"

#include <algorithm>

#include "core/error.hpp"
#include "infer/generate.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::data {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

uint64_t sample_seed(uint64_t seed, size_t document, size_t sample) {
  return AugmentRandom(seed, document, sample).next_u64();
}

}  // namespace

std::string fill_prompt(const std::string& prompt_template, const std::string& text, const std::string& separator) {
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t at = prompt_template.find("{text}", start);
    if (at == std::string::npos) break;
    out += prompt_template.substr(start, at - start) + text;
    start = at + 6;
  }
  return out + prompt_template.substr(start) + separator;
}

std::string cut_generation(const std::string& generated, const std::string& separator) {
  std::string s = generated;
  if (!separator.empty()) s = s.substr(0, s.find(separator));
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

void validate(const BacktranslateOptions& o) {
  LD_CHECK(o.forward_template.find("{text}") != std::string::npos,
           "backtranslate: the forward prompt template must contain {text}, got '", o.forward_template, "'");
  LD_CHECK(o.backward_template.find("{text}") != std::string::npos,
           "backtranslate: the backward prompt template must contain {text}, got '", o.backward_template, "'");
  LD_CHECK(o.max_new_tokens >= 1, "backtranslate: max_new_tokens must be at least 1, got ", o.max_new_tokens);
  LD_CHECK(o.n_aug >= 1, "backtranslate: n_aug must be at least 1, got ", o.n_aug);
  LD_CHECK(o.batch_size >= 1, "backtranslate: batch_size must be at least 1, got ", o.batch_size);
  infer::validate(o.sampling);
}

Translator::Translator(const std::filesystem::path& dir) : dir_(dir) {
  const io::HfModelConfig config = io::read_hf_config(dir);
  try {
    tokenizer_ = tok::load_tokenizer(dir);
  } catch (const Error& e) {
    LD_FAIL(dir.string(), ": back-translation needs a tokenizer in the model folder (", e.what(), ")");
  }
  model_ = models::load_causal_lm(dir);
  for (int64_t id : config.eos_token_ids) eos_.push_back(static_cast<int32_t>(id));
}

Translator::~Translator() = default;
Translator::Translator(Translator&&) noexcept = default;

std::vector<std::string> Translator::translate(const std::vector<std::string>& texts,
                                               const std::string& prompt_template,
                                               const BacktranslateOptions& options,
                                               const std::vector<uint64_t>& seeds) const {
  LD_ASSERT(seeds.size() == texts.size());
  infer::GenerateOptions g;
  g.max_new_tokens = options.max_new_tokens;
  g.sampling = options.sampling;
  g.eos_ids = eos_;
  if (!options.separator.empty()) g.stop_strings = {options.separator};
  g.tokenizer = tokenizer_.get();
  std::vector<std::vector<int64_t>> prompts;
  for (const std::string& text : texts) {
    const std::vector<int32_t> ids = tokenizer_->encode(fill_prompt(prompt_template, text, options.separator), true);
    prompts.emplace_back(ids.begin(), ids.end());
  }
  std::vector<std::vector<int32_t>> generated;
  try {
    if (options.sampling.temperature == 0.0f) {
      generated = infer::generate_batch(*model_, prompts, g);
    } else {
      for (size_t i = 0; i < prompts.size(); ++i) {
        g.seed = seeds[i];
        generated.push_back(infer::generate(*model_, prompts[i], g));
      }
    }
  } catch (const Error& e) {
    LD_FAIL(dir_.string(), ": ", e.what());
  }
  std::vector<std::string> out;
  for (const auto& ids : generated) out.push_back(cut_generation(tokenizer_->decode(ids, /*skip_special=*/true), options.separator));
  return out;
}

std::vector<std::vector<BackTranslation>> backtranslate(const std::vector<std::string>& documents,
                                                        const Translator& forward, const Translator& backward,
                                                        const BacktranslateOptions& options, uint64_t seed,
                                                        const std::function<void(size_t)>& on_progress) {
  validate(options);
  const bool greedy = options.sampling.temperature == 0.0f;
  const size_t samples = greedy ? 1 : static_cast<size_t>(options.n_aug);
  const size_t batch = greedy ? static_cast<size_t>(options.batch_size) : 1;
  std::vector<std::vector<BackTranslation>> out(documents.size());
  for (size_t begin = 0; begin < documents.size(); begin += batch) {
    const size_t end = std::min(documents.size(), begin + batch);
    for (size_t s = 0; s < samples; ++s) {
      std::vector<std::string> texts(documents.begin() + long(begin), documents.begin() + long(end));
      std::vector<uint64_t> seeds_a, seeds_b;
      for (size_t d = begin; d < end; ++d) {
        seeds_a.push_back(sample_seed(seed, d, 2 * s));
        seeds_b.push_back(sample_seed(seed, d, 2 * s + 1));
      }
      const std::vector<std::string> middle = forward.translate(texts, options.forward_template, options, seeds_a);
      const std::vector<std::string> back = backward.translate(middle, options.backward_template, options, seeds_b);
      for (size_t d = begin; d < end; ++d) out[d].push_back({middle[d - begin], back[d - begin]});
    }
    if (on_progress) on_progress(end);
  }
  return out;
}

std::vector<Augmented> backtranslate_augment(const std::vector<std::string>& documents, const Translator& forward,
                                             const Translator& backward, const BacktranslateOptions& options,
                                             uint64_t seed, const std::function<void(size_t)>& on_progress) {
  const auto results = backtranslate(documents, forward, backward, options, seed, on_progress);
  std::vector<Augmented> out;
  for (size_t d = 0; d < results.size(); ++d)
    for (const BackTranslation& r : results[d]) out.push_back({r.paraphrase, d, "backtranslate"});
  return out;
}

}  // namespace ld::data
