#pragma once
// Training a byte-level BPE tokenizer (GPT-2 style) from text files.
//
// Memory: the input is streamed in chunks (a few MB per thread), so memory grows with the number of
// DISTINCT pre-tokens (words) of the corpus and the pair index over them, not with the corpus size.
//
// Merges are chosen with pair counts updated incrementally: a pair -> count map, a pair -> words
// index and a max-heap with lazy deletion; each merge touches only the words that contain the pair.
// Ties between pairs of equal count go to the lexicographically smallest pair, comparing the left
// token's bytes first, then the right token's bytes (so results do not depend on thread count).
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/tokenizer.hpp"

namespace ld::tok {

struct BpeTrainOptions {
  int vocab_size = 8000;  // bytes (256) + special tokens + merges
  int min_frequency = 2;  // stop merging when the best pair occurs fewer times than this
  std::string pattern = "gpt2";  // pre-tokenizer: "gpt2" or "cl100k"
  std::vector<std::string> special_tokens;  // ids 256.. in this order; never merged, cut out of the text
  int threads = 0;  // pre-token counting threads; 0 = all
  // Bytes read per chunk. Input memory is about threads x 8 x chunk_bytes (a chunk grows past this
  // only until a position is found where no pre-token can cross a cut).
  size_t chunk_bytes = 256 * 1024;
  // Called after each merge: (tokens made by merges so far, tokens wanted = vocab_size - 256 - specials).
  std::function<void(size_t done, size_t total)> progress;
};

// Vocabulary: ids 0..255 are the 256 bytes in GPT-2's byte-to-unicode form (byte b has id b), then
// the special tokens, then the tokens that merges create, in rank order (a merge whose result exists
// already, such as "ab"+"c" after "a"+"bc", reuses it, as Hugging Face's trainer does). The vocabulary
// reaches vocab_size unless min_frequency or the corpus runs out of pairs first.
ByteLevelBpeData train_byte_level_bpe(const std::vector<std::filesystem::path>& inputs, const BpeTrainOptions& options);

// The distinct pre-tokens of the files (special tokens cut out) with their counts, sorted by bytes:
// the first step of training, exposed so that tests can check the chunked, parallel counting.
std::vector<std::pair<std::string, uint64_t>> count_pretokens(const std::vector<std::filesystem::path>& inputs,
                                                              const BpeTrainOptions& options);

}  // namespace ld::tok
