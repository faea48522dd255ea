// Training and evaluation loaders over memory-mapped token shards; see loader.hpp for the design.
#include "data/loader.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <thread>

#include "core/error.hpp"
#include "core/rng.hpp"

namespace ld::data {

namespace fs = std::filesystem;

// --- cursor

void to_json(nlohmann::json& j, const LoaderCursor& c) { j = {{"epoch", c.epoch}, {"position", c.position}}; }

void from_json(const nlohmann::json& j, LoaderCursor& c) {
  LD_CHECK(j.is_object(), "loader cursor: expected {\"epoch\": e, \"position\": p}, got ", j.dump());
  for (const char* key : {"epoch", "position"}) {
    auto it = j.find(key);
    LD_CHECK(it != j.end() && it->is_number_integer() && it->get<int64_t>() >= 0, "loader cursor: \"", key,
             "\" must be a non-negative integer, got ", j.dump());
  }
  c.epoch = j.at("epoch").get<int64_t>();
  c.position = j.at("position").get<int64_t>();
}

// --- the stream

TokenStream::TokenStream(const fs::path& dir, const std::string& split)
    : dir_(dir), split_(split), index_(read_dataset_index(dir)) {
  check_shards_exist(index_, split, dir);
  const std::string index_name = (dir / kDatasetIndexFile).string();
  for (const ShardEntry& e : split_shards(index_, split, dir)) {
    ShardReader r = ShardReader::open(dir / e.file);
    LD_CHECK(r.size() == e.tokens, "token shard ", r.path().string(), ": has ", r.size(), " tokens but ", index_name,
             " says ", e.tokens, " (the folder was changed after `liandan data prepare`?)");
    LD_CHECK(r.token_width() == index_.token_width, "token shard ", r.path().string(), ": token width ",
             r.token_width(), " but ", index_name, " says ", index_.token_width);
    starts_.push_back(total_);
    total_ += r.size();
    shards_.push_back(std::move(r));
  }
}

void TokenStream::read(int64_t start, std::span<int32_t> out) const {
  const int64_t n = int64_t(out.size());
  LD_ASSERT(start >= 0 && start + n <= total_, "stream read [", start, ", ", start + n, ") of ", total_);
  // The shard holding `start`: the last one that begins at or before it (empty shards are skipped
  // by upper_bound, which lands past every shard starting at the same offset).
  size_t s = size_t(std::upper_bound(starts_.begin(), starts_.end(), start) - starts_.begin()) - 1;
  int64_t done = 0;
  while (done < n) {
    const int64_t offset = start + done - starts_[s];
    const int64_t take = std::min(n - done, shards_[s].size() - offset);
    shards_[s].read(offset, out.subspan(size_t(done), size_t(take)));
    done += take;
    ++s;
  }
}

// --- windows and batches

namespace {

int64_t count_windows(const TokenStream& s, int64_t seq_len) {
  LD_CHECK(seq_len >= 1, "data loader: seq_len must be at least 1, got ", seq_len);
  LD_CHECK(s.size() >= seq_len + 1, "dataset ", s.dir().string(), ": split '", s.split(), "' has ", s.size(),
           " tokens, fewer than seq_len + 1 = ", seq_len + 1, " (one training window)");
  return (s.size() - 1) / seq_len;
}

void check_rank(int rank, int world, int64_t batch_size) {
  LD_CHECK(batch_size >= 1, "data loader: batch_size must be at least 1, got ", batch_size);
  LD_CHECK(world >= 1 && rank >= 0 && rank < world, "data loader: rank ", rank, " is outside world size ", world);
}

// Inputs and targets of the given windows: row b is window windows[b], shifted by one for targets.
Batch make_batch(const TokenStream& s, std::span<const int64_t> windows, int64_t seq_len) {
  const int64_t rows = int64_t(windows.size());
  Batch batch{empty({rows, seq_len}, DType::i64), empty({rows, seq_len}, DType::i64), {}};
  int64_t* in = batch.inputs.data<int64_t>();
  int64_t* tg = batch.targets.data<int64_t>();
  std::vector<int32_t> window(static_cast<size_t>(seq_len + 1));
  for (int64_t b = 0; b < rows; ++b) {
    s.read(windows[size_t(b)] * seq_len, window);
    std::copy(window.begin(), window.end() - 1, in + b * seq_len);
    std::copy(window.begin() + 1, window.end(), tg + b * seq_len);
  }
  return batch;
}

}  // namespace

std::vector<int64_t> epoch_permutation(int64_t windows, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> perm(static_cast<size_t>(windows));
  std::iota(perm.begin(), perm.end(), int64_t(0));
  for (int64_t i = windows - 1; i > 0; --i) {
    const auto r = philox4x32(seed, uint64_t(epoch), uint64_t(i));
    const uint64_t draw = (uint64_t(r[0]) << 32) | r[1];
    // The modulo bias is below (i + 1) / 2^64: far below anything a training run could notice.
    std::swap(perm[size_t(i)], perm[size_t(draw % uint64_t(i + 1))]);
  }
  return perm;
}

// --- background prefetch

Prefetcher::Prefetcher(std::function<Batch()> make, size_t capacity)
    : make_(std::move(make)), capacity_(std::max(capacity, size_t(1))), thread_([this] { run(); }) {}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  not_full_.notify_all();
  thread_.join();
}

