// Byte-level BPE training (bpe_trainer.hpp): stream the files, count pre-tokens in parallel, then
// merge with incrementally maintained pair counts.
#include "tokenizer/bpe_trainer.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <queue>
#include <string_view>
#include <unordered_map>

#include "core/error.hpp"
#include "tokenizer/pretokenize.hpp"

namespace ld::tok {

namespace {

constexpr size_t kChunksPerThread = 8;  // chunks read per batch, per thread

// Calls f(segment) for the text between occurrences of the special tokens: special tokens are
// matched before pre-tokenization when encoding, so they are never part of a counted word.
template <typename F>
void for_each_outside_specials(std::string_view text, const std::vector<std::string>& specials, F&& f) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best = std::string_view::npos, best_len = 0;
    for (const auto& s : specials) {
      size_t at = text.find(s, pos);
      if (at < best || (at == best && s.size() > best_len)) best = at, best_len = s.size();
    }
    if (best == std::string_view::npos) break;
    if (best > pos) f(text.substr(pos, best - pos));
    pos = best + best_len;
  }
  if (pos < text.size()) f(text.substr(pos));
}

// ---- streaming the input -----------------------------------------------------------------------

bool is_ascii_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// The code point of the valid UTF-8 character in buf[begin, end), or -1 if those bytes are not
// exactly one valid character.
int32_t decode_exact(const std::string& buf, size_t begin, size_t end) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(buf[i]); };
  size_t n = end - begin;
  unsigned char lead = byte(begin);
  size_t want = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xe ? 3 : (lead >> 3) == 0x1e ? 4 : 0;
  if (want == 0 || want != n) return -1;
  int32_t cp = want == 1 ? lead : lead & (0x3f >> (want - 1));
  for (size_t i = begin + 1; i < end; ++i) {
    if ((byte(i) & 0xc0) != 0x80) return -1;
    cp = (cp << 6) | (byte(i) & 0x3f);
  }
  return cp;
}

// Whitespace for PCRE2's \s with UCP, and some more: treating a character as whitespace only
// removes cut positions, so erring on this side is safe.
bool maybe_whitespace(int32_t cp) {
  return cp <= ' ' || cp == 0x7f || (cp >= 0x80 && cp <= 0xa0) || cp == 0x1680 || cp == 0x180e ||
         (cp >= 0x2000 && cp <= 0x200f) || (cp >= 0x2028 && cp <= 0x202f) || (cp >= 0x205f && cp <= 0x206f) ||
         cp == 0x3000 || cp == 0xfeff;
}

// Is there a valid non-whitespace character ending at buf[end] (exclusive) / starting at buf[begin]?
bool solid_before(const std::string& buf, size_t end) {
  size_t begin = end;
  while (begin > 0 && end - begin < 4) {
    --begin;
    if ((static_cast<unsigned char>(buf[begin]) & 0xc0) != 0x80) break;
  }
  int32_t cp = decode_exact(buf, begin, end);
  return cp >= 0 && !maybe_whitespace(cp);
}
bool solid_after(const std::string& buf, size_t begin) {
  for (size_t end = begin + 1; end <= buf.size() && end <= begin + 4; ++end) {
    int32_t cp = decode_exact(buf, begin, end);
    if (cp >= 0) return !maybe_whitespace(cp);
  }
  return false;
}

// A position where the text may be cut without changing its pre-tokens, for both patterns: no
// token crosses it and the text before it does not end in whitespace that a (?!\S) lookahead could
// extend differently. Two kinds: after a "\n" between non-whitespace characters ("x\n|y", "。\n|天"),
// and before a space between ASCII letters ("a| b"). Returns 0 when the buffer has none; the bytes
// below searched_below were searched before (the buffer grew), so the search stops near them.
size_t last_safe_cut(const std::string& buf, size_t searched_below) {
  if (buf.size() < 3) return 0;
  // A check at c reads up to 4 bytes after c: those near the old end are checked again.
  for (size_t c = buf.size() - 1; c >= 2 && c + 4 >= searched_below; --c) {
    if (buf[c - 1] == '\n' && solid_after(buf, c) && solid_before(buf, c - 1)) return c;
    if (buf[c] == ' ' && c + 1 < buf.size() && is_ascii_letter(buf[c - 1]) && is_ascii_letter(buf[c + 1])) return c;
  }
  return 0;
}

