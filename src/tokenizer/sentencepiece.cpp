// SentencePiece BPE: reading the ModelProto, normalisation, the BPE merge loop of
// sentencepiece/src/bpe_model.cc, byte fallback, and decoding as spm_decode does.
#include "tokenizer/sentencepiece.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "tokenizer/protobuf_reader.hpp"

namespace ld::tok {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";  // "▁", U+2581

// ModelProto.SentencePiece.Type
enum class PieceType : uint8_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
// TrainerSpec.ModelType
enum class ModelType : int { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

const char* model_type_name(int type) {
  switch (type) {
    case 1: return "unigram";
    case 2: return "bpe";
    case 3: return "word";
    case 4: return "char";
    default: return "unknown";
  }
}

// What we read from a .model file. Defaults are those of sentencepiece_model.proto.
struct SpModel {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<PieceType> types;
  bool has_trainer_spec = false;
  bool has_normalizer_spec = false;
  int model_type = static_cast<int>(ModelType::kUnigram);
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  std::string unk_surface = " \xE2\x81\x87 ";  // " ⁇ "
  std::string normalizer_name;
  std::string charsmap;  // precompiled_charsmap: a darts-clone trie and the strings it maps to
  bool has_denormalizer = false;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

void parse_piece(std::string_view bytes, const std::string& source, SpModel& m) {
  proto::Reader reader(bytes, source);
  proto::Field f;
  std::string piece;
  float score = 0.0f;
  int type = static_cast<int>(PieceType::kNormal);
  while (reader.next(f)) {
    if (f.number == 1 && f.type == proto::WireType::kLengthDelimited) piece = std::string(f.bytes);
    if (f.number == 2 && f.type == proto::WireType::kFixed32) score = f.as_float();
    if (f.number == 3 && f.type == proto::WireType::kVarint) type = f.as_int32();
  }
  LD_CHECK(!piece.empty(), source, ": malformed SentencePiece model (piece ", m.pieces.size(), " is empty)");
  LD_CHECK(type >= 1 && type <= 6, source, ": malformed SentencePiece model (piece ", m.pieces.size(),
           " has unknown type ", type, ")");
  m.pieces.push_back(std::move(piece));
  m.scores.push_back(score);
  m.types.push_back(static_cast<PieceType>(type));
}

void parse_trainer_spec(std::string_view bytes, const std::string& source, SpModel& m) {
  proto::Reader reader(bytes, source);
  proto::Field f;
  while (reader.next(f)) {
    const bool varint = f.type == proto::WireType::kVarint;
    if (f.number == 3 && varint) m.model_type = f.as_int32();
    if (f.number == 24 && varint) m.treat_whitespace_as_suffix = f.as_bool();
    if (f.number == 35 && varint) m.byte_fallback = f.as_bool();
    if (f.number == 40 && varint) m.unk_id = f.as_int32();
    if (f.number == 41 && varint) m.bos_id = f.as_int32();
    if (f.number == 42 && varint) m.eos_id = f.as_int32();
    if (f.number == 43 && varint) m.pad_id = f.as_int32();
    if (f.number == 44 && f.type == proto::WireType::kLengthDelimited) m.unk_surface = std::string(f.bytes);
  }
}

void parse_normalizer_spec(std::string_view bytes, const std::string& source, SpModel& m) {
  proto::Reader reader(bytes, source);
  proto::Field f;
  while (reader.next(f)) {
    const bool varint = f.type == proto::WireType::kVarint;
    if (f.number == 1 && f.type == proto::WireType::kLengthDelimited) m.normalizer_name = std::string(f.bytes);
    if (f.number == 2 && f.type == proto::WireType::kLengthDelimited) m.charsmap = std::string(f.bytes);
    if (f.number == 3 && varint) m.add_dummy_prefix = f.as_bool();
    if (f.number == 4 && varint) m.remove_extra_whitespaces = f.as_bool();
    if (f.number == 5 && varint) m.escape_whitespaces = f.as_bool();
  }
}

SpModel parse_model(std::string_view bytes, const std::string& source) {
  SpModel m;
  proto::Reader reader(bytes, source);
  proto::Field f;
  while (reader.next(f)) {
    if (f.type != proto::WireType::kLengthDelimited) continue;
    if (f.number == 1) parse_piece(f.bytes, source, m);
    if (f.number == 2) {
      parse_trainer_spec(f.bytes, source, m);
      m.has_trainer_spec = true;
    }
    if (f.number == 3) {
      parse_normalizer_spec(f.bytes, source, m);
      m.has_normalizer_spec = true;
    }
    if (f.number == 5) {  // denormalizer_spec: only its charsmap would change decoding
      SpModel denormalizer;
      parse_normalizer_spec(f.bytes, source, denormalizer);
      m.has_denormalizer = !denormalizer.charsmap.empty();
    }
  }
  // A file cut at a field boundary still parses; the specs come after the pieces, so their absence
  // is how a truncated file shows.
  LD_CHECK(!m.pieces.empty() && m.has_trainer_spec && m.has_normalizer_spec, source,
           ": truncated or not a SentencePiece model (missing ",
           m.pieces.empty() ? "pieces" : (m.has_trainer_spec ? "normalizer_spec" : "trainer_spec"), ")");
  return m;
}

void check_supported(const SpModel& m, const std::string& source) {
  LD_CHECK(m.model_type == static_cast<int>(ModelType::kBpe), source, ": SentencePiece model type '",
           model_type_name(m.model_type), "' is not supported (only 'bpe')");
  LD_CHECK(!m.has_denormalizer, source, ": SentencePiece denormalizer rules are not supported");
  LD_CHECK(!m.treat_whitespace_as_suffix, source, ": SentencePiece treat_whitespace_as_suffix is not supported");
  const auto n = static_cast<int32_t>(m.pieces.size());
  LD_CHECK(m.unk_id >= 0 && m.unk_id < n && m.types[static_cast<size_t>(m.unk_id)] == PieceType::kUnknown, source,
           ": malformed SentencePiece model (unk_id ", m.unk_id, " is not an UNKNOWN piece)");
}

// Open-addressing map from piece text to id; the keys are the model's own strings.
class PieceIndex {
 public:
  void build(const std::vector<std::string>& pieces, const std::string& source) {
    pieces_ = &pieces;
    size_t cap = 16;
    while (cap < pieces.size() * 2) cap *= 2;
    slots_.assign(cap, -1);
    mask_ = cap - 1;
    for (size_t id = 0; id < pieces.size(); ++id) {
      size_t i = hash(pieces[id]) & mask_;
      while (slots_[i] >= 0) {
        LD_CHECK(pieces[static_cast<size_t>(slots_[i])] != pieces[id], source,
                 ": malformed SentencePiece model (piece '", pieces[id], "' is defined twice)");
        i = (i + 1) & mask_;
      }
      slots_[i] = static_cast<int32_t>(id);
    }
  }
  int32_t find(std::string_view key) const {
    for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
      const int32_t id = slots_[i];
      if (id < 0 || (*pieces_)[static_cast<size_t>(id)] == key) return id;
    }
  }

