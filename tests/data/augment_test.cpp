// Data augmentation (src/data/augment_*): WordNet read from its database files (checked against the
// `wn` program of the same Debian package), the EDA operations of Wei & Zou's eda.py on seeded
// examples, a TSV synonym list for Chinese, determinism across seeds and thread counts,
// back-translation through two tiny random LLaMA folders (equal to generating with them directly),
// and `liandan data augment` end to end with its errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "data/augment_backtranslate.hpp"
#include "data/augment_eda.hpp"
#include "data/augment_random.hpp"
#include "data/augment_synonyms.hpp"
#include "infer/generate.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "models/tiny_transformer.hpp"
#include "nn/module.hpp"
#include "test_util.hpp"
#include "tokenizer/byte_level_bpe.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::data {
namespace {

namespace fs = std::filesystem;
const fs::path kWordNet = "/usr/share/wordnet";

#define REQUIRE_WORDNET()                                                                       \
  if (!fs::exists(kWordNet / "data.noun")) GTEST_SKIP() << "needs WordNet: apt-get install wordnet-base"

const WordNet& wordnet() {
  static const WordNet wn(kWordNet);
  return wn;
}

bool contains(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

// ---------------------------------------------------------------------------------------------
// WordNet

TEST(WordNet, HappyHasTheSynonymsListedInDataAdj) {
  REQUIRE_WORDNET();
  // data.adj: 01048406 "felicitous happy", 02565584 "glad happy", 01000442 "happy well-chosen".
  const auto syn = wordnet().synonyms("happy");
  EXPECT_TRUE(contains(syn, "felicitous"));
  EXPECT_TRUE(contains(syn, "glad"));
  EXPECT_TRUE(contains(syn, "well-chosen"));
  EXPECT_FALSE(contains(syn, "happy"));
  EXPECT_EQ(wordnet().synsets("happy").size(), 4u);  // index.adj: "happy a 4 ..."
  EXPECT_EQ(wordnet().synonyms("Happy"), syn);       // lookups are lowercased
  EXPECT_TRUE(contains(wordnet().synonyms("ice cream"), "icecream"));  // spaces are '_' in the index
  EXPECT_TRUE(wordnet().synonyms("xyzzyq").empty());
}

TEST(WordNet, ExceptionListsAndDetachmentRulesGiveBaseForms) {
  REQUIRE_WORDNET();
  EXPECT_EQ(wordnet().base_forms("mice", 'n'), std::vector<std::string>{"mouse"});                // noun.exc
  EXPECT_TRUE(contains(wordnet().base_forms("ran", 'v'), "run"));                                 // verb.exc
  EXPECT_EQ(wordnet().base_forms("better", 'a'), (std::vector<std::string>{"better", "good", "well"}));  // adj.exc
  EXPECT_EQ(wordnet().base_forms("churches", 'n'), std::vector<std::string>{"church"});           // -ches -> -ch
  EXPECT_EQ(wordnet().base_forms("dogs", 'n'), std::vector<std::string>{"dog"});                  // -s
  EXPECT_TRUE(contains(wordnet().synonyms("mice"), "computer mouse"));
}

// `wn WORD -synsX` prints each synset of each base form as "Sense N" followed by its words.
std::set<std::string> wn_synset_words(const std::string& word, char pos) {
  const std::string cmd = "wn '" + word + "' -syns" + std::string(1, pos) + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  std::set<std::string> out;
  if (!p) return out;
  char buf[4096];
  bool next_is_synset = false;
  while (fgets(buf, sizeof buf, p)) {
    std::string line(buf);
    while (!line.empty() && (line.back() == '\n' || line.back() == ' ')) line.pop_back();
    if (next_is_synset) {
      // "better(predicate), best(predicate)", "happy (vs. unhappy)": drop the parentheses
      std::string clean;
      int depth = 0;
      for (char c : line) {
        if (c == '(') ++depth;
        if (depth == 0) clean += c;
        if (c == ')') --depth;
      }
      std::stringstream ss(clean);
      std::string item;
      while (std::getline(ss, item, ',')) {
        const size_t b = item.find_first_not_of(' '), e = item.find_last_not_of(' ');
        if (b != std::string::npos) out.insert(item.substr(b, e - b + 1));
      }
    }
    next_is_synset = line.rfind("Sense ", 0) == 0;
  }
  pclose(p);
  return out;
}

TEST(WordNet, SynsetsMatchTheWnProgram) {
  REQUIRE_WORDNET();
  if (!fs::exists("/usr/bin/wn")) GTEST_SKIP() << "needs /usr/bin/wn: apt-get install wordnet";
  const std::vector<std::string> words = {"happy", "mice", "ran", "better", "dogs", "quickly", "geese",
                                          "bigger", "churches", "walked", "car", "beautiful", "computer"};
  for (const std::string& word : words) {
    std::set<std::string> expected;
    for (char pos : {'n', 'v', 'a', 'r'}) {
      const auto w = wn_synset_words(word, pos);
      expected.insert(w.begin(), w.end());
    }
    std::set<std::string> got;
    for (const auto& synset : wordnet().synsets(word))
      for (std::string lemma : synset) {
        std::replace(lemma.begin(), lemma.end(), '_', ' ');
        got.insert(lemma);
      }
    EXPECT_FALSE(got.empty()) << word;
    EXPECT_EQ(got, expected) << word;
  }
}

TEST(WordNet, MissingFolderOrFileIsAClearError) {
  test::expect_mentions(test::error_message([] { WordNet wn("/no/such/wordnet"); }),
                        {"/no/such/wordnet", "not found", "wordnet-base", "--wordnet"});
  test::TempDir dir("liandan_wn");
  write_text(dir / "index.noun", "");
  test::expect_mentions(test::error_message([&] { WordNet wn(dir.path()); }), {"noun.exc", "cannot open"});
  write_text(dir / "index.noun", "  1 license header line\ndog n 1 0 1 0 02084071\ncat n 2\n");
  test::expect_mentions(test::error_message([&] { WordNet wn(dir.path()); }), {"index.noun:3:", "cat n 2"});
}

// ---------------------------------------------------------------------------------------------
// Synonym TSV

TEST(SynonymTable, ReadsTsvAndNamesTheLineOfAMalformedOne) {
  test::TempDir dir("liandan_syn");
  write_text(dir / "zh.tsv", "# 同义词\n高兴\t快乐\t开心\r\n\n高兴\t愉快\n");
  const SynonymTable t = SynonymTable::read_tsv(dir / "zh.tsv");
  EXPECT_EQ(t.synonyms("高兴"), (std::vector<std::string>{"快乐", "开心", "愉快"}));
  EXPECT_TRUE(t.synonyms("快乐").empty());  // one way, as written

  write_text(dir / "bad.tsv", "高兴\t快乐\n只有一个词\n");
  test::expect_mentions(test::error_message([&] { SynonymTable::read_tsv(dir / "bad.tsv"); }),
                        {"bad.tsv:2:", "word<TAB>synonym", "只有一个词"});
  write_text(dir / "empty_field.tsv", "a\tb\nc\t\td\n");
  test::expect_mentions(test::error_message([&] { SynonymTable::read_tsv(dir / "empty_field.tsv"); }),
                        {"empty_field.tsv:2:", "empty field"});
  test::expect_mentions(test::error_message([&] { SynonymTable::read_tsv(dir / "missing.tsv"); }),
                        {"missing.tsv", "cannot open"});
}

// ---------------------------------------------------------------------------------------------
// EDA operations on a controlled synonym table: every word wK has the one synonym sK.

// prefix + number, out of line: GCC 12 reports a false -Wrestrict for "w" + std::to_string(i) inlined.
[[gnu::noinline]] std::string tagged(const char* prefix, size_t i) {
  std::string s(prefix);
  s.append(std::to_string(i));
  return s;
}

std::vector<std::string> numbered_words(size_t n) {
  std::vector<std::string> w;
  for (size_t i = 0; i < n; ++i) w.push_back(tagged("w", i));
  return w;
}

SynonymTable numbered_table(size_t n) {
  SynonymTable t;
  for (size_t i = 0; i < n; ++i) t.add(tagged("w", i), tagged("s", i));
  return t;
}

size_t positions_changed(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  EXPECT_EQ(a.size(), b.size());
  size_t n = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) n += a[i] != b[i];
  return n;
}

TEST(Eda, SynonymReplacementChangesMaxOneAlphaNWords) {
  const auto words = numbered_words(10);
  const SynonymTable table = numbered_table(10);
  for (double alpha : {0.01, 0.1, 0.25, 0.5}) {
    const size_t expected = std::max<size_t>(1, size_t(alpha * 10));  // eda.py: max(1, int(alpha * n))
    EdaOptions o{.alpha_sr = alpha, .alpha_ri = 0, .alpha_rs = 0, .p_rd = 0, .n_aug = 1, .english_cleanup = false};
    std::set<std::string> outputs;
    for (uint64_t seed = 0; seed < 20; ++seed) {
      const auto aug = eda_document(join_words(words), 0, table, o, seed);
      ASSERT_EQ(aug.size(), 1u);
      EXPECT_EQ(aug[0].method, "eda_sr");
      const auto out = split_words(aug[0].text);
      EXPECT_EQ(positions_changed(words, out), expected) << aug[0].text;
      for (size_t i = 0; i < out.size(); ++i)
        EXPECT_TRUE(out[i] == words[i] || out[i] == tagged("s", i)) << aug[0].text;
      outputs.insert(aug[0].text);
    }
    EXPECT_GT(outputs.size(), 5u) << "the replaced words should vary with the seed";
  }
}

TEST(Eda, SynonymReplacementReplacesEveryOccurrenceAndSkipsWordsWithoutSynonyms) {
  SynonymTable t;
  t.add("cat", "feline");
  const std::vector<std::string> words = {"cat", "dog", "cat", "bird"};
  AugmentRandom rng(3, 0);
  EXPECT_EQ(synonym_replacement(words, 1, t, rng), (std::vector<std::string>{"feline", "dog", "feline", "bird"}));
  t.add("dog", "big hound");  // a multi-word synonym becomes two words
  AugmentRandom rng2(3, 0);
  EXPECT_EQ(synonym_replacement(words, 2, t, rng2),
            (std::vector<std::string>{"feline", "big", "hound", "feline", "bird"}));
}

TEST(Eda, StopWordsAreNeverReplaced) {
  SynonymTable t;
  const std::vector<std::string> words = {"the", "cat", "is", "on", "the", "mat", "and", "it", "was", "very", "happy"};
  for (const auto& w : words) t.add(w, w + "_syn");  // every word, stop words too, has a synonym
  for (uint64_t seed = 0; seed < 10; ++seed) {
    AugmentRandom rng(seed, 0);
    const auto out = synonym_replacement(words, 100, t, rng);
    for (size_t i = 0; i < words.size(); ++i) {
      const bool stop = eda_stop_words().count(words[i]) > 0;
      EXPECT_EQ(out[i], stop ? words[i] : words[i] + "_syn") << i;
    }
  }
  // eda.py's list (NLTK's English stop words of 2018 plus "")
  EXPECT_EQ(eda_stop_words().size(), 128u);
  for (const char* w : {"i", "the", "should", "now", "don", ""}) EXPECT_TRUE(eda_stop_words().count(w)) << w;
}

TEST(Eda, RandomInsertionAddsNSynonymsBeforeTheLastWord) {
  const auto words = numbered_words(8);
  const SynonymTable table = numbered_table(8);
  for (uint64_t seed = 0; seed < 10; ++seed) {
    AugmentRandom rng(seed, 0);
    const auto out = random_insertion(words, 3, table, rng);
    ASSERT_EQ(out.size(), 11u);
    EXPECT_EQ(out.back(), "w7");  // eda.py inserts at randint(0, len - 1)
    std::vector<std::string> originals, inserted;
    for (const auto& w : out) (w[0] == 'w' ? originals : inserted).push_back(w);
    EXPECT_EQ(originals, words);  // the original words keep their order
    EXPECT_EQ(inserted.size(), 3u);
  }
  // nothing has a synonym: 10 tries, then the insertion is skipped
  AugmentRandom rng(1, 0);
  EXPECT_EQ(random_insertion(words, 3, SynonymTable{}, rng), words);
}

TEST(Eda, RandomSwapPermutesAndDeletionNeverEmpties) {
  const auto words = numbered_words(6);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    AugmentRandom rng(seed, 0);
    auto out = random_swap(words, 1, rng);
    const size_t changed = positions_changed(words, out);
    EXPECT_TRUE(changed == 2 || changed == 0);  // 0 only when 4 draws all hit the same index
    std::sort(out.begin(), out.end());
    EXPECT_EQ(out, words);
  }
  AugmentRandom rng(1, 0);
  EXPECT_EQ(random_swap({"alone"}, 3, rng), std::vector<std::string>{"alone"});

