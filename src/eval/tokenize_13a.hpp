#pragma once
// sacreBLEU's default "13a" tokenizer (mteval-v13a.pl, as sacrebleu/tokenizers/tokenizer_13a.py and
// tokenizer_re.py implement it): unescape a few HTML entities, split punctuation and symbols off,
// split "." and "," unless between digits, split "-" after a digit; tokens joined by single spaces.
#include <string>
#include <string_view>

namespace ld::eval {

std::string tokenize_13a(std::string_view line);

}  // namespace ld::eval
