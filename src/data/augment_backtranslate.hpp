#pragma once
// Back-translation: each document goes through two causal LMs the user picks, e.g. an
// English->French model and a French->English one: text -> forward model -> intermediate ->
// backward model -> paraphrase. Each model folder needs config.json, the weights and a tokenizer.
//
// A prompt is the template with "{text}" replaced by the text, then the separator; the prompt is
// encoded with the tokenizer's special tokens (BOS), as `liandan generate --prompt` does. A
// generation stops at an eos_token_id of config.json, at the separator (cut off, as is everything
// from its first occurrence on) or after max_new_tokens; the result is trimmed of surrounding
// whitespace.
//
// With greedy decoding (temperature 0) there is one paraphrase per document, generated in batches
// (infer::generate_batch). With sampling there are n_aug per document, each from its own seed derived
// from (seed, document, sample), so outputs do not depend on batching or threads.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/augment_eda.hpp"
#include "infer/sampling.hpp"

namespace ld::tok {
class Tokenizer;
}
namespace ld::models {
class CausalLM;
}

namespace ld::data {

struct BacktranslateOptions {
  std::string forward_template = "{text}";
  std::string backward_template = "{text}";
  std::string separator = "\n";
  int64_t max_new_tokens = 64;
  infer::SamplingOptions sampling{.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                                  .repetition_penalty = 1.0f};
  int n_aug = 1;        // paraphrases per document when sampling
  int batch_size = 8;   // documents per generate_batch call (greedy only)
};

// One direction: a model, its tokenizer and its EOS ids.
class Translator {
 public:
  // Throws ld::Error naming the folder when the model or its tokenizer cannot be loaded.
  explicit Translator(const std::filesystem::path& dir);
  ~Translator();
  Translator(Translator&&) noexcept;

  // prompt_template must contain "{text}". seeds: one per text (used when sampling).
  std::vector<std::string> translate(const std::vector<std::string>& texts, const std::string& prompt_template,
                                     const BacktranslateOptions& options, const std::vector<uint64_t>& seeds) const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<models::CausalLM> model_;
  std::unique_ptr<tok::Tokenizer> tokenizer_;
  std::vector<int32_t> eos_;
};

// The template with "{text}" replaced (every occurrence) and the separator appended.
std::string fill_prompt(const std::string& prompt_template, const std::string& text, const std::string& separator);
// Cuts at the first separator, trims ASCII whitespace.
std::string cut_generation(const std::string& generated, const std::string& separator);

struct BackTranslation {
  std::string intermediate;
  std::string paraphrase;
};

// Documents in order; for each document its n (1 when greedy) results, sample-major within the
// document. on_progress(documents done).
std::vector<std::vector<BackTranslation>> backtranslate(const std::vector<std::string>& documents,
                                                        const Translator& forward, const Translator& backward,
                                                        const BacktranslateOptions& options, uint64_t seed,
                                                        const std::function<void(size_t)>& on_progress = {});

// The same as Augmented records (method "backtranslate").
std::vector<Augmented> backtranslate_augment(const std::vector<std::string>& documents, const Translator& forward,
                                             const Translator& backward, const BacktranslateOptions& options,
                                             uint64_t seed, const std::function<void(size_t)>& on_progress = {});

void validate(const BacktranslateOptions& options);

}  // namespace ld::data