// Reads the files as a sequence of chunks of about chunk_bytes, each cut at a safe position (a chunk
// grows until it has one; file ends are always cuts). Memory: one chunk plus the carried remainder.
class ChunkReader {
 public:
  ChunkReader(const std::vector<std::filesystem::path>& files, size_t chunk_bytes)
      : files_(files), chunk_bytes_(std::max<size_t>(chunk_bytes, 16)) {}

  bool next(std::string& chunk) {
    while (true) {
      if (!in_.is_open()) {
        if (file_index_ == files_.size()) return false;
        open(files_[file_index_++]);
      }
      chunk = std::move(carry_);
      carry_.clear();
      while (true) {
        size_t had = chunk.size();
        chunk.resize(had + chunk_bytes_);
        in_.read(chunk.data() + had, static_cast<std::streamsize>(chunk_bytes_));
        chunk.resize(had + static_cast<size_t>(in_.gcount()));
        LD_CHECK(!in_.bad(), "tokenizer train: error reading '", current_.string(), "'");
        if (in_.eof()) {
          in_.close();
          break;
        }
        size_t cut = last_safe_cut(chunk, had);
        if (cut > 0) {
          carry_.assign(chunk, cut);
          chunk.resize(cut);
          break;
        }
      }
      if (!chunk.empty()) return true;
    }
  }

 private:
  void open(const std::filesystem::path& path) {
    current_ = path;
    in_.open(path, std::ios::binary);
    LD_CHECK(in_.is_open() && !std::filesystem::is_directory(path), "tokenizer train: cannot read '", path.string(), "'");
  }

  const std::vector<std::filesystem::path>& files_;
  size_t chunk_bytes_;
  size_t file_index_ = 0;
  std::ifstream in_;
  std::filesystem::path current_;
  std::string carry_;
};

// ---- counting pre-tokens -----------------------------------------------------------------------

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using WordCounts = std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>>;

void count_chunk(std::string_view chunk, const std::vector<std::string>& specials, const Pretokenizer& pretokenizer,
                 WordCounts& counts) {
  for_each_outside_specials(chunk, specials, [&](std::string_view segment) {
    pretokenizer.split(segment, [&](std::string_view piece) {
      auto it = counts.find(piece);
      if (it != counts.end())
        ++it->second;
      else
        counts.emplace(std::string(piece), 1);
    });
  });
}

// Distinct pre-tokens of all files with their counts, sorted by bytes (so the result does not depend
// on the thread count). Threads take whole chunks and count into their own maps, merged at the end.
std::vector<std::pair<std::string, uint64_t>> count_pretokens_on(const std::vector<std::filesystem::path>& inputs,
                                                                 const BpeTrainOptions& options, int threads) {
  Pretokenizer pretokenizer(options.pattern == "gpt2" ? kGpt2Pattern : kCl100kPattern, "tokenizer train --pattern");
  std::vector<WordCounts> per_thread(static_cast<size_t>(threads));
  ChunkReader reader(inputs, options.chunk_bytes);
  std::vector<std::string> batch(static_cast<size_t>(threads) * kChunksPerThread);
  while (true) {
    size_t n = 0;
    while (n < batch.size() && reader.next(batch[n])) ++n;
    if (n == 0) break;
#pragma omp parallel num_threads(threads)
    {
      WordCounts& mine = per_thread[static_cast<size_t>(omp_get_thread_num())];
#pragma omp for schedule(dynamic, 1)
      for (size_t i = 0; i < n; ++i) count_chunk(batch[i], options.special_tokens, pretokenizer, mine);
    }
  }
  WordCounts& all = per_thread[0];
  for (size_t t = 1; t < per_thread.size(); ++t) {
    for (auto& [word, count] : per_thread[t]) all[word] += count;
    per_thread[t] = WordCounts();
  }
  std::vector<std::pair<std::string, uint64_t>> words(all.begin(), all.end());
  all = WordCounts();
  std::sort(words.begin(), words.end());
  return words;
}

