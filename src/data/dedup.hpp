#pragma once
// Document deduplication for `liandan data prepare`, streaming: documents arrive one at a time, the
// first occurrence is kept, and only fixed-size hashes are remembered — never the texts.
//
//   exact    a 64-bit hash of the normalised text (NFKC, lowercase, whitespace runs collapsed to one
//            space, trimmed). Memory: one 8-byte key per kept document in an open-addressing table kept
//            between 1/4 and 1/2 full: at most 32 bytes per document (16 on average).
//   minhash  near duplicates by MinHash + LSH banding (Broder 1997; Leskovec et al., Mining of Massive
//            Datasets, ch. 3). Shingles are character n-grams (default 5) of the normalised text, so CJK
//            text, which has no spaces, is handled like any other; `num_perm` (default 128) salted
//            64-bit hashes give the signature. The signature is cut into b bands of r rows; two
//            documents are candidates when any band matches, i.e. with probability 1-(1-J^r)^b for
//            Jaccard similarity J. (b, r) are chosen from `threshold` as datasketch's MinHashLSH does:
//            the pair with b*r <= num_perm that minimises the mean of the false-positive area (the
//            curve below T) and the false-negative area (above T): 25 bands x 5 rows for T = 0.5 and
//            128 permutations. Banding alone lets through pairs well below T (at J = 0.3 one in 17 pairs
//            shares a band, and a corpus has many pairs), so by default (verify) a candidate is confirmed
//            by the signatures' estimated Jaccard >= T against the earlier document that owns the band
//            key; only then is the document a duplicate.
//            Memory per kept document: with verify, its signature (num_perm 32-bit values: 512 bytes,
//            in an array that may hold up to twice its size while growing) plus b band keys with the
//            owner's number (12 bytes, in a table 1/4 to 1/2 full: <= 48 bytes each):
//            <= 1024 + 48 b = 2224 bytes at the defaults (about 1.1 KB on average).
//            Without verify: b 8-byte keys, <= 32 b = 800 bytes (about 400 on average).
//            A 5% character edit of a text changes about 1-(0.95)^5 = 23% of its 5-gram shingles, which
//            leaves J ~ 0.63: above the default threshold 0.5.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ld::data {

enum class DedupMode { none, exact, minhash };
DedupMode parse_dedup_mode(const std::string& name);  // "none", "exact", "minhash"

struct DedupOptions {
  DedupMode mode = DedupMode::exact;
  double threshold = 0.5;  // minhash: Jaccard similarity at which documents count as near duplicates
  int num_perm = 128;
  int shingle_chars = 5;
  uint64_t seed = 1;
  bool verify = true;  // minhash: confirm band matches by estimated Jaccard >= threshold
};

// Open-addressing set of nonzero 64-bit keys (0 is mapped to 1), load factor in (1/4, 1/2].
class HashSet64 {
 public:
  bool insert(uint64_t key);  // true when new
  bool contains(uint64_t key) const;
  size_t size() const { return size_; }
  size_t memory_bytes() const { return slots_.size() * sizeof(uint64_t); }

 private:
  void grow();
  std::vector<uint64_t> slots_;
  size_t size_ = 0;
};

// Open-addressing map of nonzero 64-bit keys to 32-bit values; the first value given for a key stays.
class HashIndex64 {
 public:
  void insert(uint64_t key, uint32_t value);
  const uint32_t* find(uint64_t key) const;  // nullptr when absent
  size_t memory_bytes() const { return keys_.size() * (sizeof(uint64_t) + sizeof(uint32_t)); }

 private:
  void grow();
  std::vector<uint64_t> keys_;
  std::vector<uint32_t> values_;
  size_t size_ = 0;
};

// The text dedup compares: NFKC, lowercase, whitespace collapsed.
std::string dedup_normalize(std::string_view text);

// (bands, rows) for a threshold, as described above.
std::pair<int, int> minhash_bands_rows(double threshold, int num_perm);

// A document's fingerprint: computed on any thread, then offered to the Deduplicator in order.
struct DedupKey {
  std::vector<uint64_t> keys;       // exact: one hash; minhash: one key per band
  std::vector<uint32_t> signature;  // minhash with verify: the low 32 bits of each min-hash
};

class Deduplicator {
 public:
  explicit Deduplicator(const DedupOptions& options);
  DedupKey fingerprint(std::string_view text) const;  // thread-safe
  // True when the document is new (and remembers it); false for a duplicate of an earlier one.
  bool offer(const DedupKey& key);
  // Exact Jaccard similarity estimate of two texts' signatures (for tests and reports).
  double estimated_jaccard(std::string_view a, std::string_view b) const;
  std::vector<uint64_t> signature(std::string_view text) const;
  int bands() const { return bands_; }
  int rows() const { return rows_; }
  size_t memory_bytes() const {
    return seen_.memory_bytes() + owners_.memory_bytes() + signatures_.capacity() * sizeof(uint32_t);
  }
  const DedupOptions& options() const { return options_; }

 private:
  DedupOptions options_;
  int bands_ = 1, rows_ = 1;
  std::vector<uint64_t> salts_;
  HashSet64 seen_;                  // exact, and minhash without verify
  HashIndex64 owners_;              // minhash with verify: band key -> first kept document
  std::vector<uint32_t> signatures_;  // minhash with verify: kept documents' signatures
  uint32_t kept_ = 0;
};

}  // namespace ld::data