  std::set<std::string> kept;
  for (uint64_t seed = 0; seed < 30; ++seed) {
    AugmentRandom r(seed, 0);
    const auto all_gone = random_deletion(words, 1.0, r);  // every word drawn for deletion
    ASSERT_EQ(all_gone.size(), 1u);
    EXPECT_TRUE(contains(words, all_gone[0]));
    kept.insert(all_gone[0]);
    EXPECT_FALSE(random_deletion(words, 0.9, r).empty());
    EXPECT_EQ(random_deletion(words, 0.0, r), words);
  }
  EXPECT_GT(kept.size(), 2u);  // the survivor is random
  AugmentRandom r(0, 0);
  EXPECT_EQ(random_deletion({"only"}, 1.0, r), std::vector<std::string>{"only"});
}

TEST(Eda, DocumentGivesNAugShuffledOutputsOfEachOperation) {
  const SynonymTable table = numbered_table(12);
  const std::string doc = join_words(numbered_words(12));
  EdaOptions o{.alpha_sr = 0.1, .alpha_ri = 0.1, .alpha_rs = 0.1, .p_rd = 0.1, .n_aug = 9, .english_cleanup = false};
  const auto aug = eda_document(doc, 7, table, o, 42);
  ASSERT_EQ(aug.size(), 9u);  // int(9/4)+1 = 3 per operation, 12 made, 9 kept
  std::map<std::string, int> per_method;
  for (const auto& a : aug) {
    EXPECT_EQ(a.source_index, 7u);
    ++per_method[a.method];
  }
  for (const auto& [m, n] : per_method) EXPECT_LE(n, 3) << m;
  EXPECT_GE(per_method.size(), 3u);
  o.n_aug = 1;
  o.alpha_ri = o.alpha_rs = o.p_rd = 0;
  EXPECT_EQ(eda_document(doc, 0, table, o, 1).size(), 1u);
  EXPECT_TRUE(eda_document("   ", 0, table, o, 1).empty());
  test::expect_mentions(test::error_message([&] {
                          eda_augment({doc}, table, EdaOptions{.alpha_sr = 1.5}, 0);
                        }),
                        {"alpha_sr", "[0, 1]", "1.5"});
}

