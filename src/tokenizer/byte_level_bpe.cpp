#include "tokenizer/byte_level_bpe.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/error.hpp"
#include "tokenizer/pretokenize.hpp"

namespace ld::tok {

// ---------------------------------------------------------------- byte-to-unicode table

namespace {
void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else {  // the table only uses code points below 0x800
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::array<uint32_t, 256> byte_code_points() {
  std::array<uint32_t, 256> cps{};
  uint32_t next_unprintable = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cps[b] = printable ? b : next_unprintable++;
  }
  return cps;
}

// Code point (below 0x200 + 256) -> byte, or -1.
const std::vector<int>& code_point_to_byte() {
  static const std::vector<int> table = [] {
    std::vector<int> t(0x400, -1);
    auto cps = byte_code_points();
    for (int b = 0; b < 256; ++b) t[cps[static_cast<size_t>(b)]] = b;
    return t;
  }();
  return table;
}
}  // namespace

const std::array<std::string, 256>& byte_to_unicode() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    auto cps = byte_code_points();
    for (size_t b = 0; b < 256; ++b) append_utf8(cps[b], t[b]);
    return t;
  }();
  return table;
}

std::string bytes_to_unicode(std::string_view bytes) {
  const auto& table = byte_to_unicode();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) out += table[c];
  return out;
}

std::optional<std::string> unicode_to_bytes(std::string_view token) {
  const auto& table = code_point_to_byte();
  std::string out;
  out.reserve(token.size());
  for (size_t i = 0; i < token.size();) {
    auto c = static_cast<unsigned char>(token[i]);
    uint32_t cp = 0;
    if (c < 0x80) {
      cp = c;
      i += 1;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < token.size()) {
      cp = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(token[i + 1]) & 0x3Fu);
      i += 2;
    } else {
      return std::nullopt;
    }
    if (cp >= table.size() || table[cp] < 0) return std::nullopt;
    out.push_back(static_cast<char>(table[cp]));
  }
  return out;
}

std::string resolve_pattern(const std::string& name_or_regex) {
  if (name_or_regex == "gpt2") return kGpt2Pattern;
  if (name_or_regex == "cl100k") return kCl100kPattern;
  return name_or_regex;
}

// ---------------------------------------------------------------- BytePairModel

namespace {
uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

std::atomic<uint64_t> next_model_key{1};

// A fast hash for short strings (pre-tokens): 8 bytes at a time, multiply and fold. Never 0, which
// marks an empty cache slot.
uint64_t piece_hash(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (s.size() * 0xFF51AFD7ED558CCDull);
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 32;
  return h == 0 ? 1 : h;
}

// Per-thread cache of pre-token -> ids. Pre-tokens repeat a lot (words), so most pieces skip BPE.
// Open addressing over flat arrays: a lookup is one hash, one probe and one memcmp, no allocation.
class PieceCache {
 public:
  struct Hit {
    const int32_t* ids;
    uint32_t count;
  };

  void prepare(uint64_t owner, size_t max_entries) {
    if (owner_ == owner && used_ < max_entries) return;
    owner_ = owner;
    used_ = 0;
    slots_.assign(1 << 14, Slot{});
    keys_.clear();
    ids_.clear();
  }

  std::optional<Hit> find(std::string_view piece, uint64_t hash) const {
    for (size_t i = hash & mask();; i = (i + 1) & mask()) {
      const Slot& slot = slots_[i];
      if (slot.hash == 0) return std::nullopt;
      if (slot.hash == hash && slot.key_len == piece.size() &&
          std::memcmp(keys_.data() + slot.key_off, piece.data(), piece.size()) == 0)
        return Hit{ids_.data() + slot.ids_off, slot.ids_len};
    }
  }

  void insert(std::string_view piece, uint64_t hash, const int32_t* ids, size_t count) {
    if (2 * (used_ + 1) > slots_.size()) grow();
    Slot slot{hash, static_cast<uint32_t>(keys_.size()), static_cast<uint32_t>(piece.size()),
              static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(count)};
    keys_.append(piece);
    ids_.insert(ids_.end(), ids, ids + count);
    place(slot);
    ++used_;
  }