 private:
  static size_t hash(std::string_view s) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
    return static_cast<size_t>(h ^ (h >> 29));
  }
  const std::vector<std::string>* pieces_ = nullptr;
  std::vector<int32_t> slots_;
  size_t mask_ = 0;
};

// A normalizer's precompiled_charsmap (sentencepiece normalizer.cc): a uint32 size, a darts-clone
// double-array trie of that many bytes, then NUL-terminated replacement strings that the trie's
// values point into. This is how nmt_nfkc (and custom rules) are stored, so no NFKC table is needed.
class CharsMap {
 public:
  CharsMap() = default;
  CharsMap(std::string_view blob, const std::string& source) {
    LD_CHECK(blob.size() >= 4, source, ": malformed SentencePiece model (precompiled_charsmap too short)");
    uint32_t trie_size = 0;
    for (size_t i = 0; i < 4; ++i) trie_size |= static_cast<uint32_t>(static_cast<uint8_t>(blob[i])) << (8 * i);
    LD_CHECK(trie_size % 4 == 0 && trie_size > 0 && trie_size <= blob.size() - 4, source,
             ": malformed SentencePiece model (precompiled_charsmap trie of ", trie_size, " bytes)");
    units_.resize(trie_size / 4);
    std::memcpy(units_.data(), blob.data() + 4, trie_size);  // little-endian hosts only, as sentencepiece
    replacements_ = std::string(blob.substr(4 + trie_size));
    replacements_.push_back('\0');  // a corrupt value then reads an empty string, never past the end
  }
  bool empty() const { return units_.empty(); }

