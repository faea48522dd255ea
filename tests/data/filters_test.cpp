// Cleaning filters: each rule on a crafted corpus with the count it must produce, the rewriting steps
// on exact strings, and Chinese fortunes (fortunes-zh) surviving the default filters.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "data/filters.hpp"
#include "data/readers.hpp"

namespace ld::data {
namespace {

// Prose that passes every default rule: distinct sentences, no repeated lines or n-grams.
std::string good_prose(int i) {
  static const char* subjects[] = {"The river", "A quiet teacher", "Our neighbour", "The old map", "Every morning"};
  static const char* verbs[] = {"carries", "remembers", "explains", "hides", "brings"};
  static const char* objects[] = {"small stones from the hills", "the names of distant towns", "a reason to wait",
                                  "bread for the market", "letters nobody answered"};
  return std::string(subjects[i % 5]) + " " + verbs[(i / 5) % 5] + " " + objects[(i / 25) % 5] + " near house " +
         std::to_string(i) + ".\nLater that day the weather changed and everyone went home early.";
}

TEST(DataFilters, CraftedCorpusGivesExactCountsPerFilter) {
  FilterOptions o;
  o.max_chars = 2000;
  o.drop_code = true;
  std::vector<std::string> corpus;
  const int good = 7, too_short = 3, too_long = 2, non_letter = 4, repetitive = 3, code = 2, empty = 2;
  for (int i = 0; i < good; ++i) corpus.push_back(good_prose(i));
  for (int i = 0; i < too_short; ++i) corpus.push_back("Hi " + std::string(size_t(i), 'x'));  // < 10 chars
  for (int i = 0; i < too_long; ++i) {
    std::string t;
    for (int k = 0; t.size() <= 2100; ++k) t += good_prose(k + 100 * i) + "\n\n";
    corpus.push_back(t);
  }
  for (int i = 0; i < non_letter; ++i) corpus.push_back("1234 5678 9012 3456 !!?? ## " + std::to_string(i) + " -- 42 ok");
  corpus.push_back("same line here\nsame line here\nsame line here\nanother one");       // duplicate lines
  corpus.push_back("para one is here\n\npara one is here\n\npara two is different");      // duplicate paragraphs
  corpus.push_back(good_prose(50) + " " + good_prose(51) + " " + good_prose(50) + " " + good_prose(52));  // repeated 10-grams
  corpus.push_back("int main() {\n  int x = 1;\n  return x;\n}");
  corpus.push_back("#include <stdio.h>\nvoid f(void) {\n  puts(\"hello there\");\n}");
  corpus.push_back("Click here to subscribe!\nHome | About | Contact | Blog");  // nothing left after boilerplate
  corpus.push_back("   \n\t\n");
  // Rewritten but kept: 2 boilerplate lines, 2 e-mails, 2 phones, 3 ANSI escapes.
  corpus.push_back(good_prose(40) + "\nAll rights reserved.\nPrivacy Policy | Terms of Use | Cookie settings");
  corpus.push_back("Write to jane.doe@example.com or bob@mail.example.org about the garden plans this week.");
  corpus.push_back("Call +44 20 7946 0958 or 555-123-4567 before noon; the year 1999 and 3.14159 stay as they are.");
  corpus.push_back("\x1b[33mColours\x1b[m from a fortune file \x1b[32mare\x1b[m stripped cleanly here.");

  FilterCounts counts;
  for (std::string text : corpus) {
    bool normalized = false;
    counts.add(clean_document(text, o, &normalized), normalized);
  }
  EXPECT_EQ(counts.dropped[size_t(DropReason::too_short)], too_short);
  EXPECT_EQ(counts.dropped[size_t(DropReason::too_long)], too_long);
  EXPECT_EQ(counts.dropped[size_t(DropReason::non_letter)], non_letter);
  EXPECT_EQ(counts.dropped[size_t(DropReason::repetition)], repetitive);
  EXPECT_EQ(counts.dropped[size_t(DropReason::code)], code);
  EXPECT_EQ(counts.dropped[size_t(DropReason::empty)], empty);
  EXPECT_EQ(counts.kept(), good + 4);
  EXPECT_EQ(counts.boilerplate_lines_removed, 2 + 2);
  EXPECT_EQ(counts.docs_boilerplate, 2);
  EXPECT_EQ(counts.emails_masked, 2);
  EXPECT_EQ(counts.phones_masked, 2);
  EXPECT_EQ(counts.docs_masked, 2);
  EXPECT_EQ(counts.control_chars_removed, 4);
}

TEST(DataFilters, EachRuleCanBeSwitchedOff) {
  FilterOptions off;
  off.repetition = false;
  off.max_non_letter_fraction = 1.0;
  off.min_chars = 0;
  std::string rep = "same line here\nsame line here\nsame line here\nanother one";
  EXPECT_EQ(clean_document(rep, off).reason, DropReason::kept);
  std::string digits = "1234 5678 9012 3456";
  EXPECT_EQ(clean_document(digits, off).reason, DropReason::kept);
  std::string code = "int main() {\n  int x = 1;\n  return x;\n}";
  EXPECT_EQ(clean_document(code, off).reason, DropReason::kept);  // drop_code is off by default
}

TEST(DataFilters, MasksEmailsAndPhonesExactly) {
  int64_t n = 0;
  EXPECT_EQ(mask_emails("mail a.b+c@x-y.example.com. Or me@host.io!", &n), "mail <EMAIL>. Or <EMAIL>!");
  EXPECT_EQ(n, 2);
  EXPECT_EQ(mask_emails("an @ sign, user@localhost and a@b.c stay", &n), "an @ sign, user@localhost and a@b.c stay");
  EXPECT_EQ(n, 0);
  EXPECT_EQ(mask_phones("ring (555) 123-4567 or 020 7946 0958, not 2021-12-20 or 3.14159265 or 12345678", &n),
            "ring <PHONE> or <PHONE>, not 2021-12-20 or 3.14159265 or 12345678");
  EXPECT_EQ(n, 2);
  EXPECT_EQ(mask_phones("+86 138 0013 8000.", &n), "<PHONE>.");
}

TEST(DataFilters, BoilerplateLinesOnlyWhenShort) {
  int64_t n = 0;
  const std::string long_line =
      "In her essay she argued that the habit to click here and there on a page changes how we read long articles.";
  EXPECT_EQ(remove_boilerplate_lines("Story starts.\nClick here to read more\n" + long_line, 12, &n),
            "Story starts.\n" + long_line);
  EXPECT_EQ(n, 1);
  EXPECT_EQ(remove_boilerplate_lines("Home | News | Sport | Weather\nbody text", 12, &n), "body text");
  EXPECT_EQ(n, 1);
  EXPECT_EQ(remove_boilerplate_lines("x | a very long item here | y", 12, &n), "x | a very long item here | y");
  EXPECT_EQ(n, 0);
}

TEST(DataFilters, ControlCharactersAndNormalisation) {
  int64_t n = 0;
  EXPECT_EQ(strip_control_chars("a\x1b[1;33mb\x1b[mc\x07\r\nd\te\xC2\x85", &n), "abc\nd\te");
  EXPECT_EQ(n, 4);
  const std::string fullwidth = "\xEF\xBC\xA1\xEF\xBC\xA2";  // ＡＢ
  EXPECT_EQ(normalize_unicode(fullwidth, Normalization::nfkc), "AB");
  EXPECT_EQ(normalize_unicode(fullwidth, Normalization::nfc), fullwidth);
  EXPECT_EQ(normalize_unicode("e\xCC\x81", Normalization::nfc), "\xC3\xA9");  // e + combining acute -> é
}

TEST(DataFilters, RepetitionStatsOnHandCountedText) {
  // lines: x y z / x y z / d e f g: one duplicate line of 3.
  const RepetitionStats s = repetition_stats("x y z\nx y z\nd e f g");
  EXPECT_DOUBLE_EQ(s.dup_line_fraction, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(s.dup_line_char_fraction, 5.0 / 19.0);  // "x y z" is 5 of the 19 code points
  EXPECT_DOUBLE_EQ(s.top_ngram_char_fraction[0], 0.0);     // under 50 words: no n-gram rules
  // 60 words: "aa bb" 10 times, then 40 distinct two-letter words (120 word characters).
  std::string t;
  for (int i = 0; i < 10; ++i) t += "aa bb ";
  for (int i = 0; i < 40; ++i) t += std::string(1, char('c' + i % 20)) + char('a' + i / 20) + " ";
  const RepetitionStats r = repetition_stats(t);
  EXPECT_DOUBLE_EQ(r.top_ngram_char_fraction[0], 10 * 4 / 120.0);  // "aa bb" x10
  EXPECT_DOUBLE_EQ(r.top_ngram_char_fraction[1], 9 * 6 / 120.0);   // "aa bb aa" and "bb aa bb" x9 (first wins a tie)
  // 5-grams: after the first "aa bb aa bb aa", the walk finds a repeat at word 2 (skip 5), 7 (skip 5),
  // 12 (skip 5); at word 17 "bb aa bb" runs into the distinct words.
  EXPECT_DOUBLE_EQ(r.dup_ngram_char_fraction[0], 3 * 10 / 120.0);
}

TEST(DataFilters, CjkCharactersCountAsWords) {
  auto words = split_words("我们 like 中文text");
  ASSERT_EQ(words.size(), 6u);
  EXPECT_EQ(words[0], "我");
  EXPECT_EQ(words[2], "like");
  EXPECT_EQ(words[4], "文");
  EXPECT_EQ(words[5], "text");
}

// fortunes-zh: tang300 and song100 are classical poems, chinese is mostly chapters of the Debian
// reference manual (with paths, commands and box-drawn tables that the rules rightly catch).
TEST(DataFilters, ChineseFortunesSurviveDefaults) {
  const std::filesystem::path dir = "/usr/share/games/fortunes";
  for (const auto& [name, min_kept] : {std::pair{"tang300", 0.98}, std::pair{"song100", 0.98}, std::pair{"chinese", 0.9}}) {
    if (!std::filesystem::exists(dir / name)) GTEST_SKIP() << "needs: apt-get install fortunes-zh";
    std::vector<std::string> docs;
    read_documents(dir / name, {}, [&](Document&& d) { docs.push_back(std::move(d.text)); });
    ASSERT_GT(docs.size(), 90u);
    FilterCounts counts;
    for (std::string& t : docs) counts.add(clean_document(t, FilterOptions{}), false);
    const double kept = double(counts.kept()) / double(docs.size());
    std::printf("fortunes-zh %s: %zu documents, kept %.1f%% (repetition %lld, non_letter %lld, too_short %lld)\n", name,
                docs.size(), 100 * kept, (long long)counts.dropped[size_t(DropReason::repetition)],
                (long long)counts.dropped[size_t(DropReason::non_letter)],
                (long long)counts.dropped[size_t(DropReason::too_short)]);
    EXPECT_GT(kept, min_kept) << name;
  }
}

}  // namespace
}  // namespace ld::data