TEST(Eda, EnglishCleanupIsEdaPysGetOnlyChars) {
  EXPECT_EQ(eda_clean("Don't STOP-now!! 42 times\tok"), "dont stop now times ok");
  EXPECT_EQ(eda_clean("it\xE2\x80\x99s"), "its");
  SynonymTable t;
  t.add("stop", "Halt_Now");  // cleaned like eda.py's get_synonyms: "halt now"
  EdaOptions o{.alpha_sr = 1.0, .alpha_ri = 0, .alpha_rs = 0, .p_rd = 0, .n_aug = 1, .english_cleanup = true};
  EXPECT_EQ(eda_document("Don't STOP!", 0, t, o, 0)[0].text, "dont halt now");
}

TEST(Eda, ChineseTsvSynonymsReplaceSpaceSegmentedWords) {
  test::TempDir dir("liandan_zh");
  write_text(dir / "zh.tsv", "高兴\t快乐\t开心\n朋友\t伙伴\n");
  const SynonymTable table = SynonymTable::read_tsv(dir / "zh.tsv");
  EdaOptions o{.alpha_sr = 0.5, .alpha_ri = 0, .alpha_rs = 0, .p_rd = 0, .n_aug = 1, .english_cleanup = false};
  std::set<std::string> seen;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    // 5 words -> max(1, int(0.5 * 5)) = 2 replacements; only 高兴 and 朋友 have synonyms
    const auto aug = eda_document("我 很 高兴 见到 朋友", 0, table, o, seed);
    ASSERT_EQ(aug.size(), 1u);
    const auto w = split_words(aug[0].text);
    ASSERT_EQ(w.size(), 5u);
    EXPECT_EQ(w[0] + w[1] + w[3], "我很见到");
    EXPECT_TRUE(w[2] == "快乐" || w[2] == "开心") << aug[0].text;
    EXPECT_EQ(w[4], "伙伴");
    seen.insert(w[2]);
  }
  EXPECT_EQ(seen.size(), 2u);
}

