// The BPE trainer against hand-worked merges and against a naive trainer that recounts every pair
// before each merge; the trained tokenizer saved, loaded back and compared with a naive encoder.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include "test_util.hpp"
#include "tokenizer/bpe_trainer.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::tok {
namespace {

namespace fs = std::filesystem;
using Merges = std::vector<std::pair<std::string, std::string>>;

const char* const kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kCl100kRegex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("liandan_bpe_trainer_" + std::to_string(getpid()) + "_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

fs::path write_file(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path shakespeare() { return fs::path(LIANDAN_SHARED_DIR) / "corpora" / "tinyshakespeare.txt"; }

BpeTrainOptions options(int vocab_size, int min_frequency = 2, int threads = 1) {
  BpeTrainOptions o;
  o.vocab_size = vocab_size;
  o.min_frequency = min_frequency;
  o.threads = threads;
  return o;
}

// ---- independent reference: whole-text regex split, pairs recounted before every merge ----------

std::vector<std::string> pretokenize_whole(const std::string& text, const char* regex = kGpt2Regex) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
  EXPECT_NE(code, nullptr);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  std::vector<std::string> pieces;
  size_t pos = 0;
  while (pos < text.size()) {
    // UTF is checked once, on the first call: checking the whole subject per match is quadratic.
    uint32_t check = pos == 0 ? 0 : PCRE2_NO_UTF_CHECK;
    int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos, check, md, nullptr);
    if (rc < 0) break;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    EXPECT_EQ(ov[0], pos) << "the GPT-2 pattern covers valid UTF-8 text without gaps";
    pieces.emplace_back(text.substr(ov[0], ov[1] - ov[0]));
    pos = ov[1];
  }
  pcre2_match_data_free(md);
  pcre2_code_free(code);
  return pieces;
}

// Left-to-right, non-overlapping replacement of (a, b) by a+b.
void merge_symbols(std::vector<std::string>& symbols, const std::string& a, const std::string& b) {
  std::vector<std::string> out;
  for (size_t i = 0; i < symbols.size();) {
    if (i + 1 < symbols.size() && symbols[i] == a && symbols[i + 1] == b) {
      out.push_back(a + b);
      i += 2;
    } else {
      out.push_back(symbols[i++]);
    }
  }
  symbols = std::move(out);
}

// Merges as byte strings. Ties: the smallest (left, right) by bytes, as the trainer documents.
// Symbols are ids of their byte strings (one id per distinct string) so that recounting stays fast.
Merges naive_train(const std::string& text, size_t merges_wanted, uint64_t min_frequency) {
  std::map<std::string, uint64_t> counts;
  for (auto& p : pretokenize_whole(text)) ++counts[p];
  std::vector<std::string> strings;
  std::unordered_map<std::string, uint32_t> id_of;
  auto id = [&](const std::string& s) {
    auto [it, added] = id_of.emplace(s, static_cast<uint32_t>(strings.size()));
    if (added) strings.push_back(s);
    return it->second;
  };
  std::vector<std::vector<uint32_t>> words;
  std::vector<uint64_t> freq;
  for (const auto& [w, c] : counts) {
    std::vector<uint32_t> symbols;
    for (char ch : w) symbols.push_back(id(std::string(1, ch)));
    words.push_back(std::move(symbols));
    freq.push_back(c);
  }
  Merges merges;
  while (merges.size() < merges_wanted) {
    std::unordered_map<uint64_t, uint64_t> pairs;
    for (size_t w = 0; w < words.size(); ++w)
      for (size_t i = 0; i + 1 < words[w].size(); ++i) pairs[uint64_t{words[w][i]} << 32 | words[w][i + 1]] += freq[w];
    uint64_t best = 0, best_count = 0;
    auto key_strings = [&](uint64_t k) { return std::make_pair(strings[k >> 32], strings[k & 0xffffffffu]); };
    for (const auto& [k, c] : pairs)
      if (c > best_count || (c == best_count && key_strings(k) < key_strings(best))) best = k, best_count = c;
    if (best_count == 0 || best_count < min_frequency) break;
    auto [a, b] = key_strings(best);
    merges.emplace_back(a, b);
    uint32_t left = static_cast<uint32_t>(best >> 32), right = static_cast<uint32_t>(best & 0xffffffffu);
    uint32_t merged = id(a + b);
    for (auto& w : words) {
      std::vector<uint32_t> out;
      for (size_t i = 0; i < w.size();) {
        if (i + 1 < w.size() && w[i] == left && w[i + 1] == right) {
          out.push_back(merged);
          i += 2;
        } else {
          out.push_back(w[i++]);
        }
      }
      w = std::move(out);
    }
  }
  return merges;
}

// GPT-2's byte-to-unicode form, written out independently of the trainer.
std::string unicode_form(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    uint32_t cp = c;
    bool printable = (c >= '!' && c <= '~') || (c >= 0xa1 && c <= 0xac) || (c >= 0xae);
    if (!printable) {
      cp = 256;
      for (uint32_t b = 0; b < c; ++b)
        if (!((b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae))) ++cp;
    }
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  return out;
}

Merges to_unicode_form(const Merges& byte_merges) {
  Merges out;
  for (const auto& [a, b] : byte_merges) out.emplace_back(unicode_form(a), unicode_form(b));
  return out;
}

// Naive BPE encoding with the trained merges: in each pre-token, merge the lowest-ranked adjacent
// pair everywhere, until no ranked pair is left; then look the symbols up in the vocabulary.
std::vector<int32_t> naive_encode(const std::string& text, const ByteLevelBpeData& data) {
  std::map<std::pair<std::string, std::string>, size_t> rank;
  for (size_t r = 0; r < data.merges.size(); ++r) rank.emplace(data.merges[r], r);
  std::unordered_map<std::string, int32_t> ids;
  for (size_t id = 0; id < data.vocab.size(); ++id) ids.emplace(data.vocab[id], static_cast<int32_t>(id));
  std::vector<int32_t> out;
  for (const auto& piece : pretokenize_whole(text)) {
    std::vector<std::string> symbols;
    for (char ch : piece) symbols.push_back(unicode_form(std::string(1, ch)));
    while (true) {
      size_t best_rank = SIZE_MAX, at = 0;
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        auto it = rank.find({symbols[i], symbols[i + 1]});
        if (it != rank.end() && it->second < best_rank) best_rank = it->second, at = i;
      }
      if (best_rank == SIZE_MAX) break;
      merge_symbols(symbols, std::string(symbols[at]), std::string(symbols[at + 1]));
    }
    for (const auto& s : symbols) out.push_back(ids.at(s));
  }
  return out;
}

