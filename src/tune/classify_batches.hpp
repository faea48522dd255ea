#pragma once
// Batches of classification examples (tune/classify_data.hpp) for training and evaluation.
//
// Tokenizing: each text is encoded without special tokens. Truncation keeps the FIRST seq_len tokens
// (transformers' default truncation_side "right"); the classifier then reads the last kept token.
// A text with no tokens is an error naming its file:line (no token to classify from).
//
// Batches: one row per example, right-padded with pad_id to the longest row of the batch;
// attention_mask is 1 on real tokens and 0 on padding; labels are the class ids, i64 [B].
//
// Epochs and resume follow tune/sft_loader.hpp's unpacked rule with the same cursor (SftCursor):
// epoch e visits the examples in data::epoch_permutation(N, seed, e) order (identity without
// shuffle), ceil(N / B) batches, the last one possibly smaller; after an epoch's last batch the
// cursor reads {epoch + 1, 0}. A loader built from a saved cursor yields exactly the batches an
// uninterrupted one would have.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "tune/classify_data.hpp"
#include "tune/sft_loader.hpp"

namespace ld::tok {
class Tokenizer;
}

namespace ld::tune {

using ClassifyCursor = SftCursor;

struct TokenizedExample {
  std::vector<int32_t> ids;  // 1..seq_len tokens
  int64_t label = 0;
};

std::vector<TokenizedExample> tokenize_classify_examples(const std::vector<ClassifyExample>& examples,
                                                         const tok::Tokenizer& tokenizer, int64_t seq_len);

struct ClassifyBatch {
  Tensor input_ids;       // i64 [B, L]
  Tensor attention_mask;  // i64 [B, L]: 1 real token, 0 padding (right)
  Tensor labels;          // i64 [B]
  ClassifyCursor cursor;  // where a run resumes after this batch
};

ClassifyBatch pad_classify_examples(std::span<const TokenizedExample* const> examples, int64_t pad_id);

struct ClassifyLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t pad_id = 0;
};

class ClassifyLoader {
 public:
  // Errors: no examples, batch_size < 1, an empty example, a cursor outside the epoch.
  ClassifyLoader(std::vector<TokenizedExample> examples, const ClassifyLoaderOptions& options,
                 ClassifyCursor start = {});
  ClassifyBatch next();  // never runs out: epochs follow one another
  ClassifyCursor cursor() const { return cursor_; }
  int64_t batches_per_epoch() const;

 private:
  std::vector<TokenizedExample> examples_;
  ClassifyLoaderOptions options_;
  ClassifyCursor cursor_;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
};

// logits [B, num_labels] for a batch (tune/sequence_classifier.hpp makes them for models).
using LogitsFn = std::function<Tensor(const ClassifyBatch&)>;

struct ClassifyMetrics {
  double accuracy = 0;
  double macro_f1 = 0;
  int64_t examples = 0;
};

// Runs every example once (in order, batches of batch_size, no gradients) and scores the argmax
// against the labels with eval/classification (macro F1 over the whole label set, scikit-learn's
// zero_division=0).
ClassifyMetrics evaluate_classification(const std::vector<TokenizedExample>& examples,
                                        const std::vector<std::string>& label_set, const LogitsFn& logits,
                                        int64_t batch_size, int64_t pad_id);

}  // namespace ld::tune