 private:
  struct Slot {
    uint64_t hash = 0;
    uint32_t key_off = 0, key_len = 0, ids_off = 0, ids_len = 0;
  };
  size_t mask() const { return slots_.size() - 1; }
  void place(const Slot& slot) {
    size_t i = slot.hash & mask();
    while (slots_[i].hash != 0) i = (i + 1) & mask();
    slots_[i] = slot;
  }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    for (const Slot& slot : old)
      if (slot.hash != 0) place(slot);
  }

  uint64_t owner_ = 0;
  size_t used_ = 0;
  std::vector<Slot> slots_;
  std::string keys_;
  std::vector<int32_t> ids_;
};
constexpr size_t kMaxCachedPiece = 64;      // longer pieces rarely repeat
constexpr size_t kMaxCacheEntries = 1 << 18;  // bounds memory on huge, diverse inputs
}  // namespace

BytePairModel::BytePairModel(const StringIdMap& vocab, const std::vector<MergeEntry>& merges, bool ignore_merges,
                             const std::string& source)
    : ignore_merges_(ignore_merges), cache_key_(next_model_key.fetch_add(1)) {
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    LD_CHECK(id >= 0, source, ": vocab token '", token, "' has a negative id ", id);
    max_id = std::max(max_id, id);
  }
  bytes_of_id_.resize(static_cast<size_t>(max_id + 1));
  for (const auto& [token, id] : vocab) {
    auto bytes = unicode_to_bytes(token);
    LD_CHECK(bytes.has_value(), source, ": vocab token '", token, "' (id ", id,
             ") is not in byte-level form (a character outside the byte-to-unicode table)");
    bytes_of_id_[static_cast<size_t>(id)] = *bytes;
    if (ignore_merges_) id_of_bytes_.emplace(*bytes, id);
  }
  const auto& table = byte_to_unicode();
  for (size_t b = 0; b < 256; ++b) {
    auto it = vocab.find(table[b]);
    LD_CHECK(it != vocab.end(), source, ": the vocab has no token for byte 0x", std::hex, b,
             " ('", table[b], "'); a byte-level BPE vocab must hold all 256 bytes");
    byte_id_[b] = it->second;
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const MergeEntry& m = merges[rank];
    auto left = vocab.find(m.left), right = vocab.find(m.right), result = vocab.find(m.left + m.right);
    LD_CHECK(left != vocab.end() && right != vocab.end() && result != vocab.end(), source, ": merge '", m.left,
             " ", m.right, "' at ", m.where, " refers to a token that is not in the vocab ('",
             left == vocab.end() ? m.left : right == vocab.end() ? m.right : m.left + m.right, "')");
    // A repeated pair keeps its first (lowest) rank, as in GPT-2's bpe_ranks.
    merges_.emplace(pair_key(left->second, right->second), Merge{static_cast<int32_t>(rank), result->second});
  }
}