// ---- tests ----------------------------------------------------------------------------------------

// Text made of fragments chosen to sit on both sides of chunk cuts: whitespace runs before and
// after newlines, CRLF, CJK, punctuation, contractions, digits.
std::string tricky_text(size_t bytes, uint32_t seed) {
  const char* fragments[] = {"word", "Word", " ", "  ", "\n", "\n\n", "\r\n", " \n", "\t", "。", "你好", "世界",
                             "'s", "'LL", "1234", ".", "!!", "\u00a0", "\u3000", "é", "-", "x", "\n ", " \r\n"};
  std::string text;
  uint32_t state = seed;
  while (text.size() < bytes) {
    state = state * 1664525u + 1013904223u;
    text += fragments[(state >> 8) % std::size(fragments)];
  }
  return text;
}

TEST(BpeTrainer, ChunkedParallelCountingEqualsWholeTextSplit) {
  fs::path dir = temp_dir("chunks");
  std::string a = tricky_text(200000, 1), b = tricky_text(50000, 2);
  std::vector<fs::path> files = {write_file(dir / "a.txt", a), write_file(dir / "b.txt", b)};
  for (const char* pattern : {"gpt2", "cl100k"}) {
    std::map<std::string, uint64_t> expected;
    for (const auto& text : {a, b})
      for (auto& piece : pretokenize_whole(text, std::string(pattern) == "gpt2" ? kGpt2Regex : kCl100kRegex))
        ++expected[piece];
    auto o = options(1000, 2, 2);
    o.pattern = pattern;
    o.chunk_bytes = 64;  // thousands of cuts
    auto counted = count_pretokens(files, o);
    std::map<std::string, uint64_t> got(counted.begin(), counted.end());
    EXPECT_EQ(got.size(), counted.size()) << "pre-tokens are distinct";
    EXPECT_EQ(got, expected) << pattern;
  }
  fs::remove_all(dir);
}