  // The longest prefix of `text` that the map has a replacement for: its length (0 if none) and
  // the replacement.
  std::pair<size_t, std::string_view> longest_match(std::string_view text) const {
    size_t best_length = 0;
    uint32_t best_value = 0;
    uint32_t node = offset(units_[0]);
    for (size_t i = 0; i < text.size(); ++i) {
      const auto c = static_cast<uint8_t>(text[i]);
      node ^= c;
      if (node >= units_.size()) break;
      const uint32_t unit = units_[node];
      if ((unit & ((1u << 31) | 0xFFu)) != c) break;  // label mismatch: no longer a prefix of a key
      node ^= offset(unit);
      if (node >= units_.size()) break;
      if ((unit >> 8) & 1u) {  // has a leaf: a key ends here
        best_length = i + 1;
        best_value = units_[node] & ((1u << 31) - 1);
      }
    }
    if (best_length == 0) return {0, {}};
    const size_t begin = std::min<size_t>(best_value, replacements_.size() - 1);
    return {best_length, std::string_view(replacements_.c_str() + begin)};
  }

 private:
  static uint32_t offset(uint32_t unit) { return (unit >> 10) << ((unit & (1u << 9)) >> 6); }
  std::vector<uint32_t> units_;
  std::string replacements_;
};

// Length of the UTF-8 character at s[0], or 0 if it is not a valid one (sentencepiece replaces
// such bytes with U+FFFD; we keep them, one byte at a time, so that they round-trip).
size_t utf8_char_length(std::string_view s) {
  const auto b0 = static_cast<uint8_t>(s[0]);
  if (b0 < 0x80) return 1;
  size_t len = 0;
  uint32_t cp = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) len = 2, cp = b0 & 0x1Fu;
  else if (b0 >= 0xE0 && b0 <= 0xEF) len = 3, cp = b0 & 0x0Fu;
  else if (b0 >= 0xF0 && b0 <= 0xF4) len = 4, cp = b0 & 0x07u;
  else return 0;
  if (s.size() < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    const auto b = static_cast<uint8_t>(s[i]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3Fu);
  }
  const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
  const bool invalid = cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF);
  return overlong || invalid ? 0 : len;
}

// A symbol of the BPE merge loop: a span of the normalised text in a doubly linked list.
struct Symbol {
  uint32_t begin;
  uint32_t size;  // 0 once merged into its left neighbour
  int32_t prev;
  int32_t next;
  bool frozen;  // user-defined pieces are never merged further
};

// A candidate merge of symbols[left] and symbols[right] (which must still span `size` bytes).
struct Candidate {
  float score;
  int32_t left;
  int32_t right;
  uint32_t size;
};