// ---- merging -----------------------------------------------------------------------------------

using PairKey = uint64_t;
PairKey pair_key(uint32_t left, uint32_t right) { return (static_cast<uint64_t>(left) << 32) | right; }
uint32_t key_left(PairKey k) { return static_cast<uint32_t>(k >> 32); }
uint32_t key_right(PairKey k) { return static_cast<uint32_t>(k & 0xffffffffu); }

struct HeapEntry {
  uint64_t count;
  PairKey pair;
};

// The merge state. Token ids here: bytes are 0..255, then the tokens merges create in order; a merge
// whose result already exists (ab+c after a+bc) reuses that token, as Hugging Face's trainer does, so
// each byte string has one id. Words are stored flat: word w's symbols are
// symbols[start[w] .. start[w] + length[w]), shrinking as merges apply.
class BpeMerger {
 public:
  explicit BpeMerger(const std::vector<std::pair<std::string, uint64_t>>& words) : heap_(HeapOrder{&token_bytes_}) {
    for (int b = 0; b < 256; ++b) add_token(std::string(1, static_cast<char>(b)));
    for (const auto& [word, count] : words) {
      start_.push_back(symbols_.size());
      length_.push_back(static_cast<uint32_t>(word.size()));
      frequency_.push_back(count);
      for (unsigned char c : word) symbols_.push_back(c);
    }
    for (uint32_t w = 0; w < frequency_.size(); ++w) {
      const uint32_t* s = &symbols_[start_[w]];
      for (uint32_t i = 0; i + 1 < length_[w]; ++i) {
        PairKey k = pair_key(s[i], s[i + 1]);
        pair_count_[k] += frequency_[w];
        auto& where = pair_words_[k];
        if (where.empty() || where.back() != w) where.push_back(w);
      }
    }
    for (const auto& [k, count] : pair_count_) heap_.push({count, k});
  }

  // Merges until `wanted` new tokens exist; stops early when the best pair occurs fewer than
  // min_frequency times or no pair is left. Returns the merges as (left, right) token ids, by rank.
  std::vector<std::pair<uint32_t, uint32_t>> run(size_t wanted, uint64_t min_frequency,
                                                 const std::function<void(size_t, size_t)>& progress) {
    std::vector<std::pair<uint32_t, uint32_t>> merges;
    while (token_count() - 256 < wanted && !heap_.empty()) {
      HeapEntry top = heap_.top();
      heap_.pop();
      uint64_t actual = current_count(top.pair);
      if (actual != top.count) {  // stale entry (counts only fall after a pair appears): re-queue
        if (actual > 0) heap_.push({actual, top.pair});
        continue;
      }
      if (top.count < min_frequency) break;
      merges.emplace_back(key_left(top.pair), key_right(top.pair));
      apply_merge(top.pair);
      if (progress) progress(token_count() - 256, wanted);
    }
    return merges;
  }

  const std::string& token_bytes(uint32_t id) const { return token_bytes_[id]; }
  size_t token_count() const { return token_bytes_.size(); }

 private:
  struct HeapOrder {
    const std::vector<std::string>* bytes;
    // priority_queue puts the "largest" on top: higher count, then the lexicographically smaller pair.
    bool operator()(const HeapEntry& a, const HeapEntry& b) const {
      if (a.count != b.count) return a.count < b.count;
      const auto& v = *bytes;
      int left = v[key_left(a.pair)].compare(v[key_left(b.pair)]);
      if (left != 0) return left > 0;
      return v[key_right(a.pair)].compare(v[key_right(b.pair)]) > 0;
    }
  };