TEST(Eda, SameSeedSameOutputWhateverTheThreadCount) {
  std::vector<std::string> docs;
  for (int i = 0; i < 300; ++i)
    docs.push_back(tagged("the quick brown fox ", size_t(i)) + " jumps over the lazy dog while the happy cat sleeps");
  std::unique_ptr<SynonymSource> owned;
  const SynonymSource* source = nullptr;
  if (fs::exists(kWordNet / "data.noun")) {
    source = &wordnet();
  } else {
    auto t = std::make_unique<SynonymTable>();
    for (const char* w : {"quick", "brown", "fox", "jumps", "lazy", "dog", "happy", "cat"}) t->add(w, "x");
    owned = std::move(t);
    source = owned.get();
  }
  const EdaOptions o;
  size_t last_progress = 0;
  const auto one = eda_augment(docs, *source, o, 11, 1, [&](size_t done) { last_progress = done; });
  EXPECT_EQ(last_progress, docs.size());
  const auto four = eda_augment(docs, *source, o, 11, 4);
  const auto other_seed = eda_augment(docs, *source, o, 12, 4);
  ASSERT_EQ(one.size(), four.size());
  ASSERT_EQ(one.size(), docs.size() * 4);
  size_t differ = 0;
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one[i].text, four[i].text);
    EXPECT_EQ(one[i].method, four[i].method);
    EXPECT_EQ(one[i].source_index, i / 4);
    differ += one[i].text != other_seed[i].text;
  }
  EXPECT_GT(differ, one.size() / 2);
  // A document's output does not depend on the others.
  const auto alone = eda_document(docs[123], 123, *source, o, 11);
  for (size_t k = 0; k < 4; ++k) EXPECT_EQ(alone[k].text, one[123 * 4 + k].text);
}

