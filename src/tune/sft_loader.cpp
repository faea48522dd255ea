#include "tune/sft_loader.hpp"

#include <algorithm>
#include <numeric>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "data/loader.hpp"
#include "train/objectives.hpp"

namespace ld::tune {

void to_json(nlohmann::json& j, const SftCursor& c) { j = {{"epoch", c.epoch}, {"position", c.position}}; }

void from_json(const nlohmann::json& j, SftCursor& c) {
  LD_CHECK(j.is_object() && j.contains("epoch") && j.contains("position") && j["epoch"].is_number_integer() &&
               j["position"].is_number_integer(),
           "instruction data cursor: expected {\"epoch\": int, \"position\": int}, got ", j.dump());
  c.epoch = j["epoch"].get<int64_t>();
  c.position = j["position"].get<int64_t>();
}

namespace {

constexpr int64_t kIgnore = train::kIgnoreLabel;

struct RowBuffers {
  std::vector<int64_t> ids, mask, targets;
  RowBuffers(int64_t rows, int64_t length, int64_t pad_id)
      : ids(size_t(rows * length), pad_id), mask(size_t(rows * length), 0), targets(size_t(rows * length), kIgnore) {}
  SftBatch to_batch(int64_t rows, int64_t length) const {
    const Shape shape{rows, length};
    return {from_vector(ids, shape), from_vector(mask, shape), from_vector(targets, shape), {}};
  }
};

}  // namespace

SftBatch pad_examples(std::span<const SftExample* const> examples, int64_t pad_id) {
  LD_ASSERT(!examples.empty());
  size_t length = 0;
  for (const SftExample* e : examples) length = std::max(length, e->ids.size());
  RowBuffers rows(int64_t(examples.size()), int64_t(length), pad_id);
  for (size_t r = 0; r < examples.size(); ++r) {
    const SftExample& e = *examples[r];
    const size_t base = r * length;
    for (size_t t = 0; t < e.ids.size(); ++t) {
      rows.ids[base + t] = e.ids[t];
      rows.mask[base + t] = 1;
      if (t + 1 < e.ids.size()) rows.targets[base + t] = e.labels[t + 1];
    }
  }
  return rows.to_batch(int64_t(examples.size()), int64_t(length));
}

PackedStream pack_examples(const std::vector<SftExample>& examples, std::span<const int64_t> order) {
  PackedStream s;
  for (const int64_t index : order) {
    const SftExample& e = examples[size_t(index)];
    s.ids.insert(s.ids.end(), e.ids.begin(), e.ids.end());
    // The next token's label; the example's last token predicts nothing across the boundary.
    if (!e.labels.empty()) s.targets.insert(s.targets.end(), e.labels.begin() + 1, e.labels.end());
    if (!e.ids.empty()) s.targets.push_back(int32_t(kIgnore));
  }
  return s;
}

SftBatch packed_rows(const PackedStream& stream, int64_t first_row, int64_t rows, int64_t seq_len, int64_t pad_id) {
  RowBuffers out(rows, seq_len, pad_id);
  const int64_t total = int64_t(stream.ids.size());
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t start = (first_row + r) * seq_len;
    const int64_t end = std::min(total, start + seq_len);
    for (int64_t j = start; j < end; ++j) {
      const size_t at = size_t(r * seq_len + (j - start));
      out.ids[at] = stream.ids[size_t(j)];
      out.mask[at] = 1;
      out.targets[at] = stream.targets[size_t(j)];
    }
  }
  return out.to_batch(rows, seq_len);
}

SftLoader::SftLoader(std::vector<SftExample> examples, const SftLoaderOptions& options, SftCursor start)
    : examples_(std::move(examples)), options_(options), cursor_(start) {
  LD_CHECK(!examples_.empty(), "instruction data: no examples to train on");
  LD_CHECK(options_.batch_size >= 1, "instruction data: batch_size must be at least 1, got ", options_.batch_size);
  LD_CHECK(options_.seq_len >= 2, "instruction data: seq_len must be at least 2, got ", options_.seq_len);
  int64_t tokens = 0;
  for (size_t i = 0; i < examples_.size(); ++i) {
    const int64_t n = int64_t(examples_[i].ids.size());
    LD_CHECK(n <= options_.seq_len && n > 0, "instruction data: example ", i, " has ", n,
             " tokens; expected 1..seq_len=", options_.seq_len, " (build_sft_dataset truncates)");
    LD_ASSERT(examples_[i].labels.size() == examples_[i].ids.size());
    tokens += n;
  }
  units_ = options_.packing ? (tokens + options_.seq_len - 1) / options_.seq_len : int64_t(examples_.size());
  LD_CHECK(cursor_.epoch >= 0 && cursor_.position >= 0 && cursor_.position < units_,
           "instruction data: cursor {epoch ", cursor_.epoch, ", position ", cursor_.position,
           "} is outside an epoch of ", units_, options_.packing ? " packed rows" : " examples");
}

int64_t SftLoader::batches_per_epoch() const { return (units_ + options_.batch_size - 1) / options_.batch_size; }

void SftLoader::prepare_epoch() {
  if (order_epoch_ == cursor_.epoch) return;
  const int64_t n = int64_t(examples_.size());
  if (options_.shuffle) {
    order_ = data::epoch_permutation(n, options_.seed, cursor_.epoch);
  } else {
    order_.resize(size_t(n));
    std::iota(order_.begin(), order_.end(), int64_t(0));
  }
  if (options_.packing) stream_ = pack_examples(examples_, order_);
  order_epoch_ = cursor_.epoch;
}

SftBatch SftLoader::next() {
  prepare_epoch();
  const int64_t count = std::min(options_.batch_size, units_ - cursor_.position);
  SftBatch batch;
  if (options_.packing) {
    batch = packed_rows(stream_, cursor_.position, count, options_.seq_len, options_.pad_id);
  } else {
    std::vector<const SftExample*> rows;
    for (int64_t i = 0; i < count; ++i) rows.push_back(&examples_[size_t(order_[size_t(cursor_.position + i)])]);
    batch = pad_examples(rows, options_.pad_id);
  }
  cursor_.position += count;
  if (cursor_.position == units_) cursor_ = {cursor_.epoch + 1, 0};
  batch.cursor = cursor_;
  return batch;
}

}  // namespace ld::tune