  uint32_t add_token(std::string bytes) {
    auto [it, added] = token_id_.emplace(std::move(bytes), static_cast<uint32_t>(token_bytes_.size()));
    if (added) token_bytes_.push_back(it->first);
    return it->second;
  }

  uint64_t current_count(PairKey k) const {
    auto it = pair_count_.find(k);
    return it == pair_count_.end() ? 0 : it->second;
  }

  void collect_pairs(uint32_t w, std::vector<PairKey>& out) const {
    out.clear();
    const uint32_t* s = &symbols_[start_[w]];
    for (uint32_t i = 0; i + 1 < length_[w]; ++i) out.push_back(pair_key(s[i], s[i + 1]));
    std::sort(out.begin(), out.end());
  }

  // Replaces left-to-right, non-overlapping occurrences of (a, b) in word w by c. False if none.
  bool merge_in_word(uint32_t w, uint32_t a, uint32_t b, uint32_t c) {
    uint32_t* s = &symbols_[start_[w]];
    uint32_t n = length_[w], out = 0;
    for (uint32_t i = 0; i < n;) {
      if (i + 1 < n && s[i] == a && s[i + 1] == b) {
        s[out++] = c;
        i += 2;
      } else {
        s[out++] = s[i++];
      }
    }
    length_[w] = out;
    return out != n;
  }

  void apply_merge(PairKey merged) {
    uint32_t a = key_left(merged), b = key_right(merged);
    uint32_t c = add_token(token_bytes_[a] + token_bytes_[b]);

    std::vector<uint32_t> words = std::move(pair_words_[merged]);
    pair_words_.erase(merged);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());

    std::vector<PairKey> grown;  // pairs that gained occurrences: all contain c, queued below
    for (uint32_t w : words) {
      collect_pairs(w, before_);
      if (!merge_in_word(w, a, b, c)) continue;  // the index is lazy: the pair may be gone from w
      collect_pairs(w, after_);
      apply_difference(w, grown);
    }
    pair_count_.erase(merged);
    std::sort(grown.begin(), grown.end());
    grown.erase(std::unique(grown.begin(), grown.end()), grown.end());
    for (PairKey k : grown) heap_.push({current_count(k), k});
  }

  // Updates pair counts and the pair -> words index by (pairs after) - (pairs before) of word w;
  // both lists are sorted.
  void apply_difference(uint32_t w, std::vector<PairKey>& grown) {
    size_t i = 0, j = 0;
    while (i < before_.size() || j < after_.size()) {
      PairKey k = (j == after_.size() || (i < before_.size() && before_[i] < after_[j])) ? before_[i] : after_[j];
      int64_t delta = 0;
      for (; i < before_.size() && before_[i] == k; ++i) --delta;
      for (; j < after_.size() && after_[j] == k; ++j) ++delta;
      if (delta == 0) continue;
      auto& count = pair_count_[k];
      if (delta < 0) {
        uint64_t drop = static_cast<uint64_t>(-delta) * frequency_[w];
        LD_ASSERT(count >= drop, "BPE pair count went negative");
        count -= drop;
        if (count == 0) pair_count_.erase(k);
      } else {
        count += static_cast<uint64_t>(delta) * frequency_[w];
        auto& where = pair_words_[k];
        if (where.empty() || where.back() != w) where.push_back(w);
        grown.push_back(k);
      }
    }
  }

  std::vector<std::string> token_bytes_;
  std::unordered_map<std::string, uint32_t> token_id_;
  std::vector<uint32_t> symbols_;
  std::vector<size_t> start_;
  std::vector<uint32_t> length_;
  std::vector<uint64_t> frequency_;
  std::unordered_map<PairKey, uint64_t> pair_count_;
  std::unordered_map<PairKey, std::vector<uint32_t>> pair_words_;
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapOrder> heap_;
  std::vector<PairKey> before_, after_;  // scratch
};

