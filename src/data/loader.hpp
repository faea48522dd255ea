#pragma once
// Training and evaluation batches from a prepared dataset folder (see dataset_index.hpp).
//
// The stream. A split's shards are memory-mapped and concatenated in index order into one token
// stream of N tokens. Documents are packed: EOS ids (written by `liandan data prepare`) separate
// them, and a window may span several documents.
//
// Windows. Window k holds tokens [k*T, k*T + T + 1): T + 1 tokens with stride T, so neighbouring
// windows share one token and every token but the first is a target exactly once per epoch. There
// are W = floor((N - 1) / T) windows; the partial window at the end is dropped. A batch of B
// windows gives inputs = tokens 0..T-1 and targets = tokens 1..T of each window, both [B, T] i64.
//
// Epochs. Epoch e visits the windows in the order of a permutation of 0..W-1: a Fisher-Yates
// shuffle whose draws are Philox-4x32 (core/rng.hpp) keyed by the seed, with the epoch as the high
// counter and the shuffle position as the low one. The same seed gives the same order on every
// machine and thread count; `shuffle = false` keeps the windows in stream order.
//
// Ranks. The permutation is consumed one global step of B * world windows at a time; in a step
// starting at position p, rank r takes permutation entries [p + r*B, p + (r+1)*B). Ranks never
// overlap, every rank gets the same number of batches, and together they use each window at most
// once per epoch. An epoch has floor(W / (B * world)) steps; the last W mod (B * world) entries of
// each epoch's permutation are skipped (a different set of windows each epoch).
//
// Cursor. {epoch, position}: position counts the permutation entries that all ranks together have
// consumed in that epoch, so every rank holds the same cursor and the trainer saves one. After an
// epoch's last step the cursor reads {epoch + 1, 0}. A loader built from a saved cursor yields
// exactly the batches an uninterrupted run would have yielded after that point. (Resumed with a
// different batch size or world size it continues with the windows that epoch has not used yet.)
//
// Prefetch. With prefetch = N > 0 a background thread keeps up to N finished batches in a bounded
// queue; next() pops one (waiting only if the queue is empty), and the thread builds the next batch
// only when there is room. An exception in the thread (a shard that cannot be read) is rethrown by
// next() once the batches made before it are consumed. The destructor stops and joins the thread.
// Memory held by the loader, besides the batches the caller keeps:
//   N batches * 2 tensors * B * T * 8 bytes   (the queue; at most N, never N + 1)
//   + 8 bytes * W                             (the current epoch's permutation)
// plus the mapped shards, which are page cache, not private memory. prefetch = 0 builds each batch
// on the caller's thread, with identical results.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/tensor.hpp"
#include "data/dataset_index.hpp"
#include "data/token_shard.hpp"

namespace ld::data {

struct LoaderCursor {
  int64_t epoch = 0;
  int64_t position = 0;  // permutation entries consumed by all ranks together in `epoch`
  bool operator==(const LoaderCursor&) const = default;
};
// For trainer_state.json: {"epoch": e, "position": p}. from_json errors are ld::Error.
void to_json(nlohmann::json& j, const LoaderCursor& c);
void from_json(const nlohmann::json& j, LoaderCursor& c);

struct Batch {
  Tensor inputs;        // [B, T] i64
  Tensor targets;       // [B, T] i64, inputs shifted left by one token
  LoaderCursor cursor;  // where a run resumes after this batch (save it with the step that used it)
};

// The split's shards as one stream of ids (see the top of this file). Opening checks that every
// listed shard exists and that its header agrees with index.json (token count, width).
class TokenStream {
 public:
  TokenStream(const std::filesystem::path& dir, const std::string& split);
  int64_t size() const { return total_; }
  const DatasetIndex& index() const { return index_; }
  const std::string& split() const { return split_; }
  const std::filesystem::path& dir() const { return dir_; }
  // ids [start, start + out.size()) of the concatenated stream, across shard boundaries.
  void read(int64_t start, std::span<int32_t> out) const;

 private:
  std::filesystem::path dir_;
  std::string split_;
  DatasetIndex index_;
  std::vector<ShardReader> shards_;
  std::vector<int64_t> starts_;  // stream offset of each shard's first token
  int64_t total_ = 0;
};

// A bounded queue of items made ahead by a background thread (see "Prefetch" above). pop() waits
// for the next item; an exception thrown by `make` is rethrown by pop() (and every later pop())
// once the items made before it are consumed. The destructor stops and joins the thread.
class Prefetcher {
 public:
  Prefetcher(std::function<Batch()> make, size_t capacity);  // capacity: at least 1
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;
  Batch pop();

 private:
  void run();

  std::function<Batch()> make_;
  size_t capacity_;
  std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Batch> ready_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread thread_;  // last: started once the members above exist
};

// The order in which epoch `epoch` visits windows 0..windows-1 (see "Epochs" above).
std::vector<int64_t> epoch_permutation(int64_t windows, uint64_t seed, int64_t epoch);

struct LoaderOptions {
  int64_t batch_size = 1;  // B: windows per batch on each rank
  int64_t seq_len = 0;     // T: tokens per input row
  uint64_t seed = 0;
  bool shuffle = true;
  int rank = 0;
  int world_size = 1;
  int prefetch = 2;  // batches built ahead on a background thread; 0 = build in next()
};

class DataLoader {
 public:
  // Errors (all before any thread starts): index.json missing or bad, a listed shard missing or
  // disagreeing with the index, a split shorter than T + 1 tokens or than one global step, a bad
  // rank, a cursor outside the epoch.
  DataLoader(const std::filesystem::path& dir, const std::string& split, const LoaderOptions& options,
             LoaderCursor start = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  Batch next();  // never runs out: epochs follow one another
  // The cursor after the last batch next() returned (the starting cursor before the first).
  LoaderCursor cursor() const { return consumed_; }

  int64_t windows() const { return windows_; }                  // W
  int64_t steps_per_epoch() const { return steps_per_epoch_; }  // batches per rank per epoch
  const TokenStream& stream() const { return *stream_; }

 private:
  Batch build_next();  // the batch at produced_, advancing it

  LoaderOptions options_;
  std::shared_ptr<const TokenStream> stream_;
  int64_t windows_ = 0, steps_per_epoch_ = 0;
  LoaderCursor produced_, consumed_;
  int64_t order_epoch_ = -1;
  std::vector<int64_t> order_;              // permutation of order_epoch_
  std::unique_ptr<Prefetcher> prefetcher_;  // last: its thread uses the members above
};

struct EvalOptions {
  int64_t batch_size = 1;
  int64_t seq_len = 0;
  int64_t max_batches = 0;  // K: only the first K batches of the split (0 = all of them)
  int rank = 0;
  int world_size = 1;
};

// The split's windows in stream order (no shuffle), B at a time; the final batch may have fewer
// than B rows so that every window is scored. Global batch j goes to rank j % world, so ranks may
// differ by one batch (sum losses and token counts, then all-reduce once). K caps the global
// batches, so the same windows are scored for any world size.
class EvalLoader {
 public:
  EvalLoader(const std::filesystem::path& dir, const std::string& split, const EvalOptions& options);
  std::optional<Batch> next();  // nullopt at the end; cursor fields are {0, windows consumed}
  void reset() { next_batch_ = options_.rank; }
  int64_t windows() const { return windows_; }
  int64_t batches() const;  // this rank's count

 private:
  EvalOptions options_;
  std::shared_ptr<const TokenStream> stream_;
  int64_t windows_ = 0, global_batches_ = 0, next_batch_ = 0;
};

}  // namespace ld::data