// Running `liandan data augment ARGS`.
struct CliRun {
  int status;
  std::string err;
};

CliRun liandan(const std::string& args, const test::TempDir& dir) {
  const fs::path err = dir / "stderr.txt";
  const std::string cmd = std::string(LIANDAN_BINARY) + " data augment " + args + " 2>" + err.string();
  const int status = std::system(cmd.c_str());
  return {status, read_text(err)};
}

bool augment_registered(const test::TempDir& dir) { return liandan("--help >/dev/null", dir).status == 0; }

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Back-translation with two tiny random LLaMA folders and a byte tokenizer (id i <-> byte i).

void save_tiny_llama(const fs::path& dir, uint64_t seed) {
  models::StackConfig c;
  c.kind = models::StackKind::llama;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = 2;
  c.n_embd = 32;
  c.vocab_size = 256;
  c.n_positions = 96;
  c.intermediate_size = 48;
  const io::HfModelConfig config = io::make_hf_config(c, false);
  Generator gen(seed);
  auto lm = models::make_causal_lm(config, gen);
  // Large weights so that greedy paths are not one repeated token.
  const models::Params params = models::init_params(c, gen, models::InitOptions{.std = 0.3, .norm_and_bias_jitter = 0.2});
  nn::StateDict state(params.begin(), params.end());
  lm->load_state_dict(state, /*strict=*/true);
  const fs::path tok_dir = dir.parent_path() / (dir.filename().string() + "_tok");
  tok::ByteLevelBpeData data;
  for (int i = 0; i < 256; ++i) data.vocab.push_back(tok::byte_to_unicode()[static_cast<size_t>(i)]);
  tok::save_tokenizer_json(data, tok_dir);
  models::save_pretrained(*lm, config, dir, false, tok_dir);
}

