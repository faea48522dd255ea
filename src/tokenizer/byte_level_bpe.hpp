#pragma once
// Byte-level BPE (GPT-2, Qwen, LLaMA-3): every byte maps to a printable code point (the
// byte-to-unicode table), vocab tokens are strings of those code points, and merges by rank join
// adjacent symbols of one pre-token. The model works on raw bytes; the table is only used to read
// and write vocab files.
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.hpp"

namespace ld::tok {

// UTF-8 of the code point that GPT-2's bytes_to_unicode assigns to each byte.
const std::array<std::string, 256>& byte_to_unicode();
std::string bytes_to_unicode(std::string_view bytes);
// The raw bytes of a token written in byte-to-unicode form; nullopt if a character is not in the table.
std::optional<std::string> unicode_to_bytes(std::string_view token);

// Transparent string hashing so maps keyed by std::string can be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// A merge list as read from a file: the pair and where it came from, for error messages.
struct MergeEntry {
  std::string left, right;
  std::string where;  // e.g. "vocab.bpe line 7" or "merges[5]"
};

// The BPE model proper: vocab + merges over raw bytes.
class BytePairModel {
 public:
  // vocab: token (byte-to-unicode form) -> id. `source` names the file in error messages.
  BytePairModel(const StringIdMap& vocab, const std::vector<MergeEntry>& merges, bool ignore_merges,
                const std::string& source);

  // Appends the ids of one pre-token (raw bytes). Results are cached per thread.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  // Raw bytes of a model token ("" for ids that are not in the model vocab).
  const std::string& token_bytes(int32_t id) const { return bytes_of_id_[static_cast<size_t>(id)]; }
  int32_t size() const { return static_cast<int32_t>(bytes_of_id_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  void merge_symbols(std::string_view piece, std::vector<int32_t>& out) const;
  const Merge* find_merge(int32_t left, int32_t right) const;

  std::array<int32_t, 256> byte_id_{};
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<std::string> bytes_of_id_;
  StringIdMap id_of_bytes_;  // only filled when ignore_merges
  bool ignore_merges_ = false;
  uint64_t cache_key_;  // identifies this model in the per-thread caches
};

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = true;
};

// Everything a byte-level BPE tokenizer is configured with (from tokenizer.json, encoder.json +
// vocab.bpe, or ByteLevelBpeData).
struct ByteLevelConfig {
  StringIdMap vocab;
  std::vector<MergeEntry> merges;
  std::vector<AddedToken> added_tokens;
  std::string pattern;          // regex, already resolved from "gpt2"/"cl100k"
  bool nfc = false;             // normalizer NFC
  bool ignore_merges = false;   // a pre-token that is itself in the vocab is not split (LLaMA-3)
  std::vector<int32_t> prefix;  // post-processor tokens added with add_special
  std::vector<int32_t> suffix;
  std::string source;  // file name for error messages
};

std::unique_ptr<Tokenizer> make_byte_level_tokenizer(ByteLevelConfig config);
// The tokenizer a trainer produced, without a round trip through a file.
std::unique_ptr<Tokenizer> make_byte_level_tokenizer(const ByteLevelBpeData& data);

// "gpt2" and "cl100k" name the standard patterns; anything else is taken as a regex.
std::string resolve_pattern(const std::string& name_or_regex);

}  // namespace ld::tok