void Prefetcher::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      not_full_.wait(lock, [&] { return stop_ || ready_.size() < capacity_; });
      if (stop_) return;
    }
    Batch b;  // made outside the lock, so pop() can take finished batches meanwhile
    try {
      b = make_();
    } catch (...) {
      std::lock_guard lock(mutex_);
      error_ = std::current_exception();
      not_empty_.notify_all();
      return;  // the stream cannot go on; pop() rethrows once the queue is drained
    }
    std::lock_guard lock(mutex_);
    ready_.push_back(std::move(b));
    not_empty_.notify_one();
  }
}

Batch Prefetcher::pop() {
  std::unique_lock lock(mutex_);
  not_empty_.wait(lock, [&] { return !ready_.empty() || error_; });
  if (ready_.empty()) std::rethrow_exception(error_);
  Batch b = std::move(ready_.front());
  ready_.pop_front();
  not_full_.notify_one();
  return b;
}

// --- the training loader

DataLoader::DataLoader(const fs::path& dir, const std::string& split, const LoaderOptions& options, LoaderCursor start)
    : options_(options), stream_(std::make_shared<const TokenStream>(dir, split)), produced_(start), consumed_(start) {
  check_rank(options.rank, options.world_size, options.batch_size);
  LD_CHECK(options.prefetch >= 0, "data loader: prefetch must be >= 0, got ", options.prefetch);
  windows_ = count_windows(*stream_, options.seq_len);
  const int64_t step = options.batch_size * options.world_size;
  steps_per_epoch_ = windows_ / step;
  LD_CHECK(steps_per_epoch_ >= 1, "dataset ", dir.string(), ": split '", split, "' has ", windows_, " windows of ",
           options.seq_len + 1, " tokens, fewer than one step of batch_size ", options.batch_size, " x world size ",
           options.world_size, " = ", step);
  LD_CHECK(start.epoch >= 0 && start.position >= 0 && start.position <= windows_, "data loader: cursor {epoch ",
           start.epoch, ", position ", start.position, "} is outside an epoch of ", windows_,
           " windows (was the dataset or seq_len changed since it was saved?)");
  // A cursor saved with another batch or world size may leave less than a step in the epoch.
  if (produced_.position + step > windows_) produced_ = consumed_ = {start.epoch + 1, 0};
  if (options.prefetch > 0)
    prefetcher_ = std::make_unique<Prefetcher>([this] { return build_next(); }, size_t(options.prefetch));
}

DataLoader::~DataLoader() = default;  // the prefetcher, destroyed first, stops and joins its thread

Batch DataLoader::build_next() {
  const int64_t step = options_.batch_size * options_.world_size;
  if (order_epoch_ != produced_.epoch) {
    if (options_.shuffle) {
      order_ = epoch_permutation(windows_, options_.seed, produced_.epoch);
    } else if (order_.empty()) {
      order_.resize(size_t(windows_));
      std::iota(order_.begin(), order_.end(), int64_t(0));
    }
    order_epoch_ = produced_.epoch;
  }
  const int64_t first = produced_.position + options_.rank * options_.batch_size;
  Batch b = make_batch(*stream_, std::span<const int64_t>(order_).subspan(size_t(first), size_t(options_.batch_size)),
                       options_.seq_len);
  produced_.position += step;
  if (produced_.position + step > windows_) produced_ = {produced_.epoch + 1, 0};
  b.cursor = produced_;
  return b;
}

Batch DataLoader::next() {
  Batch b = prefetcher_ ? prefetcher_->pop() : build_next();
  consumed_ = b.cursor;
  return b;
}

// --- evaluation

EvalLoader::EvalLoader(const fs::path& dir, const std::string& split, const EvalOptions& options)
    : options_(options), stream_(std::make_shared<const TokenStream>(dir, split)), next_batch_(options.rank) {
  check_rank(options.rank, options.world_size, options.batch_size);
  LD_CHECK(options.max_batches >= 0, "eval loader: max_batches must be >= 0 (0 = all), got ", options.max_batches);
  windows_ = count_windows(*stream_, options.seq_len);
  global_batches_ = (windows_ + options.batch_size - 1) / options.batch_size;
  if (options.max_batches > 0) global_batches_ = std::min(global_batches_, options.max_batches);
}

int64_t EvalLoader::batches() const {
  return global_batches_ > options_.rank
             ? (global_batches_ - options_.rank + options_.world_size - 1) / options_.world_size
             : 0;
}

std::optional<Batch> EvalLoader::next() {
  if (next_batch_ >= global_batches_) return std::nullopt;
  const int64_t first = next_batch_ * options_.batch_size;
  const int64_t end = std::min(first + options_.batch_size, windows_);
  std::vector<int64_t> windows(size_t(end - first));
  for (int64_t w = first; w < end; ++w) windows[size_t(w - first)] = w;
  Batch b = make_batch(*stream_, windows, options_.seq_len);
  b.cursor = {0, end};
  next_batch_ += options_.world_size;
  return b;
}

}  // namespace ld::data