// The reference: infer::generate with the model and its config's EOS, cut at the separator by hand.
std::string generate_directly(const fs::path& dir, const std::string& prompt, int64_t max_new, const std::string& sep) {
  auto model = models::load_causal_lm(dir);
  auto tokenizer = tok::load_tokenizer(dir);
  infer::GenerateOptions g;
  g.max_new_tokens = max_new;
  g.sampling.temperature = 0.0f;
  for (int64_t id : io::read_hf_config(dir).eos_token_ids) g.eos_ids.push_back(int32_t(id));
  const auto ids32 = tokenizer->encode(prompt, true);
  std::string text = tokenizer->decode(infer::generate(*model, std::vector<int64_t>(ids32.begin(), ids32.end()), g));
  text = text.substr(0, text.find(sep));
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.erase(0, 1);
  return text;
}

class BackTranslate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir("liandan_bt");
    save_tiny_llama(dir_->path() / "a", 5);
    save_tiny_llama(dir_->path() / "b", 9);
  }
  static void TearDownTestSuite() { delete dir_; }
  static fs::path a() { return dir_->path() / "a"; }
  static fs::path b() { return dir_->path() / "b"; }
  static test::TempDir* dir_;
};
test::TempDir* BackTranslate::dir_ = nullptr;

TEST_F(BackTranslate, GreedyEqualsGeneratingWithTheTwoModelsInOrder) {
  const Translator forward(a()), backward(b());
  BacktranslateOptions o;
  o.forward_template = "en: {text} fr:";
  o.backward_template = "fr: {text} en:";
  o.separator = "|";
  o.max_new_tokens = 12;
  const std::vector<std::string> docs = {"hello world", "a cat sat", "tiny models talk", "x"};
  const auto got = backtranslate(docs, forward, backward, o, 0);
  ASSERT_EQ(got.size(), docs.size());
  size_t non_empty = 0;
  for (size_t i = 0; i < docs.size(); ++i) {
    ASSERT_EQ(got[i].size(), 1u);
    const std::string middle = generate_directly(a(), "en: " + docs[i] + " fr:|", 12, "|");
    EXPECT_EQ(got[i][0].intermediate, middle) << i;
    EXPECT_EQ(got[i][0].paraphrase, generate_directly(b(), "fr: " + middle + " en:|", 12, "|")) << i;
    non_empty += !middle.empty() && !got[i][0].paraphrase.empty();
  }
  EXPECT_GE(non_empty, 2u) << "random models should produce text for most prompts";
  // Order matters: the models swapped give other paraphrases.
  const auto swapped = backtranslate(docs, backward, forward, o, 0);
  size_t differ = 0;
  for (size_t i = 0; i < docs.size(); ++i) differ += swapped[i][0].paraphrase != got[i][0].paraphrase;
  EXPECT_GT(differ, 0u);
  // Batching does not change greedy results.
  o.batch_size = 1;
  const auto one_by_one = backtranslate(docs, forward, backward, o, 0);
  for (size_t i = 0; i < docs.size(); ++i) EXPECT_EQ(one_by_one[i][0].paraphrase, got[i][0].paraphrase);
  const auto records = backtranslate_augment(docs, forward, backward, o, 0);
  ASSERT_EQ(records.size(), docs.size());
  EXPECT_EQ(records[2].source_index, 2u);
  EXPECT_EQ(records[2].method, "backtranslate");
  EXPECT_EQ(records[2].text, got[2][0].paraphrase);
}