const BytePairModel::Merge* BytePairModel::find_merge(int32_t left, int32_t right) const {
  auto it = merges_.find(pair_key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BytePairModel::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() == 1) {
    out.push_back(byte_id_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  if (ignore_merges_) {
    if (auto it = id_of_bytes_.find(piece); it != id_of_bytes_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (piece.size() > kMaxCachedPiece) {
    merge_symbols(piece, out);
    return;
  }
  thread_local PieceCache cache;
  cache.prepare(cache_key_, kMaxCacheEntries);
  uint64_t hash = piece_hash(piece);
  if (auto hit = cache.find(piece, hash)) {
    out.insert(out.end(), hit->ids, hit->ids + hit->count);
    return;
  }
  size_t before = out.size();
  merge_symbols(piece, out);
  cache.insert(piece, hash, out.data() + before, out.size() - before);
}

// BPE on one piece: symbols in a linked list, candidate pairs in a min-heap by (rank, position),
// stale heap entries skipped when popped. O(n log n), so a long piece (a line of 10k dashes) is
// no problem.
void BytePairModel::merge_symbols(std::string_view piece, std::vector<int32_t>& out) const {
  struct Candidate {
    int32_t rank;
    int32_t pos;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<int32_t> ids, prev, next;
  thread_local std::vector<Candidate> heap;
  const auto n = static_cast<int32_t>(piece.size());
  ids.resize(piece.size());
  prev.resize(piece.size());
  next.resize(piece.size());
  heap.clear();
  for (int32_t i = 0; i < n; ++i) {
    ids[static_cast<size_t>(i)] = byte_id_[static_cast<unsigned char>(piece[static_cast<size_t>(i)])];
    prev[static_cast<size_t>(i)] = i - 1;
    next[static_cast<size_t>(i)] = i + 1;
  }
  auto consider = [&](int32_t i) {  // the pair starting at symbol i, if it merges
    int32_t j = next[static_cast<size_t>(i)];
    if (j >= n) return;
    if (const Merge* m = find_merge(ids[static_cast<size_t>(i)], ids[static_cast<size_t>(j)]))
      heap.push_back({m->rank, i});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  std::make_heap(heap.begin(), heap.end(), std::greater<>());
  auto push = [&](int32_t i) {
    size_t before = heap.size();
    consider(i);
    if (heap.size() > before) std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    Candidate top = heap.back();
    heap.pop_back();
    auto i = static_cast<size_t>(top.pos);
    if (ids[i] < 0 || next[i] >= n) continue;
    auto j = static_cast<size_t>(next[i]);
    const Merge* m = find_merge(ids[i], ids[j]);
    if (m == nullptr || m->rank != top.rank) continue;  // stale: a neighbour changed since it was queued
    ids[i] = m->result;
    ids[j] = -1;
    next[i] = next[j];
    if (next[i] < n) prev[static_cast<size_t>(next[i])] = top.pos;
    if (prev[i] >= 0) push(prev[i]);
    push(top.pos);
  }
  for (int32_t i = 0; i < n; i = next[static_cast<size_t>(i)]) out.push_back(ids[static_cast<size_t>(i)]);
}

// ---------------------------------------------------------------- the tokenizer

namespace {

class ByteLevelTokenizer final : public Tokenizer {
 public:
  explicit ByteLevelTokenizer(ByteLevelConfig config)
      : model_(config.vocab, config.merges, config.ignore_merges, config.source),
        pretokenizer_(config.pattern, config.source),
        nfc_(config.nfc),
        added_(std::move(config.added_tokens)),
        prefix_(std::move(config.prefix)),
        suffix_(std::move(config.suffix)),
        vocab_(std::move(config.vocab)) {
    int32_t size = model_.size();
    for (const auto& t : added_) {
      LD_CHECK(t.id >= 0 && !t.content.empty(), config.source, ": added token '", t.content, "' with id ", t.id,
               " is invalid");
      size = std::max(size, t.id + 1);
    }
    tokens_.resize(static_cast<size_t>(size));
    kinds_.assign(static_cast<size_t>(size), Kind::kNone);
    for (const auto& [token, id] : vocab_) {
      tokens_[static_cast<size_t>(id)] = token;
      kinds_[static_cast<size_t>(id)] = Kind::kModel;
    }
    for (size_t k = 0; k < added_.size(); ++k) {
      const AddedToken& t = added_[k];
      tokens_[static_cast<size_t>(t.id)] = t.content;
      kinds_[static_cast<size_t>(t.id)] = t.special ? Kind::kSpecial : Kind::kAdded;
      added_by_first_byte_[static_cast<unsigned char>(t.content[0])].push_back(k);
    }
    for (auto& bucket : added_by_first_byte_)  // longest first: "<|im_start|>" before "<"
      std::stable_sort(bucket.begin(), bucket.end(),
                       [&](size_t a, size_t b) { return added_[a].content.size() > added_[b].content.size(); });
    for (int32_t id : prefix_) check_id(id, config.source);
    for (int32_t id : suffix_) check_id(id, config.source);
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + prefix_.size() + suffix_.size() + 4);
    if (add_special) out.insert(out.end(), prefix_.begin(), prefix_.end());
    size_t segment_start = 0;
    for (size_t pos = 0; pos < text.size();) {
      const AddedToken* t = added_.empty() ? nullptr : added_token_at(text, pos);
      if (t == nullptr) {
        ++pos;
        continue;
      }
      encode_segment(text.substr(segment_start, pos - segment_start), out);
      out.push_back(t->id);
      pos += t->content.size();
      segment_start = pos;
    }
    encode_segment(text.substr(segment_start), out);
    if (add_special) out.insert(out.end(), suffix_.begin(), suffix_.end());
    return out;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out;
    for (int32_t id : ids) {
      Kind kind = kind_of(id);
      if (kind == Kind::kModel)
        out += model_.token_bytes(id);
      else if (kind == Kind::kAdded || (kind == Kind::kSpecial && !skip_special))
        out += tokens_[static_cast<size_t>(id)];
    }
    return out;
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(tokens_.size()); }

  std::optional<int32_t> token_to_id(std::string_view token) const override {
    for (const auto& t : added_)
      if (t.content == token) return t.id;
    if (auto it = vocab_.find(token); it != vocab_.end()) return it->second;
    return std::nullopt;
  }

  std::string id_to_token(int32_t id) const override {
    kind_of(id);
    return tokens_[static_cast<size_t>(id)];
  }

 private:
  enum class Kind : uint8_t { kNone, kModel, kAdded, kSpecial };

  Kind kind_of(int32_t id) const {
    LD_CHECK(id >= 0 && id < vocab_size() && kinds_[static_cast<size_t>(id)] != Kind::kNone, "token id ", id,
             " is not in the vocabulary (size ", vocab_size(), ")");
    // Added tokens that are also model tokens (GPT-2's <|endoftext|>) decode as added tokens.
    return kinds_[static_cast<size_t>(id)];
  }

  void check_id(int32_t id, const std::string& source) const {
    LD_CHECK(id >= 0 && id < vocab_size() && kinds_[static_cast<size_t>(id)] != Kind::kNone, source,
             ": post-processor token id ", id, " is not in the vocabulary");
  }

  const AddedToken* added_token_at(std::string_view text, size_t pos) const {
    for (size_t k : added_by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const std::string& c = added_[k].content;
      if (text.compare(pos, c.size(), c) == 0) return &added_[k];
    }
    return nullptr;
  }

  void encode_segment(std::string_view segment, std::vector<int32_t>& out) const {
    if (segment.empty()) return;
    auto encode_pieces = [&](std::string_view text) {
      pretokenizer_.split(text, [&](std::string_view piece) { model_.encode_piece(piece, out); });
    };
    if (nfc_) {
      encode_pieces(nfc_normalize(segment));
    } else {
      encode_pieces(segment);
    }
  }

  BytePairModel model_;
  Pretokenizer pretokenizer_;
  bool nfc_;
  std::vector<AddedToken> added_;
  std::array<std::vector<size_t>, 256> added_by_first_byte_;
  std::vector<int32_t> prefix_, suffix_;
  StringIdMap vocab_;
  std::vector<std::string> tokens_;  // id -> token as written in the vocab (or added token content)
  std::vector<Kind> kinds_;
};

}  // namespace

std::unique_ptr<Tokenizer> make_byte_level_tokenizer(ByteLevelConfig config) {
  // Added tokens may also be listed in the model vocab (GPT-2's <|endoftext|>); they are matched
  // before BPE, so the model does not need them, and they need not be in byte-level form.
  for (const auto& t : config.added_tokens)
    if (auto it = config.vocab.find(t.content); it != config.vocab.end() && it->second == t.id) config.vocab.erase(it);
  return std::make_unique<ByteLevelTokenizer>(std::move(config));
}

std::unique_ptr<Tokenizer> make_byte_level_tokenizer(const ByteLevelBpeData& data) {
  ByteLevelConfig config;
  config.source = "ByteLevelBpeData";
  for (size_t id = 0; id < data.vocab.size(); ++id)
    if (!data.vocab[id].empty()) config.vocab.emplace(data.vocab[id], static_cast<int32_t>(id));
  for (size_t i = 0; i < data.merges.size(); ++i)
    config.merges.push_back({data.merges[i].first, data.merges[i].second, "merges[" + std::to_string(i) + "]"});
  for (const auto& [content, id] : data.special_tokens) config.added_tokens.push_back({content, id, true});
  config.pattern = resolve_pattern(data.pattern);
  return make_byte_level_tokenizer(std::move(config));
}

}  // namespace ld::tok