// Max-heap order of sentencepiece's SymbolPairComparator: higher score first, then leftmost.
struct LowerPriority {
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Segments (see SentencePieceTokenizer::segmentable_) already encoded on this thread, by the
// tokenizer whose serial is `owner`.
struct SegmentCache {
  static constexpr size_t kMaxEntries = size_t{1} << 16;
  static constexpr size_t kMaxSegmentBytes = 64;
  uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> ids;
};

// Scratch buffers reused across calls on one thread, so that encoding allocates nothing per symbol.
struct EncodeScratch {
  std::string normalized;
  std::vector<Symbol> symbols;
  std::vector<Candidate> heap;
  std::vector<int32_t> segment_ids;
  std::unordered_map<std::string_view, uint32_t> unused_split;  // merged UNUSED piece -> left size
  SegmentCache cache;
};

std::atomic<uint64_t> next_tokenizer_serial{1};

class SentencePieceTokenizer final : public Tokenizer {
 public:
  SentencePieceTokenizer(SpModel model, const std::string& source) : m_(std::move(model)) {
    index_.build(m_.pieces, source);
    if (!m_.charsmap.empty()) charsmap_ = CharsMap(m_.charsmap, source);
    byte_ids_.fill(m_.unk_id);
    byte_values_.assign(m_.pieces.size(), -1);
    for (size_t id = 0; id < m_.pieces.size(); ++id) {
      const PieceType t = m_.types[id];
      if (t == PieceType::kUserDefined) user_defined_lengths_.push_back(m_.pieces[id].size());
      if (t == PieceType::kUnused) has_unused_ = true;
      if (t == PieceType::kByte) {
        const int value = parse_byte_piece(m_.pieces[id]);
        LD_CHECK(value >= 0, source, ": malformed SentencePiece model (byte piece '", m_.pieces[id],
                 "' is not of the form <0xXX>)");
        byte_values_[id] = static_cast<int16_t>(value);
        byte_ids_[static_cast<size_t>(value)] = static_cast<int32_t>(id);
      }
    }
    std::sort(user_defined_lengths_.begin(), user_defined_lengths_.end(), std::greater<>());
    user_defined_lengths_.erase(std::unique(user_defined_lengths_.begin(), user_defined_lengths_.end()),
                                user_defined_lengths_.end());
    space_ = m_.escape_whitespaces ? kSpaceSymbol : std::string_view(" ");
    segmentable_ = true;
    for (size_t id = 0; id < m_.pieces.size(); ++id) {
      if (mergeable(static_cast<int32_t>(id)) && has_space_after_non_space(m_.pieces[id])) segmentable_ = false;
    }
  }

  std::vector<int32_t> encode(std::string_view text, bool add_special) const override {
    thread_local EncodeScratch scratch;
    std::vector<int32_t> ids;
    if (add_special && m_.bos_id >= 0 && m_.bos_id < vocab_size()) ids.push_back(m_.bos_id);
    normalize(text, scratch.normalized);
    const std::string_view normalized = scratch.normalized;
    if (normalized.empty()) return ids;
    if (!segmentable_) {
      bool prev_unknown = false;
      encode_bpe(normalized, scratch, prev_unknown, ids);
      return ids;
    }
    if (scratch.cache.owner != serial_) {
      scratch.cache.ids.clear();
      scratch.cache.owner = serial_;
    }
    for (size_t begin = 0; begin < normalized.size();) {
      const size_t end = segment_end(normalized, begin);
      append_segment(normalized.substr(begin, end - begin), scratch, ids);
      begin = end;
    }
    return ids;
  }

  std::string decode(std::span<const int32_t> ids, bool skip_special) const override {
    std::string out;
    std::string pending_bytes;
    bool strip_leading_space = m_.add_dummy_prefix || m_.remove_extra_whitespaces;
    for (const int32_t id : ids) {
      check_id(id);
      const auto u = static_cast<size_t>(id);
      if (m_.types[u] == PieceType::kByte) {
        pending_bytes.push_back(static_cast<char>(byte_values_[u]));
        strip_leading_space = false;
        continue;
      }
      out += pending_bytes;  // bytes are bytes, even where they are not valid UTF-8
      pending_bytes.clear();
      append_piece_surface(u, skip_special, strip_leading_space, out);
    }
    out += pending_bytes;
    return out;
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(m_.pieces.size()); }

  std::optional<int32_t> token_to_id(std::string_view token) const override {
    const int32_t id = index_.find(token);
    if (id < 0) return std::nullopt;
    return id;
  }

  std::string id_to_token(int32_t id) const override {
    check_id(id);
    return m_.pieces[static_cast<size_t>(id)];
  }

 private:
  static int parse_byte_piece(std::string_view p) {
    if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
    int value = 0;
    for (const char c : p.substr(3, 2)) {
      const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (digit < 0) return -1;
      value = value * 16 + digit;
    }
    return value;
  }