TEST_F(BackTranslate, SamplingIsSeededPerDocument) {
  const Translator forward(a()), backward(b());
  BacktranslateOptions o;
  o.max_new_tokens = 10;
  o.sampling.temperature = 1.0f;
  o.n_aug = 3;
  const std::vector<std::string> docs = {"hello world", "a cat sat"};
  const auto x = backtranslate(docs, forward, backward, o, 17);
  const auto y = backtranslate(docs, forward, backward, o, 17);
  const auto z = backtranslate(docs, forward, backward, o, 18);
  ASSERT_EQ(x[0].size(), 3u);
  for (size_t d = 0; d < docs.size(); ++d)
    for (size_t s = 0; s < 3; ++s) {
      EXPECT_EQ(x[d][s].intermediate, y[d][s].intermediate);
      EXPECT_EQ(x[d][s].paraphrase, y[d][s].paraphrase);
    }
  EXPECT_NE(x[0][0].intermediate + x[0][1].intermediate, z[0][0].intermediate + z[0][1].intermediate);
  EXPECT_NE(x[0][0].intermediate, x[0][1].intermediate);  // samples differ from one another
}

TEST_F(BackTranslate, BadOptionsAndFoldersAreClearErrors) {
  BacktranslateOptions o;
  o.forward_template = "no placeholder";
  test::expect_mentions(test::error_message([&] { validate(o); }), {"forward prompt template", "{text}"});
  test::expect_mentions(test::error_message([&] { Translator t(dir_->path() / "a_tok"); }), {"a_tok"});
}

// ---------------------------------------------------------------------------------------------
// `liandan data augment`

TEST_F(BackTranslate, CliWritesTheLibrarysParaphrases) {
  test::TempDir dir("liandan_bt_cli");
  if (!augment_registered(dir)) GTEST_SKIP() << "`liandan data augment` is not registered yet (cmd_data.cpp)";
  const std::vector<std::string> docs = {"hello world", "a cat sat", "tiny models talk"};
  write_text(dir / "docs.txt", docs[0] + "\n" + docs[1] + "\n" + docs[2] + "\n");
  const CliRun r = liandan("--input " + (dir / "docs.txt").string() + " --out " + (dir / "bt.jsonl").string() +
                               " --method backtranslate --forward-model " + a().string() + " --backward-model " +
                               b().string() + " --forward-template '<{text}>' --separator '|' --max-new-tokens 9",
                           dir);
  ASSERT_EQ(r.status, 0) << r.err;
  BacktranslateOptions o;
  o.forward_template = "<{text}>";
  o.separator = "|";
  o.max_new_tokens = 9;
  const auto expected = backtranslate_augment(docs, Translator(a()), Translator(b()), o, 0);
  const auto lines = read_jsonl(dir / "bt.jsonl");
  ASSERT_EQ(lines.size(), docs.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(lines[i]["source_index"], i);
    EXPECT_EQ(lines[i]["method"], "backtranslate");
    // random models emit arbitrary bytes: the JSON holds them with invalid UTF-8 replaced
    EXPECT_EQ(lines[i]["text"], nlohmann::json::parse(nlohmann::json(expected[i].text).dump(
                                    -1, ' ', false, nlohmann::json::error_handler_t::replace)));
  }
}

