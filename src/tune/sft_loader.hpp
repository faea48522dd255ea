#pragma once
// Batches of instruction examples (tune/sft_data.hpp) for training, one shuffled epoch after another.
//
// Targets. Every row has input_ids and targets of the same length: targets[t] is the id the model
// should predict at position t (the next token of the same example when that token is trained) and
// -100 elsewhere, so cross_entropy(logits, targets) with ignore_index -100 scores exactly the
// response tokens. (The data::Batch convention: targets are the labels shifted left by one.)
//
// Unpacked (packing = false): a row is one example, right-padded with pad_id to the longest example
// of the batch; attention_mask is 1 on real tokens and 0 on padding; padding has target -100.
//
// Packed (packing = true): the epoch's examples, in shuffled order, are concatenated into one stream
// and cut into rows of exactly seq_len; an example may continue in the next row. The last row of an
// epoch is right-padded (mask 0, target -100). Targets are taken from the stream before it is cut,
// so a response token at the start of a row is still the target of the previous row's last position:
// no trained token is lost or scored twice per epoch. An example's last token never targets the next
// example's first token. Attention DOES cross example boundaries inside a row: our models take only a
// padding mask (no block-diagonal mask, no position-id reset), as in TRL's packing without
// padding_free; positions count on across the examples of a row.
//
// Epochs and resume. Epoch e visits the examples in data::epoch_permutation(N, seed, e) order
// (identity without shuffle). An epoch has ceil(N / B) batches unpacked or ceil(R / B) packed (R rows
// of the epoch's stream, the same count every epoch); its last batch may have fewer rows, so every
// example is used exactly once per epoch. The cursor {epoch, position} counts examples (unpacked) or
// rows (packed) consumed in the epoch; after an epoch's last batch it reads {epoch + 1, 0}. A loader
// built from a saved cursor yields exactly the batches an uninterrupted one would have.
#include <cstdint>
#include <span>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/tensor.hpp"
#include "tune/sft_example.hpp"

namespace ld::tune {

struct SftCursor {
  int64_t epoch = 0;
  int64_t position = 0;  // examples (unpacked) or packed rows consumed in `epoch`
  bool operator==(const SftCursor&) const = default;
};
// {"epoch": e, "position": p}; from_json errors are ld::Error.
void to_json(nlohmann::json& j, const SftCursor& c);
void from_json(const nlohmann::json& j, SftCursor& c);

struct SftBatch {
  Tensor input_ids;       // i64 [B, L]
  Tensor attention_mask;  // i64 [B, L]: 1 real token, 0 padding
  Tensor targets;         // i64 [B, L]: next-token targets, -100 where not trained
  SftCursor cursor;       // where a run resumes after this batch
};

// One row per example, right-padded (see "Unpacked").
SftBatch pad_examples(std::span<const SftExample* const> examples, int64_t pad_id);

// The epoch's stream for packing: ids and, per token, its next-token target (see "Packed").
struct PackedStream {
  std::vector<int32_t> ids;
  std::vector<int32_t> targets;
};
PackedStream pack_examples(const std::vector<SftExample>& examples, std::span<const int64_t> order);
// Rows [first_row, first_row + rows) of the stream cut every seq_len tokens, the last one padded.
SftBatch packed_rows(const PackedStream& stream, int64_t first_row, int64_t rows, int64_t seq_len, int64_t pad_id);

struct SftLoaderOptions {
  int64_t batch_size = 1;
  int64_t seq_len = 0;  // examples must be at most this long (build_sft_dataset truncates)
  bool packing = false;
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t pad_id = 0;
};

class SftLoader {
 public:
  // Errors: no examples, batch_size < 1, seq_len < 2, an example longer than seq_len, a cursor
  // outside the epoch.
  SftLoader(std::vector<SftExample> examples, const SftLoaderOptions& options, SftCursor start = {});
  SftBatch next();  // never runs out: epochs follow one another
  SftCursor cursor() const { return cursor_; }
  int64_t batches_per_epoch() const;
  int64_t units_per_epoch() const { return units_; }  // examples, or packed rows

 private:
  void prepare_epoch();

  std::vector<SftExample> examples_;
  SftLoaderOptions options_;
  SftCursor cursor_;
  int64_t units_ = 0;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;
  PackedStream stream_;
};

}  // namespace ld::tune