// ---- output ------------------------------------------------------------------------------------

// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others are mapped to
// U+0100 upwards in byte order. Returned as UTF-8 strings.
const std::array<std::string, 256>& byte_unicode_table() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    auto utf8 = [](uint32_t cp) {
      std::string s;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else {
        s += static_cast<char>(0xc0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3f));
      }
      return s;
    };
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      t[b] = utf8(printable ? b : next++);
    }
    return t;
  }();
  return table;
}

std::string unicode_form(std::string_view bytes) {
  const auto& table = byte_unicode_table();
  std::string out;
  for (unsigned char c : bytes) out += table[c];
  return out;
}

std::string file_list(const std::vector<std::filesystem::path>& inputs) {
  std::string s;
  for (const auto& p : inputs) s += (s.empty() ? "'" : ", '") + p.string() + "'";
  return s;
}

void check_options(const std::vector<std::filesystem::path>& inputs, const BpeTrainOptions& o) {
  LD_CHECK(!inputs.empty(), "tokenizer train: no input files");
  LD_CHECK(o.pattern == "gpt2" || o.pattern == "cl100k", "tokenizer train: unknown pattern '", o.pattern,
           "' (expected gpt2 or cl100k)");
  for (size_t i = 0; i < o.special_tokens.size(); ++i) {
    LD_CHECK(!o.special_tokens[i].empty(), "tokenizer train: a special token is empty");
    for (size_t j = 0; j < i; ++j)
      LD_CHECK(o.special_tokens[i] != o.special_tokens[j], "tokenizer train: special token '", o.special_tokens[i],
               "' is given twice");
  }
  size_t minimum = 256 + o.special_tokens.size();
  LD_CHECK(o.vocab_size >= 0 && static_cast<size_t>(o.vocab_size) >= minimum, "tokenizer train: vocab size ",
           o.vocab_size, " is smaller than the 256 byte tokens plus ", o.special_tokens.size(), " special tokens (",
           minimum, ")");
  LD_CHECK(o.min_frequency >= 0, "tokenizer train: min frequency must not be negative, got ", o.min_frequency);
  LD_CHECK(o.threads >= 0, "tokenizer train: threads must not be negative, got ", o.threads);
}

}  // namespace

std::vector<std::pair<std::string, uint64_t>> count_pretokens(const std::vector<std::filesystem::path>& inputs,
                                                              const BpeTrainOptions& options) {
  check_options(inputs, options);
  return count_pretokens_on(inputs, options, options.threads > 0 ? options.threads : omp_get_max_threads());
}

ByteLevelBpeData train_byte_level_bpe(const std::vector<std::filesystem::path>& inputs, const BpeTrainOptions& options) {
  auto words = count_pretokens(inputs, options);
  LD_CHECK(!words.empty(), "tokenizer train: the input has no text (", file_list(inputs), ")");

  size_t wanted = static_cast<size_t>(options.vocab_size) - 256 - options.special_tokens.size();
  BpeMerger merger(words);
  words = {};
  auto merges = merger.run(wanted, static_cast<uint64_t>(options.min_frequency), options.progress);

  ByteLevelBpeData data;
  data.pattern = options.pattern;
  for (const auto& form : byte_unicode_table()) data.vocab.push_back(form);
  for (const auto& special : options.special_tokens) {
    data.special_tokens.emplace_back(special, static_cast<int32_t>(data.vocab.size()));
    data.vocab.push_back(special);
  }
  for (auto [left, right] : merges)
    data.merges.emplace_back(unicode_form(merger.token_bytes(left)), unicode_form(merger.token_bytes(right)));
  for (size_t id = 256; id < merger.token_count(); ++id)
    data.vocab.push_back(unicode_form(merger.token_bytes(static_cast<uint32_t>(id))));
  return data;
}

}  // namespace ld::tok
