#pragma once
// The Porter stemmer exactly as NLTK's PorterStemmer() runs it by default (mode NLTK_EXTENSIONS,
// nltk/stem/porter.py), since that is the stemmer Google's rouge-score applies. The NLTK extensions
// over Porter (1980): a few irregular forms (skies, dying, news...), "ies"/"ied" on four-letter
// words, y -> i only after a consonant, extra step-2 rules (alli, fulli, logi, bli) and words of
// two letters or fewer left alone. Input is expected lowercase.
#include <string>
#include <string_view>

namespace ld::eval {

std::string porter_stem(std::string_view word);

}  // namespace ld::eval