TEST(DataAugmentCli, EdaWithTsvWritesJsonlDeterministically) {
  test::TempDir dir("liandan_aug_cli");
  write_text(dir / "docs.jsonl", "{\"text\": \"我 很 高兴 见到 朋友\", \"id\": 1}\n{\"text\": \"朋友 很 高兴\"}\n");
  write_text(dir / "zh.tsv", "高兴\t快乐\t开心\n朋友\t伙伴\n");
  const std::string common = "--input " + (dir / "docs.jsonl").string() + " --method eda --synonyms " +
                             (dir / "zh.tsv").string() + " --n-aug 3 --seed 5 --keep-original";
  if (!augment_registered(dir)) GTEST_SKIP() << "`liandan data augment` is not registered yet (cmd_data.cpp)";
  const CliRun r1 = liandan(common + " --threads 1 --out " + (dir / "o1.jsonl").string(), dir);
  ASSERT_EQ(r1.status, 0) << r1.err;
  const CliRun r2 = liandan(common + " --threads 3 --out " + (dir / "o2.jsonl").string(), dir);
  ASSERT_EQ(r2.status, 0) << r2.err;
  EXPECT_EQ(read_text(dir / "o1.jsonl"), read_text(dir / "o2.jsonl"));
  const auto lines = read_jsonl(dir / "o1.jsonl");
  ASSERT_EQ(lines.size(), 8u);  // per document: the original and 3 augmented
  EXPECT_EQ(lines[0]["method"], "original");
  EXPECT_EQ(lines[0]["text"], "我 很 高兴 见到 朋友");
  EXPECT_EQ(lines[4]["source_index"], 1);
  for (const auto& l : lines) {
    EXPECT_TRUE(l.contains("text") && l.contains("source_index") && l.contains("method"));
    EXPECT_EQ(l["text"].get<std::string>().find("a"), std::string::npos);  // no English cleanup applied
  }
}

TEST(DataAugmentCli, BadInputIsOneClearError) {
  test::TempDir dir("liandan_aug_err");
  write_text(dir / "docs.txt", "the cat sat on the mat\n");
  const std::string in = "--input " + (dir / "docs.txt").string() + " --out " + (dir / "o.jsonl").string();
  if (!augment_registered(dir)) GTEST_SKIP() << "`liandan data augment` is not registered yet (cmd_data.cpp)";
  const CliRun unknown = liandan(in + " --method shuffle", dir);
  EXPECT_NE(unknown.status, 0);
  test::expect_mentions(unknown.err, {"unknown --method 'shuffle'", "eda or backtranslate"});
  const CliRun no_wn = liandan(in + " --method eda --wordnet " + (dir / "nowhere").string(), dir);
  EXPECT_NE(no_wn.status, 0);
  test::expect_mentions(no_wn.err, {"nowhere", "wordnet-base"});
  write_text(dir / "bad.tsv", "cat\tfeline\ndog\n");
  const CliRun bad_tsv = liandan(in + " --method eda --synonyms " + (dir / "bad.tsv").string(), dir);
  EXPECT_NE(bad_tsv.status, 0);
  test::expect_mentions(bad_tsv.err, {"bad.tsv:2:"});
  const CliRun no_models = liandan(in + " --method backtranslate", dir);
  EXPECT_NE(no_models.status, 0);
  test::expect_mentions(no_models.err, {"--forward-model", "--backward-model"});
  EXPECT_FALSE(fs::exists(dir / "o.jsonl"));  // nothing written on an error
}

}  // namespace
}  // namespace ld::data
