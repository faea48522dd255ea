#pragma once
// Tokenizers (DESIGN.md: tokenizer layer). One interface over the model families we read:
// byte-level BPE (GPT-2 encoder.json + vocab.bpe, Hugging Face tokenizer.json: GPT-2, Qwen,
// LLaMA-3) and SentencePiece BPE (.model, LLaMA-2). Text is bytes: decode(encode(x)) == x for any
// input, including invalid UTF-8.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ld::tok {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // add_special: the post-processor's tokens (e.g. BOS) are added, as Hugging Face does with
  // add_special_tokens=True. Byte-level BPE matches added/special tokens present in the text;
  // SentencePiece treats "<s>" in the text as plain text, as spm_encode does.
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = false) const = 0;
  virtual std::string decode(std::span<const int32_t> ids, bool skip_special = false) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  virtual std::string id_to_token(int32_t id) const = 0;  // throws ld::Error for an id out of range

  // Encodes many texts on `threads` threads (0 = all); results in input order.
  std::vector<std::vector<int32_t>> encode_batch(std::span<const std::string> texts, int threads = 0) const;
};

// PATH: a folder with tokenizer.json, a folder with encoder.json and vocab.bpe, or a SentencePiece
// .model file. Errors name the file and the problem (unsupported components are named).
std::unique_ptr<Tokenizer> load_tokenizer(const std::filesystem::path& path);

// What a byte-level BPE tokenizer is made of; the trainer produces it, tokenizer.json stores it.
struct ByteLevelBpeData {
  std::vector<std::string> vocab;                            // id -> token, in byte-to-unicode form
  std::vector<std::pair<std::string, std::string>> merges;  // by rank
  std::vector<std::pair<std::string, int32_t>> special_tokens;  // added tokens, matched before splitting
  std::string pattern = "gpt2";  // pre-tokenizer regex: "gpt2" or "cl100k" (or a literal regex)
  std::string chat_template;     // for tokenizer_config.json, may be empty
};

// Writes tokenizer.json and tokenizer_config.json into dir (created if needed), atomically
// (temporary names, then rename), in the format Hugging Face tokenizers loads.
void save_tokenizer_json(const ByteLevelBpeData& data, const std::filesystem::path& dir);

// Streaming decode: feed ids one at a time, get the text that is complete so far, never half a
// UTF-8 character (incomplete bytes are held until the next ids complete them or flush()).
// New ids are decoded together with the previous ones as context, so decoders that treat the first
// token specially (SentencePiece drops its leading space) still give the full text when joined.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string push(int32_t id);
  std::string flush();

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;         // the text of the context ids, already emitted
  std::vector<int32_t> ids_;    // context ids, then ids not yet emitted
  size_t context_ = 0;          // how many of ids_ are context
};

}  // namespace ld::tok
