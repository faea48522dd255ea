#include "tune/classify_batches.hpp"

#include <algorithm>
#include <numeric>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "data/loader.hpp"
#include "eval/classification.hpp"
#include "ops/ops.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::tune {

std::vector<TokenizedExample> tokenize_classify_examples(const std::vector<ClassifyExample>& examples,
                                                         const tok::Tokenizer& tokenizer, int64_t seq_len) {
  LD_CHECK(seq_len >= 1, "classification data: seq_len must be at least 1, got ", seq_len);
  std::vector<TokenizedExample> out;
  out.reserve(examples.size());
  for (const ClassifyExample& e : examples) {
    std::vector<int32_t> ids = tokenizer.encode(e.text);
    LD_CHECK(!ids.empty(), e.source, ": the text has no tokens (nothing to classify from)");
    if (int64_t(ids.size()) > seq_len) ids.resize(size_t(seq_len));  // keep the first seq_len tokens
    out.push_back({std::move(ids), e.label});
  }
  return out;
}

ClassifyBatch pad_classify_examples(std::span<const TokenizedExample* const> examples, int64_t pad_id) {
  LD_ASSERT(!examples.empty());
  size_t length = 0;
  for (const TokenizedExample* e : examples) length = std::max(length, e->ids.size());
  const size_t rows = examples.size();
  std::vector<int64_t> ids(rows * length, pad_id), mask(rows * length, 0), labels(rows);
  for (size_t r = 0; r < rows; ++r) {
    const TokenizedExample& e = *examples[r];
    std::copy(e.ids.begin(), e.ids.end(), ids.begin() + std::ptrdiff_t(r * length));
    std::fill_n(mask.begin() + std::ptrdiff_t(r * length), e.ids.size(), 1);
    labels[r] = e.label;
  }
  const Shape shape{int64_t(rows), int64_t(length)};
  return {from_vector(ids, shape), from_vector(mask, shape), from_vector(labels, {int64_t(rows)}), {}};
}

ClassifyLoader::ClassifyLoader(std::vector<TokenizedExample> examples, const ClassifyLoaderOptions& options,
                               ClassifyCursor start)
    : examples_(std::move(examples)), options_(options), cursor_(start) {
  LD_CHECK(!examples_.empty(), "classification data: no examples to train on");
  LD_CHECK(options_.batch_size >= 1, "classification data: batch_size must be at least 1, got ",
           options_.batch_size);
  for (size_t i = 0; i < examples_.size(); ++i)
    LD_CHECK(!examples_[i].ids.empty(), "classification data: example ", i, " has no tokens");
  const int64_t n = int64_t(examples_.size());
  LD_CHECK(cursor_.epoch >= 0 && cursor_.position >= 0 && cursor_.position < n, "classification data: cursor {epoch ",
           cursor_.epoch, ", position ", cursor_.position, "} is outside an epoch of ", n, " examples");
}

int64_t ClassifyLoader::batches_per_epoch() const {
  return (int64_t(examples_.size()) + options_.batch_size - 1) / options_.batch_size;
}

ClassifyBatch ClassifyLoader::next() {
  const int64_t n = int64_t(examples_.size());
  if (order_epoch_ != cursor_.epoch) {
    if (options_.shuffle) {
      order_ = data::epoch_permutation(n, options_.seed, cursor_.epoch);
    } else {
      order_.resize(size_t(n));
      std::iota(order_.begin(), order_.end(), int64_t(0));
    }
    order_epoch_ = cursor_.epoch;
  }
  const int64_t count = std::min(options_.batch_size, n - cursor_.position);
  std::vector<const TokenizedExample*> rows;
  for (int64_t i = 0; i < count; ++i) rows.push_back(&examples_[size_t(order_[size_t(cursor_.position + i)])]);
  ClassifyBatch batch = pad_classify_examples(rows, options_.pad_id);
  cursor_.position += count;
  if (cursor_.position == n) cursor_ = {cursor_.epoch + 1, 0};
  batch.cursor = cursor_;
  return batch;
}

ClassifyMetrics evaluate_classification(const std::vector<TokenizedExample>& examples,
                                        const std::vector<std::string>& label_set, const LogitsFn& logits,
                                        int64_t batch_size, int64_t pad_id) {
  LD_CHECK(!examples.empty(), "classification evaluation: no examples");
  LD_CHECK(batch_size >= 1, "classification evaluation: batch_size must be at least 1, got ", batch_size);
  autograd::NoGradGuard no_grad;
  std::vector<std::string> references, predictions;
  for (size_t first = 0; first < examples.size(); first += size_t(batch_size)) {
    std::vector<const TokenizedExample*> rows;
    for (size_t i = first; i < std::min(examples.size(), first + size_t(batch_size)); ++i) rows.push_back(&examples[i]);
    const ClassifyBatch batch = pad_classify_examples(rows, pad_id);
    const Tensor scores = logits(batch);
    LD_CHECK(scores.dim() == 2 && scores.size(0) == int64_t(rows.size()) &&
                 scores.size(1) == int64_t(label_set.size()),
             "classification evaluation: logits ", shape_str(scores.shape()), " do not match ", rows.size(),
             " rows of ", label_set.size(), " labels");
    const std::vector<int64_t> argmax = ops::argmax(scores, -1).to_vector<int64_t>();
    for (size_t r = 0; r < rows.size(); ++r) {
      LD_CHECK(rows[r]->label >= 0 && rows[r]->label < int64_t(label_set.size()), "classification evaluation: label ",
               rows[r]->label, " is outside the label set of ", label_set.size());
      references.push_back(label_set[size_t(rows[r]->label)]);
      predictions.push_back(label_set[size_t(argmax[r])]);
    }
  }
  const eval::ClassificationReport report =
      eval::classification_report(eval::confusion_matrix(references, predictions, label_set));
  return {report.accuracy, report.macro.f1, int64_t(examples.size())};
}

}  // namespace ld::tune