TEST(BpeTrainer, ClassicExampleMergesInHandCheckedOrder) {
  // aaabdaaabac: aa occurs 4 times, then (a,b) and (aa,a) tie at 2 and "a" < "aa" picks (a,b), then
  // aa+ab occurs twice; the remaining pairs occur once each, ties broken by the smallest pair.
  fs::path dir = temp_dir("classic");
  auto file = write_file(dir / "c.txt", "aaabdaaabac");
  Merges all = {{"a", "a"}, {"a", "b"}, {"aa", "ab"}, {"a", "c"}, {"aaab", "ac"}, {"aaab", "d"}, {"aaabd", "aaabac"}};
  ByteLevelBpeData once = train_byte_level_bpe({file}, options(1000, 1));
  EXPECT_EQ(once.merges, all);
  ASSERT_EQ(once.vocab.size(), 256u + all.size());
  EXPECT_EQ(once.vocab[256], "aa");
  EXPECT_EQ(once.vocab[258], "aaab");
  EXPECT_EQ(once.vocab.back(), "aaabdaaabac");

  ByteLevelBpeData frequent = train_byte_level_bpe({file}, options(1000, 2));
  EXPECT_EQ(frequent.merges, Merges(all.begin(), all.begin() + 3)) << "min_frequency 2 stops after aa+ab (count 2)";

  ByteLevelBpeData small = train_byte_level_bpe({file}, options(258, 1));
  EXPECT_EQ(small.merges, Merges(all.begin(), all.begin() + 2)) << "vocab size 258 leaves room for 2 merges";
  fs::remove_all(dir);
}

TEST(BpeTrainer, VocabularyLayoutBytesThenSpecialsThenMerges) {
  fs::path dir = temp_dir("layout");
  auto file = write_file(dir / "t.txt", "hello hello hello<|endoftext|>hello world\n");
  auto o = options(262, 1);
  o.special_tokens = {"<|endoftext|>", "<|pad|>"};
  ByteLevelBpeData data = train_byte_level_bpe({file}, o);
  ASSERT_EQ(data.vocab.size(), 262u);
  EXPECT_EQ(data.vocab['a'], "a");
  EXPECT_EQ(data.vocab[' '], "\xc4\xa0") << "space is U+0120 'Ġ' in GPT-2's byte-to-unicode form";
  EXPECT_EQ(data.vocab['\n'], "\xc4\x8a");
  EXPECT_EQ(data.vocab[256], "<|endoftext|>");
  EXPECT_EQ(data.vocab[257], "<|pad|>");
  ASSERT_EQ(data.special_tokens.size(), 2u);
  EXPECT_EQ(data.special_tokens[1], (std::pair<std::string, int32_t>{"<|pad|>", 257}));
  EXPECT_EQ(data.merges.front(), (std::pair<std::string, std::string>{"e", "l"}))
      << "the special token is cut out: no pair of '<|endoftext|>' is counted";
  for (size_t id = 258; id < data.vocab.size(); ++id) EXPECT_EQ(data.vocab[id].find('|'), std::string::npos) << id;
  fs::remove_all(dir);
}

TEST(BpeTrainer, MatchesNaiveTrainerOnShakespeare) {
  // 1.1 MB: read in several chunks, so this also checks that chunk cuts do not change pre-tokens.
  std::string text = read_file(shakespeare());
  ASSERT_GT(text.size(), 1000000u);
  ByteLevelBpeData data = train_byte_level_bpe({shakespeare()}, options(256 + 300, 2, 2));
  ASSERT_EQ(data.merges.size(), 300u);
  Merges naive = to_unicode_form(naive_train(text, data.merges.size(), 2));
  ASSERT_EQ(naive.size(), data.merges.size());
  for (size_t r = 0; r < naive.size(); ++r) ASSERT_EQ(data.merges[r], naive[r]) << "merge rank " << r;
}

TEST(BpeTrainer, MatchesNaiveTrainerOnChinese) {
  // Chinese lines: the chunk cuts fall after newlines between CJK characters, not ASCII ones.
  fs::path source = "/usr/share/games/fortunes/chinese";
  ASSERT_TRUE(fs::exists(source)) << source << " is missing: apt-get install fortunes-zh";
  std::string text = read_file(source);
  text.resize(text.find('\n', 600000) + 1);
  fs::path dir = temp_dir("chinese");
  auto file = write_file(dir / "zh.txt", text);
  ByteLevelBpeData data = train_byte_level_bpe({file}, options(256 + 40, 2, 2));
  ASSERT_EQ(data.merges.size(), 40u);
  EXPECT_EQ(data.merges, to_unicode_form(naive_train(text, data.merges.size(), 2)));
  fs::remove_all(dir);
}

