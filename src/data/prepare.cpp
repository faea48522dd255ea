#include "data/prepare.hpp"

#include <omp.h>

#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "data/dataset_index.hpp"
#include "data/token_shard.hpp"

namespace ld::data {

namespace fs = std::filesystem;

std::optional<int32_t> find_eos_id(const tok::Tokenizer& tokenizer) {
  for (const char* name : {"<|endoftext|>", "</s>", "<|end_of_text|>", "<eos>", "<|im_end|>"})
    if (auto id = tokenizer.token_to_id(name)) return id;
  return std::nullopt;
}

namespace {

using Clock = std::chrono::steady_clock;

// f(i) for i in [0, n) on `threads` threads; the first exception is rethrown after the loop.
template <typename F>
void parallel_for(int64_t n, int threads, const F& f) {
  std::exception_ptr error;
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
  for (int64_t i = 0; i < n; ++i) {
    try {
      f(i);
    } catch (...) {
#pragma omp critical(ld_prepare_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// The shards of one split: a writer open at a time, closed before it would pass the cap.
class SplitWriter {
 public:
  SplitWriter(fs::path dir, std::string name, int width, int64_t cap)
      : dir_(std::move(dir)), name_(std::move(name)), width_(width), cap_(cap) {}

  void add(const std::vector<int32_t>& ids, int32_t eos) {
    const int64_t need = int64_t(ids.size()) + 1;
    if (writer_ && writer_->documents() > 0 && writer_->tokens() + need > cap_) close();
    if (!writer_) {
      char file[64];
      std::snprintf(file, sizeof file, "%s-%05zu.bin", name_.c_str(), shards_.size());
      shards_.push_back({file, 0, 0});
      writer_ = std::make_unique<ShardWriter>(dir_ / file, width_);
    }
    writer_->append_document(ids, eos);
  }
  void close() {
    if (!writer_) return;
    writer_->finish();
    shards_.back().tokens = writer_->tokens();
    shards_.back().documents = writer_->documents();
    writer_.reset();
  }
  const std::vector<ShardEntry>& shards() const { return shards_; }

 private:
  fs::path dir_;
  std::string name_;
  int width_;
  int64_t cap_;
  std::unique_ptr<ShardWriter> writer_;
  std::vector<ShardEntry> shards_;
};

struct Slot {
  Document doc;
  FilterOutcome outcome;
  bool normalized = false;
  DedupKey key;
};

class Pipeline {
 public:
  Pipeline(const PrepareOptions& o, const tok::Tokenizer& tokenizer, const fs::path& dir, PrepareReport& report)
      : o_(o),
        tokenizer_(tokenizer),
        report_(report),
        dedup_(o.dedup),
        threads_(o.threads > 0 ? o.threads : omp_get_max_threads()),
        train_(dir, "train", report.token_width, o.shard_tokens),
        val_(dir, "val", report.token_width, o.shard_tokens) {
    report_.dedup_mode = o.dedup.mode == DedupMode::none ? "none" : o.dedup.mode == DedupMode::exact ? "exact" : "minhash";
    report_.minhash_bands = o.dedup.mode == DedupMode::minhash ? dedup_.bands() : 0;
    report_.minhash_rows = o.dedup.mode == DedupMode::minhash ? dedup_.rows() : 0;
  }

  void push(Document&& doc) {
    batch_.push_back({std::move(doc), {}, false, {}});
    if (int64_t(batch_.size()) >= o_.batch_documents) flush();
  }

  void flush() {
    if (batch_.empty()) return;
    report_.documents_read += int64_t(batch_.size());
    parallel_for(int64_t(batch_.size()), threads_, [&](int64_t i) {
      Slot& s = batch_[size_t(i)];
      s.outcome = clean_document(s.doc.text, o_.filters, &s.normalized);
      if (s.outcome.reason == DropReason::kept) s.key = dedup_.fingerprint(s.doc.text);
    });
    std::vector<std::string> texts;
    for (Slot& s : batch_) {
      report_.filters.add(s.outcome, s.normalized);
      if (s.outcome.reason != DropReason::kept) continue;
      if (!dedup_.offer(s.key)) {
        ++report_.duplicates;
        continue;
      }
      texts.push_back(std::move(s.doc.text));
    }
    batch_.clear();
    const auto ids = tokenizer_.encode_batch(texts, threads_);
    for (size_t i = 0; i < texts.size(); ++i) {
      const bool val = goes_to_val(texts[i]);
      (val ? val_ : train_).add(ids[i], report_.eos_id);
      SplitStats& st = report_.splits[val ? "val" : "train"];
      ++st.documents;
      st.tokens += int64_t(ids[i].size()) + 1;
    }
  }

  void finish() {
    flush();
    train_.close();
    val_.close();
    report_.splits["train"].shards = int64_t(train_.shards().size());
    report_.splits["val"].shards = int64_t(val_.shards().size());
    report_.dedup_memory_bytes = dedup_.memory_bytes();
  }

  const std::vector<ShardEntry>& shards(bool val) const { return (val ? val_ : train_).shards(); }

 private:
  bool goes_to_val(const std::string& text) const {
    if (o_.val_fraction <= 0) return false;
    const uint64_t h = hash64(text, o_.split_seed ^ 0x7A1D5EEDull);
    return double(h >> 11) * 0x1.0p-53 < o_.val_fraction;
  }

  const PrepareOptions& o_;
  const tok::Tokenizer& tokenizer_;
  PrepareReport& report_;
  Deduplicator dedup_;
  int threads_;
  SplitWriter train_, val_;
  std::vector<Slot> batch_;
};

void check_options(const PrepareOptions& o) {
  LD_CHECK(!o.inputs.empty(), "data prepare: no --input given");
  LD_CHECK(o.val_fraction >= 0 && o.val_fraction < 1, "--val-fraction: expected a value in [0, 1), got ", o.val_fraction);
  LD_CHECK(o.shard_tokens >= 1, "--shard-tokens: expected a positive count, got ", o.shard_tokens);
  LD_CHECK(o.filters.min_chars >= 0 && o.filters.max_chars >= o.filters.min_chars, "--min-chars/--max-chars: need 0 <= min <= max, got ",
           o.filters.min_chars, " and ", o.filters.max_chars);
  LD_CHECK(o.threads >= 0, "--threads: expected 0 (all cores) or more, got ", o.threads);
  LD_CHECK(o.batch_documents >= 1, "data prepare: batch size must be positive");
}

}  // namespace

PrepareReport prepare_dataset(const PrepareOptions& o) {
  const auto start = Clock::now();
  check_options(o);
  check_output_folder(o.out, o.force);  // fail before any heavy work
  const std::vector<fs::path> files = list_input_files(o.inputs);
  auto tokenizer = tok::load_tokenizer(o.tokenizer);
  PrepareReport report;
  report.files = int64_t(files.size());
  report.vocab_size = tokenizer->vocab_size();
  if (o.eos_id) {
    report.eos_id = *o.eos_id;
  } else {
    auto eos = find_eos_id(*tokenizer);
    LD_CHECK(eos.has_value(), o.tokenizer.string(),
             ": the tokenizer has no end-of-text token (<|endoftext|>, </s>, ...); pass --eos-id");
    report.eos_id = *eos;
  }
  LD_CHECK(report.eos_id >= 0 && report.eos_id < report.vocab_size, "--eos-id: ", report.eos_id,
           " is outside the vocabulary of ", report.vocab_size, " tokens");
  report.token_width = token_width_for(report.vocab_size);

  ReaderOptions reader = o.reader;
  if (o.skip_bad_lines)
    reader.on_bad_line = [&report](const std::string& what) {
      if (report.bad_lines_skipped++ < 5) std::fprintf(stderr, "warning: skipped %s\n", what.c_str());
    };
  write_folder_atomically(o.out, o.force, [&](const fs::path& dir) {
    Pipeline pipeline(o, *tokenizer, dir, report);
    for (const fs::path& file : files) {
      int64_t shown = report.documents_read;
      report.bytes_read += read_documents(file, reader, [&](Document&& d) {
        pipeline.push(std::move(d));
        if (o.progress && report.documents_read != shown) {  // a batch went through
          shown = report.documents_read;
          o.progress({shown, report.bytes_read, std::chrono::duration<double>(Clock::now() - start).count()});
        }
      });
    }
    pipeline.finish();
    LD_CHECK(report.documents_read > 0, "data prepare: the corpus is empty: no documents in ", files.size(),
             " input file(s)");
    int64_t kept = 0;
    for (const auto& [split, stats] : report.splits) kept += stats.documents;
    LD_CHECK(kept > 0, "data prepare: all ", report.documents_read,
             " documents were dropped by the filters or dedup (see the counts with less strict options)");
    DatasetIndex index;
    index.tokenizer = o.tokenizer.string();
    index.vocab_size = report.vocab_size;
    index.eos_id = report.eos_id;
    index.token_width = report.token_width;
    index.splits["train"] = pipeline.shards(false);
    index.splits["val"] = pipeline.shards(true);
    write_dataset_index(dir, index);
    report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    write_file_atomically(dir / "report.json", report_to_json(report).dump(2) + "\n");
  });
  if (o.progress) o.progress({report.documents_read, report.bytes_read, report.seconds});
  return report;
}

nlohmann::json report_to_json(const PrepareReport& r) {
  nlohmann::json dropped = nlohmann::json::object();
  for (int i = 1; i < kDropReasons; ++i) dropped[drop_reason_name(DropReason(i))] = r.filters.dropped[size_t(i)];
  const FilterCounts& f = r.filters;
  nlohmann::json splits = nlohmann::json::object();
  for (const auto& [name, s] : r.splits)
    splits[name] = {{"documents", s.documents}, {"tokens", s.tokens}, {"shards", s.shards}};
  const double secs = r.seconds > 0 ? r.seconds : 1e-9;
  return {{"files", r.files},
          {"documents_read", r.documents_read},
          {"bad_lines_skipped", r.bad_lines_skipped},
          {"bytes_read", r.bytes_read},
          {"dropped", dropped},
          {"modified",
           {{"normalized", f.docs_normalized},
            {"control_stripped", f.docs_control_stripped},
            {"control_chars_removed", f.control_chars_removed},
            {"boilerplate", f.docs_boilerplate},
            {"boilerplate_lines_removed", f.boilerplate_lines_removed},
            {"masked", f.docs_masked},
            {"emails_masked", f.emails_masked},
            {"phones_masked", f.phones_masked}}},
          {"after_filters", f.kept()},
          {"dedup",
           {{"mode", r.dedup_mode},
            {"duplicates_removed", r.duplicates},
            {"minhash_bands", r.minhash_bands},
            {"minhash_rows", r.minhash_rows},
            {"memory_bytes", r.dedup_memory_bytes}}},
          {"kept", f.kept() - r.duplicates},
          {"splits", splits},
          {"eos_id", r.eos_id},
          {"vocab_size", r.vocab_size},
          {"token_width", r.token_width},
          {"seconds", r.seconds},
          {"documents_per_second", double(r.documents_read) / secs},
          {"mb_per_second", double(r.bytes_read) / 1e6 / secs}};
}

std::string report_table(const PrepareReport& r) {
  std::string out;
  char line[160];
  auto row = [&](const char* name, int64_t value) {
    std::snprintf(line, sizeof line, "  %-34s %14lld\n", name, static_cast<long long>(value));
    out += line;
  };
  const FilterCounts& f = r.filters;
  row("files", r.files);
  row("documents read", r.documents_read);
  if (r.bad_lines_skipped > 0) row("bad lines skipped", r.bad_lines_skipped);
  for (int i = 1; i < kDropReasons; ++i) {
    std::string name = std::string("dropped: ") + drop_reason_name(DropReason(i));
    row(name.c_str(), f.dropped[size_t(i)]);
  }
  row("modified: boilerplate lines removed", f.boilerplate_lines_removed);
  row("modified: e-mails masked", f.emails_masked);
  row("modified: phones masked", f.phones_masked);
  row("modified: control chars removed", f.control_chars_removed);
  row(("duplicates removed (" + r.dedup_mode + ")").c_str(), r.duplicates);
  row("documents kept", f.kept() - r.duplicates);
  for (const auto& [name, s] : r.splits) {
    row((name + " documents").c_str(), s.documents);
    row((name + " tokens").c_str(), s.tokens);
    row((name + " shards").c_str(), s.shards);
  }
  const double secs = r.seconds > 0 ? r.seconds : 1e-9;
  std::snprintf(line, sizeof line, "  %.2f s, %.0f documents/s, %.2f MB/s\n", r.seconds, double(r.documents_read) / secs,
                double(r.bytes_read) / 1e6 / secs);
  out += line;
  return out;
}

}  // namespace ld::data