  void check_id(int32_t id) const {
    LD_CHECK(id >= 0 && id < vocab_size(), "SentencePiece: token id ", id, " is out of range (vocabulary size ",
             vocab_size(), ")");
  }

  // True if the piece has a space symbol right after a character that is not one ("a▁"): then a
  // merge could join the text before a space to the space, and encoding cannot be split there.
  bool has_space_after_non_space(std::string_view piece) const {
    for (size_t k = piece.find(space_, 1); k != std::string_view::npos; k = piece.find(space_, k + 1)) {
      if (k < space_.size() || piece.substr(k - space_.size(), space_.size()) != space_) return true;
    }
    return false;
  }

  // Segments end where a run of spaces starts: with segmentable_, no merge crosses that point, so
  // each segment can be encoded (and cached) on its own with the same result.
  size_t segment_end(std::string_view text, size_t begin) const {
    size_t k = begin;
    while (text.substr(k, space_.size()) == space_) k += space_.size();
    const size_t next = text.find(space_, k);
    return next == std::string_view::npos ? text.size() : next;
  }

  void append_segment(std::string_view segment, EncodeScratch& s, std::vector<int32_t>& ids) const {
    const std::vector<int32_t>* seg_ids = nullptr;
    const auto hit = s.cache.ids.find(segment);
    if (hit != s.cache.ids.end()) {
      seg_ids = &hit->second;
    } else {
      s.segment_ids.clear();
      bool prev_unknown = false;
      encode_bpe(segment, s, prev_unknown, s.segment_ids);
      seg_ids = &s.segment_ids;
      if (segment.size() <= SegmentCache::kMaxSegmentBytes) {
        if (s.cache.ids.size() >= SegmentCache::kMaxEntries) s.cache.ids.clear();
        s.cache.ids.emplace(std::string(segment), s.segment_ids);
      }
    }
    auto first = seg_ids->begin();
    // A run of unknowns is one <unk>, also across segments.
    if (!m_.byte_fallback && !ids.empty() && ids.back() == m_.unk_id && first != seg_ids->end() &&
        *first == m_.unk_id)
      ++first;
    ids.insert(ids.end(), first, seg_ids->end());
  }

  void encode_bpe(std::string_view text, EncodeScratch& s, bool& prev_unknown, std::vector<int32_t>& ids) const {
    split_into_symbols(text, s);
    merge(text, s);
    for (int32_t i = 0; i >= 0; i = s.symbols[static_cast<size_t>(i)].next) {
      const Symbol& sym = s.symbols[static_cast<size_t>(i)];
      emit_piece(s, text.substr(sym.begin, sym.size), prev_unknown, ids);
    }
  }

  // The next piece of normalised text and how many input bytes it consumes (Normalizer::
  // NormalizePrefix): a user-defined piece as it is, else the charsmap's longest match, else one
  // character (an invalid byte stays itself, where sentencepiece would give U+FFFD).
  std::pair<std::string_view, size_t> normalize_prefix(std::string_view in) const {
    if (const size_t len = user_defined_match(in)) return {in.substr(0, len), len};
    const auto [len, replacement] = charsmap_.longest_match(in);
    if (len > 0) return {replacement, len};
    const size_t char_len = std::max<size_t>(1, utf8_char_length(in));
    return {in.substr(0, char_len), char_len};
  }

  // Normalizer::Normalize in general: replacement strings may hold spaces, or be empty.
  void normalize_with_charsmap(std::string_view in, std::string& out) const {
    out.clear();
    const bool squeeze = m_.remove_extra_whitespaces;
    while (squeeze && !in.empty()) {
      const auto [piece, consumed] = normalize_prefix(in);
      if (piece != " ") break;
      in.remove_prefix(consumed);
    }
    if (in.empty()) return;
    if (m_.add_dummy_prefix) out += space_;
    bool prev_space = squeeze;
    while (!in.empty()) {
      auto [piece, consumed] = normalize_prefix(in);
      if (prev_space && squeeze) {
        while (!piece.empty() && piece.front() == ' ') piece.remove_prefix(1);
      }
      if (!piece.empty()) {
        for (const char c : piece) {
          if (c == ' ' && m_.escape_whitespaces) out += kSpaceSymbol;
          else out += c;
        }
        prev_space = piece.back() == ' ';
      }
      in.remove_prefix(consumed);
      if (!squeeze) prev_space = false;
    }
    while (squeeze && std::string_view(out).ends_with(space_)) out.resize(out.size() - space_.size());
  }

