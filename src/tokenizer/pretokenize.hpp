#pragma once
// Regex pre-tokenization (PCRE2, JIT, UTF + UCP). Input may be invalid UTF-8: PCRE2 then never
// matches across an invalid byte, and whatever the pattern leaves unmatched (invalid bytes, or text
// the pattern does not cover) is passed on as pieces of its own, so every byte reaches the model.
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace ld::tok {

// The GPT-2 pattern and the cl100k pattern (GPT-4, LLaMA-3; Qwen's differs only in \p{N} digits
// and is read from its tokenizer.json).
extern const char* const kGpt2Pattern;
extern const char* const kCl100kPattern;

class Pretokenizer {
 public:
  // `source` names where the pattern came from, for the error message of a pattern that does not compile.
  Pretokenizer(const std::string& pattern, const std::string& source);
  ~Pretokenizer();
  Pretokenizer(const Pretokenizer&) = delete;
  Pretokenizer& operator=(const Pretokenizer&) = delete;

  // Calls on_piece for each consecutive piece; the pieces concatenate to text.
  void split(std::string_view text, const std::function<void(std::string_view)>& on_piece) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code*
};

// Valid UTF-8 runs in NFC (or NFKC with compatibility); invalid bytes are kept as they are.
std::string unicode_normalize(std::string_view text, bool compatibility);
std::string nfc_normalize(std::string_view text);  // unicode_normalize(text, false)

}  // namespace ld::tok
