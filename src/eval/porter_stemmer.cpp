#include "eval/porter_stemmer.hpp"

#include <functional>
#include <map>
#include <vector>

namespace ld::eval {

namespace {

using Condition = std::function<bool(const std::string&)>;

struct Rule {
  std::string suffix;  // "*d": ends in a double consonant
  std::string replacement;
  Condition condition;  // empty: unconditional
};

bool is_vowel_letter(char c) { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u'; }

bool is_consonant(const std::string& w, size_t i) {
  if (is_vowel_letter(w[i])) return false;
  if (w[i] == 'y') return i == 0 ? true : !is_consonant(w, i - 1);
  return true;
}

// m in [C](VC){m}[V]: the number of vowel-to-consonant transitions.
int measure(const std::string& stem) {
  int m = 0;
  for (size_t i = 1; i < stem.size(); ++i)
    if (!is_consonant(stem, i - 1) && is_consonant(stem, i)) ++m;
  return m;
}

bool positive_measure(const std::string& stem) { return measure(stem) > 0; }

bool contains_vowel(const std::string& stem) {
  for (size_t i = 0; i < stem.size(); ++i)
    if (!is_consonant(stem, i)) return true;
  return false;
}

bool ends_double_consonant(const std::string& w) {
  return w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && is_consonant(w, w.size() - 1);
}

// *o: ends consonant-vowel-consonant, the last not w, x or y; NLTK also accepts a two-letter
// vowel-consonant word.
bool ends_cvc(const std::string& w) {
  const size_t n = w.size();
  if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) && w[n - 1] != 'w' &&
      w[n - 1] != 'x' && w[n - 1] != 'y')
    return true;
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

bool ends_with(const std::string& w, std::string_view suffix) {
  return w.size() >= suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string drop(const std::string& w, size_t n) { return w.substr(0, w.size() - n); }

// The first rule whose suffix the word ends with decides: replaced when its condition holds on the
// stem, otherwise the word is returned unchanged (NLTK's _apply_rule_list).
std::string apply_rules(const std::string& word, const std::vector<Rule>& rules) {
  for (const Rule& rule : rules) {
    if (rule.suffix == "*d" && ends_double_consonant(word)) {
      std::string stem = drop(word, 2);
      return !rule.condition || rule.condition(stem) ? stem + rule.replacement : word;
    }
    if (ends_with(word, rule.suffix)) {
      std::string stem = drop(word, rule.suffix.size());
      return !rule.condition || rule.condition(stem) ? stem + rule.replacement : word;
    }
  }
  return word;
}

std::string step1a(const std::string& w) {
  if (ends_with(w, "ies") && w.size() == 4) return drop(w, 3) + "ie";
  return apply_rules(w, {{"sses", "ss", {}}, {"ies", "i", {}}, {"ss", "ss", {}}, {"s", "", {}}});
}

std::string step1b(const std::string& w) {
  if (ends_with(w, "ied")) return drop(w, 3) + (w.size() == 4 ? "ie" : "i");
  if (ends_with(w, "eed")) {
    std::string stem = drop(w, 3);
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string stem;
  bool removed = false;
  for (std::string_view suffix : {"ed", "ing"}) {
    if (ends_with(w, suffix)) {
      stem = drop(w, suffix.size());
      if (contains_vowel(stem)) {
        removed = true;
        break;
      }
    }
  }
  if (!removed) return w;
  const char last = stem.back();
  return apply_rules(stem, {{"at", "ate", {}},
                            {"bl", "ble", {}},
                            {"iz", "ize", {}},
                            {"*d", std::string(1, last), [last](const std::string&) {
                               return last != 'l' && last != 's' && last != 'z';
                             }},
                            {"", "e", [](const std::string& s) { return measure(s) == 1 && ends_cvc(s); }}});
}

std::string step1c(const std::string& w) {
  return apply_rules(w, {{"y", "i", [](const std::string& s) { return s.size() > 1 && is_consonant(s, s.size() - 1); }}});
}

std::string step2(const std::string& w) {
  if (ends_with(w, "alli") && positive_measure(drop(w, 4))) return step2(drop(w, 4) + "al");
  const Condition m = positive_measure;
  return apply_rules(w, {{"ational", "ate", m},
                         {"tional", "tion", m},
                         {"enci", "ence", m},
                         {"anci", "ance", m},
                         {"izer", "ize", m},
                         {"bli", "ble", m},
                         {"alli", "al", m},
                         {"entli", "ent", m},
                         {"eli", "e", m},
                         {"ousli", "ous", m},
                         {"ization", "ize", m},
                         {"ation", "ate", m},
                         {"ator", "ate", m},
                         {"alism", "al", m},
                         {"iveness", "ive", m},
                         {"fulness", "ful", m},
                         {"ousness", "ous", m},
                         {"aliti", "al", m},
                         {"iviti", "ive", m},
                         {"biliti", "ble", m},
                         {"fulli", "ful", m},
                         // NLTK measures the word less "ogi" here, i.e. the stem with its "l".
                         {"logi", "log", [&w](const std::string&) { return positive_measure(drop(w, 3)); }}});
}

std::string step3(const std::string& w) {
  const Condition m = positive_measure;
  return apply_rules(w, {{"icate", "ic", m},
                         {"ative", "", m},
                         {"alize", "al", m},
                         {"iciti", "ic", m},
                         {"ical", "ic", m},
                         {"ful", "", m},
                         {"ness", "", m}});
}

std::string step4(const std::string& w) {
  const Condition m = [](const std::string& s) { return measure(s) > 1; };
  return apply_rules(w, {{"al", "", m},
                         {"ance", "", m},
                         {"ence", "", m},
                         {"er", "", m},
                         {"ic", "", m},
                         {"able", "", m},
                         {"ible", "", m},
                         {"ant", "", m},
                         {"ement", "", m},
                         {"ment", "", m},
                         {"ent", "", m},
                         {"ion", "", [](const std::string& s) {
                            return measure(s) > 1 && !s.empty() && (s.back() == 's' || s.back() == 't');
                          }},
                         {"ou", "", m},
                         {"ism", "", m},
                         {"ate", "", m},
                         {"iti", "", m},
                         {"ous", "", m},
                         {"ive", "", m},
                         {"ize", "", m}});
}

std::string step5a(const std::string& w) {
  if (!ends_with(w, "e")) return w;
  std::string stem = drop(w, 1);
  const int m = measure(stem);
  if (m > 1 || (m == 1 && !ends_cvc(stem))) return stem;
  return w;
}

std::string step5b(const std::string& w) {
  return apply_rules(w, {{"ll", "l", [&w](const std::string&) { return measure(drop(w, 1)) > 1; }}});
}

const std::map<std::string, std::string, std::less<>>& irregular_forms() {
  static const std::map<std::string, std::string, std::less<>> forms = {
      {"sky", "sky"},         {"skies", "sky"},     {"dying", "die"},       {"lying", "lie"},
      {"tying", "tie"},       {"news", "news"},     {"innings", "inning"},  {"inning", "inning"},
      {"outings", "outing"},  {"outing", "outing"}, {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},       {"proceed", "proceed"}, {"exceed", "exceed"}, {"succeed", "succeed"}};
  return forms;
}

}  // namespace

std::string porter_stem(std::string_view input) {
  auto irregular = irregular_forms().find(input);
  if (irregular != irregular_forms().end()) return irregular->second;
  std::string w(input);
  if (w.size() <= 2) return w;
  w = step1a(w);
  w = step1b(w);
  w = step1c(w);
  w = step2(w);
  w = step3(w);
  w = step4(w);
  w = step5a(w);
  w = step5b(w);
  return w;
}

}  // namespace ld::eval