  // Normalizer::Normalize with the identity rule: optional removal of extra spaces, the dummy
  // prefix, and ' ' -> "▁".
  void normalize(std::string_view in, std::string& out) const {
    if (!charsmap_.empty()) return normalize_with_charsmap(in, out);
    out.clear();
    const bool squeeze = m_.remove_extra_whitespaces;
    if (squeeze) {
      while (!in.empty() && in.front() == ' ') in.remove_prefix(1);
    }
    if (in.empty()) return;
    out.reserve(in.size() + in.size() / 2 + 3);
    const std::string_view space = m_.escape_whitespaces ? kSpaceSymbol : std::string_view(" ");
    if (m_.add_dummy_prefix) out += space;
    bool prev_space = squeeze;
    for (const char c : in) {
      if (c == ' ') {
        if (!(prev_space && squeeze)) out += space;
        prev_space = true;
      } else {
        out += c;
        prev_space = false;
      }
    }
    if (squeeze) {
      while (out.size() >= space.size() && std::string_view(out).substr(out.size() - space.size()) == space)
        out.resize(out.size() - space.size());
    }
  }

  // One symbol per character; the longest user-defined piece at a position is one frozen symbol.
  void split_into_symbols(std::string_view text, EncodeScratch& s) const {
    s.symbols.clear();
    size_t pos = 0;
    while (pos < text.size()) {
      const std::string_view rest = text.substr(pos);
      size_t len = user_defined_match(rest);
      const bool frozen = len > 0;
      if (!frozen) len = std::max<size_t>(1, utf8_char_length(rest));
      const auto index = static_cast<int32_t>(s.symbols.size());
      const bool last = pos + len == text.size();
      s.symbols.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(len), index - 1, last ? -1 : index + 1,
                           frozen});
      pos += len;
    }
  }

  size_t user_defined_match(std::string_view rest) const {
    for (const size_t len : user_defined_lengths_) {
      if (len > rest.size()) continue;
      const int32_t id = index_.find(rest.substr(0, len));
      if (id >= 0 && m_.types[static_cast<size_t>(id)] == PieceType::kUserDefined) return len;
    }
    return 0;
  }

  // Pieces that BPE may merge into (ModelInterface's pieces_: NORMAL, USER_DEFINED, UNUSED).
  bool mergeable(int32_t id) const {
    const PieceType t = m_.types[static_cast<size_t>(id)];
    return t == PieceType::kNormal || t == PieceType::kUserDefined || t == PieceType::kUnused;
  }

  void maybe_add_candidate(std::string_view text, EncodeScratch& s, int32_t left, int32_t right) const {
    if (left < 0 || right < 0) return;
    const Symbol& l = s.symbols[static_cast<size_t>(left)];
    const Symbol& r = s.symbols[static_cast<size_t>(right)];
    if (l.frozen || r.frozen) return;
    const std::string_view merged = text.substr(l.begin, l.size + r.size);
    const int32_t id = index_.find(merged);
    if (id < 0 || !mergeable(id)) return;
    s.heap.push_back({m_.scores[static_cast<size_t>(id)], left, right, l.size + r.size});
    std::push_heap(s.heap.begin(), s.heap.end(), LowerPriority{});
    if (has_unused_ && m_.types[static_cast<size_t>(id)] == PieceType::kUnused) s.unused_split[merged] = l.size;
  }

  // bpe_model.cc's merge loop: repeatedly merge the best pair still valid.
  void merge(std::string_view text, EncodeScratch& s) const {
    s.heap.clear();
    s.unused_split.clear();
    for (size_t i = 1; i < s.symbols.size(); ++i)
      maybe_add_candidate(text, s, static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
    while (!s.heap.empty()) {
      std::pop_heap(s.heap.begin(), s.heap.end(), LowerPriority{});
      const Candidate top = s.heap.back();
      s.heap.pop_back();
      Symbol& l = s.symbols[static_cast<size_t>(top.left)];
      Symbol& r = s.symbols[static_cast<size_t>(top.right)];
      if (l.size == 0 || r.size == 0 || l.size + r.size != top.size) continue;  // stale
      l.size += r.size;
      l.next = r.next;
      if (r.next >= 0) s.symbols[static_cast<size_t>(r.next)].prev = top.left;
      r.size = 0;
      maybe_add_candidate(text, s, l.prev, top.left);
      maybe_add_candidate(text, s, top.left, l.next);
    }
  }

  // An UNUSED piece reached by merging is split back into the two pieces it was made of. Unknown
  // pieces become their bytes with byte fallback; without it, a run of them is one <unk>.
  void emit_piece(const EncodeScratch& s, std::string_view piece, bool& prev_unknown, std::vector<int32_t>& ids) const {
    const int32_t found = index_.find(piece);
    if (found >= 0 && m_.types[static_cast<size_t>(found)] == PieceType::kUnused) {
      const auto split = s.unused_split.find(piece);
      if (split != s.unused_split.end()) {
        emit_piece(s, piece.substr(0, split->second), prev_unknown, ids);
        emit_piece(s, piece.substr(split->second), prev_unknown, ids);
        return;
      }
    }
    const int32_t id = found >= 0 ? found : m_.unk_id;
    const bool unknown = m_.types[static_cast<size_t>(id)] == PieceType::kUnknown;
    if (unknown && m_.byte_fallback) {
      for (const char c : piece) ids.push_back(byte_ids_[static_cast<uint8_t>(c)]);
    } else if (!(unknown && prev_unknown)) {
      ids.push_back(id);
    }
    prev_unknown = unknown && !m_.byte_fallback;
  }

  // spm_decode: control pieces are invisible, <unk> shows as the unk surface, "▁" is a space, and
  // the first visible piece loses the space of the dummy prefix.
  void append_piece_surface(size_t id, bool skip_special, bool& strip_leading_space, std::string& out) const {
    const PieceType t = m_.types[id];
    std::string_view piece = m_.pieces[id];
    if (t == PieceType::kControl) {
      if (!skip_special) out += piece;  // Hugging Face shows "<s>" unless asked to skip it
      return;
    }
    const bool strip = std::exchange(strip_leading_space, false);
    if (t == PieceType::kUnknown) {
      out += m_.unk_surface;
      return;
    }
    if (strip && piece.substr(0, kSpaceSymbol.size()) == kSpaceSymbol)
      piece.remove_prefix(kSpaceSymbol.size());
    for (size_t pos = 0; pos < piece.size();) {
      const size_t hit = piece.find(kSpaceSymbol, pos);
      if (hit == std::string_view::npos) {
        out += piece.substr(pos);
        break;
      }
      out += piece.substr(pos, hit - pos);
      out += ' ';
      pos = hit + kSpaceSymbol.size();
    }
  }

  SpModel m_;
  PieceIndex index_;
  CharsMap charsmap_;
  std::array<int32_t, 256> byte_ids_{};
  std::vector<int16_t> byte_values_;
  std::vector<size_t> user_defined_lengths_;  // distinct lengths, longest first
  bool has_unused_ = false;
  std::string_view space_;    // what a space is after normalisation: "▁" or " "
  bool segmentable_ = false;  // no piece has a space after another character (see segment_end)
  uint64_t serial_ = next_tokenizer_serial++;  // tells this tokenizer's cache entries from others'
};

std::string read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in.good(), path.string(), ": cannot open SentencePiece model (",
           std::filesystem::exists(path) ? "unreadable" : "no such file", ")");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  LD_CHECK(!in.bad(), path.string(), ": error while reading SentencePiece model");
  return buffer.str();
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& path) {
  const std::string source = path.string();
  const std::string bytes = read_whole_file(path);
  SpModel model = parse_model(bytes, source);
  check_supported(model, source);
  return std::make_unique<SentencePieceTokenizer>(std::move(model), source);
}

}  // namespace ld::tok
