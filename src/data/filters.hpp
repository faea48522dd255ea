#pragma once
// Cleaning filters for `liandan data prepare`. Each filter is switched and tuned in FilterOptions
// and counted in FilterCounts. A document passes through, in this order:
//
//  rewriting (the document is kept, possibly changed):
//   1. Unicode normalisation (NFC by default; NFKC folds full-width letters and ligatures).
//   2. control characters: ANSI escape sequences (ESC [ ... letter, as fortune files colour text)
//      and C0/C1 controls other than \t and \n are removed; \r becomes \n.
//   3. boilerplate lines (filters_lines.cpp): ad and navigation lines are removed — a line of at most
//      `boilerplate_max_words` words holding a phrase like "click here", "subscribe", "cookie policy",
//      "all rights reserved", "terms of use"; and menu-like lines of >= 3 items separated by | · » or
//      " / " where every item has at most 3 words.
//   4. e-mail and phone masking: addresses become <EMAIL>, phone numbers become <PHONE>: 9 to 15
//      digits in at least three groups separated by spaces - . ( ) ("020 7946 0958", "555-123-4567"),
//      or 7 to 15 digits after a leading + or ( ("+44 20 7946 0958", "(555) 123-4567"). Plain numbers,
//      decimals and years are left alone.
//  dropping (the first rule that fires names the reason):
//   5. empty: nothing but whitespace is left.
//   6. length: fewer than min_chars or more than max_chars code points.
//   7. non_letter: the share of non-whitespace characters that are not letters (Unicode L*; a CJK
//      ideograph is a letter) is above max_non_letter_fraction.
//   8. repetition (filters_repetition.cpp): Gopher's rules (Rae et al. 2021, "Scaling Language Models:
//      Methods, Analysis & Insights from Training Gopher", appendix A, table A1), with the paper's
//      thresholds as defaults: duplicate lines > 30% of lines, characters in duplicate lines > 20%,
//      duplicate paragraphs > 30%, characters in duplicate paragraphs > 20%; the most frequent 2-, 3-,
//      4-gram covers > 20%, 18%, 16% of the characters in words; characters in duplicated 5- ... 10-grams
//      > 15%, 14%, 13%, 12%, 11%, 10%. Words are CJK-aware (split_words: each CJK character is a word;
//      in a mostly-CJK document an n-word rule looks at 2n characters, a Chinese word being about two).
//      The n-gram rules apply from 50 words on (Gopher's minimum document length).
//   9. code (off by default): at least 3 non-blank lines and more than max_code_line_fraction of them
//      end in ; { } or start with a keyword (#include, import, def, class, function, return, ...).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "data/filters_unicode.hpp"

namespace ld::data {

struct FilterOptions {
  Normalization normalization = Normalization::nfc;
  bool strip_control = true;
  bool remove_boilerplate = true;
  int boilerplate_max_words = 12;
  bool mask_emails = true;
  bool mask_phones = true;
  int64_t min_chars = 10;
  int64_t max_chars = 1'000'000;
  double max_non_letter_fraction = 0.5;
  bool repetition = true;
  double max_dup_line_fraction = 0.30, max_dup_line_char_fraction = 0.20;
  double max_dup_para_fraction = 0.30, max_dup_para_char_fraction = 0.20;
  std::array<double, 3> max_top_ngram_char_fraction = {0.20, 0.18, 0.16};            // n = 2, 3, 4
  std::array<double, 6> max_dup_ngram_char_fraction = {0.15, 0.14, 0.13, 0.12, 0.11, 0.10};  // n = 5..10
  bool drop_code = false;
  double max_code_line_fraction = 0.5;
};

// Why a document was dropped; kept == not dropped.
enum class DropReason { kept, empty, too_short, too_long, non_letter, repetition, code };
inline constexpr int kDropReasons = 7;
const char* drop_reason_name(DropReason r);  // "kept", "empty", "too_short", ...

// What happened to one document.
struct FilterOutcome {
  DropReason reason = DropReason::kept;
  int64_t control_chars_removed = 0;
  int64_t boilerplate_lines_removed = 0;
  int64_t emails_masked = 0;
  int64_t phones_masked = 0;
};

// Totals over a corpus.
struct FilterCounts {
  std::array<int64_t, kDropReasons> dropped{};  // by DropReason (index 0, kept, counts kept documents)
  int64_t docs_normalized = 0;                  // changed by Unicode normalisation
  int64_t docs_control_stripped = 0, control_chars_removed = 0;
  int64_t docs_boilerplate = 0, boilerplate_lines_removed = 0;
  int64_t docs_masked = 0, emails_masked = 0, phones_masked = 0;
  void add(const FilterOutcome& o, bool normalized);
  int64_t kept() const { return dropped[0]; }
};

// Cleans `text` in place and says whether to keep it. Thread-safe (no shared state).
FilterOutcome clean_document(std::string& text, const FilterOptions& options, bool* normalized = nullptr);

// The single steps, for tests and for reuse.
std::string strip_control_chars(std::string_view text, int64_t* removed = nullptr);
std::string remove_boilerplate_lines(std::string_view text, int max_words, int64_t* removed = nullptr);
std::string mask_emails(std::string_view text, int64_t* masked = nullptr);
std::string mask_phones(std::string_view text, int64_t* masked = nullptr);
double non_letter_fraction(std::string_view text);
bool fails_repetition(std::string_view text, const FilterOptions& options);
bool looks_like_code(std::string_view text, double max_code_line_fraction);

// Gopher's repetition measures of one document (exposed for tests).
struct RepetitionStats {
  double dup_line_fraction = 0, dup_line_char_fraction = 0;
  double dup_para_fraction = 0, dup_para_char_fraction = 0;
  std::array<double, 3> top_ngram_char_fraction{};  // n = 2, 3, 4
  std::array<double, 6> dup_ngram_char_fraction{};  // n = 5..10
};
RepetitionStats repetition_stats(std::string_view text);

}  // namespace ld::data