TEST(BpeTrainer, SameResultForOneAndTwoThreads) {
  ByteLevelBpeData one = train_byte_level_bpe({shakespeare()}, options(3000, 2, 1));
  ByteLevelBpeData two = train_byte_level_bpe({shakespeare()}, options(3000, 2, 2));
  EXPECT_EQ(one.vocab.size(), 3000u);
  EXPECT_EQ(one.vocab, two.vocab);
  EXPECT_EQ(one.merges, two.merges);
}

TEST(BpeTrainer, MinFrequencyStopsEarly) {
  ByteLevelBpeData all = train_byte_level_bpe({shakespeare()}, options(20000, 2, 2));
  ByteLevelBpeData frequent = train_byte_level_bpe({shakespeare()}, options(20000, 50, 2));
  EXPECT_LT(frequent.merges.size(), all.merges.size());
  EXPECT_LT(frequent.vocab.size(), 20000u);
  ASSERT_FALSE(frequent.merges.empty());
  EXPECT_TRUE(std::equal(frequent.merges.begin(), frequent.merges.end(), all.merges.begin()))
      << "a higher min_frequency cuts the same merge list short";
}

TEST(BpeTrainer, SavedTokenizerEncodesLikeNaiveBpe) {
  fs::path dir = temp_dir("roundtrip");
  std::string text = read_file(shakespeare()).substr(0, 200000) +
                     "\n你好，世界！这是一个测试。 Ünïcödé  café 🙂🚀 emoji\n"
                     "int main() {\n    return x[42] + 3.14159;\n}\n\n\n   tabs\tand    spaces   \n"
                     "numbers 1234567 and 2026-11-29, don't we'll I'M\n";
  auto corpus = write_file(dir / "corpus.txt", text);
  auto o = options(1200, 2, 2);
  o.special_tokens = {"<|endoftext|>"};
  ByteLevelBpeData data = train_byte_level_bpe({corpus}, o);
  ASSERT_EQ(data.vocab.size(), 1200u);
  save_tokenizer_json(data, dir / "tok");
  auto tokenizer = load_tokenizer(dir / "tok");
  EXPECT_EQ(tokenizer->vocab_size(), 1200);

  std::vector<int32_t> ids = tokenizer->encode(text);
  std::vector<int32_t> expected = naive_encode(text, data);
  ASSERT_EQ(ids.size(), expected.size());
  EXPECT_EQ(ids, expected);
  EXPECT_LT(ids.size(), text.size() / 2) << "the merges compress the training text";
  EXPECT_EQ(tokenizer->decode(ids), text);

  std::string bytes = "raw \xff\xfe bytes \xe4\xbd and <|endoftext|> end";
  std::vector<int32_t> byte_ids = tokenizer->encode(bytes);
  EXPECT_EQ(tokenizer->decode(byte_ids), bytes);
  EXPECT_NE(std::find(byte_ids.begin(), byte_ids.end(), 256), byte_ids.end()) << "<|endoftext|> has id 256";
  fs::remove_all(dir);
}

TEST(BpeTrainer, EmptyCorpusIsOneClearError) {
  fs::path dir = temp_dir("empty");
  auto empty = write_file(dir / "empty.txt", "");
  auto only_special = write_file(dir / "special.txt", "<|endoftext|><|endoftext|>");
  auto o = options(1000);
  o.special_tokens = {"<|endoftext|>"};
  std::string msg = test::error_message([&] { train_byte_level_bpe({empty, only_special}, o); });
  test::expect_mentions(msg, {"tokenizer train: the input has no text", "empty.txt", "special.txt"});

  msg = test::error_message([&] { train_byte_level_bpe({dir / "missing.txt"}, o); });
  test::expect_mentions(msg, {"cannot read", "missing.txt"});
  msg = test::error_message([&] { train_byte_level_bpe({empty}, options(100)); });
  test::expect_mentions(msg, {"vocab size 100", "256"});
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ld::tok
