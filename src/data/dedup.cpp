#include "data/dedup.hpp"

#include <cmath>
#include <limits>
#include <tuple>

#include "core/error.hpp"
#include "data/filters_unicode.hpp"

namespace ld::data {

DedupMode parse_dedup_mode(const std::string& name) {
  if (name == "none") return DedupMode::none;
  if (name == "exact") return DedupMode::exact;
  if (name == "minhash") return DedupMode::minhash;
  LD_FAIL("--dedup: expected none, exact or minhash, got '", name, "'");
}

bool HashSet64::insert(uint64_t key) {
  if (key == 0) key = 1;
  if ((size_ + 1) * 2 > slots_.size()) grow();
  const size_t mask = slots_.size() - 1;
  for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
    if (slots_[i] == key) return false;
    if (slots_[i] == 0) {
      slots_[i] = key;
      ++size_;
      return true;
    }
  }
}

bool HashSet64::contains(uint64_t key) const {
  if (key == 0) key = 1;
  if (slots_.empty()) return false;
  const size_t mask = slots_.size() - 1;
  for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
    if (slots_[i] == key) return true;
    if (slots_[i] == 0) return false;
  }
}

void HashSet64::grow() {
  std::vector<uint64_t> old = std::move(slots_);
  slots_.assign(old.empty() ? 1024 : old.size() * 2, 0);
  size_ = 0;
  for (uint64_t k : old)
    if (k != 0) insert(k);
}

void HashIndex64::insert(uint64_t key, uint32_t value) {
  if (key == 0) key = 1;
  if ((size_ + 1) * 2 > keys_.size()) grow();
  const size_t mask = keys_.size() - 1;
  for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
    if (keys_[i] == key) return;
    if (keys_[i] == 0) {
      keys_[i] = key;
      values_[i] = value;
      ++size_;
      return;
    }
  }
}

const uint32_t* HashIndex64::find(uint64_t key) const {
  if (key == 0) key = 1;
  if (keys_.empty()) return nullptr;
  const size_t mask = keys_.size() - 1;
  for (size_t i = mix64(key) & mask;; i = (i + 1) & mask) {
    if (keys_[i] == key) return &values_[i];
    if (keys_[i] == 0) return nullptr;
  }
}

void HashIndex64::grow() {
  std::vector<uint64_t> old_keys = std::move(keys_);
  std::vector<uint32_t> old_values = std::move(values_);
  keys_.assign(old_keys.empty() ? 1024 : old_keys.size() * 2, 0);
  values_.assign(keys_.size(), 0);
  size_ = 0;
  for (size_t i = 0; i < old_keys.size(); ++i)
    if (old_keys[i] != 0) insert(old_keys[i], old_values[i]);
}

std::string dedup_normalize(std::string_view text) {
  const std::string lower = lowercase(normalize_unicode(text, Normalization::nfkc));
  std::string out;
  out.reserve(lower.size());
  bool space = false;
  for (const Utf8Char& c : utf8_chars(lower)) {
    if (is_space(c.cp)) {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.append(c.bytes);
  }
  return out;
}

namespace {
// Probability that a pair of similarity s becomes a candidate, integrated over [a, b] (midpoint rule).
double candidate_area(double a, double b, int bands, int rows, bool false_negative) {
  const int steps = 200;
  const double h = (b - a) / steps;
  double area = 0;
  for (int i = 0; i < steps; ++i) {
    const double s = a + (i + 0.5) * h;
    const double p = 1.0 - std::pow(1.0 - std::pow(s, rows), bands);
    area += (false_negative ? 1.0 - p : p) * h;
  }
  return area;
}
}  // namespace

std::pair<int, int> minhash_bands_rows(double threshold, int num_perm) {
  LD_CHECK(threshold > 0 && threshold < 1, "--minhash-threshold: expected a value in (0, 1), got ", threshold);
  LD_CHECK(num_perm >= 2, "minhash: need at least 2 permutations, got ", num_perm);
  double best = std::numeric_limits<double>::infinity();
  std::pair<int, int> out{1, 1};
  for (int b = 1; b <= num_perm; ++b)
    for (int r = 1; b * r <= num_perm; ++r) {
      const double err = 0.5 * candidate_area(0, threshold, b, r, false) + 0.5 * candidate_area(threshold, 1, b, r, true);
      if (err < best) {
        best = err;
        out = {b, r};
      }
    }
  return out;
}

Deduplicator::Deduplicator(const DedupOptions& options) : options_(options) {
  if (options_.mode == DedupMode::minhash) {
    LD_CHECK(options_.shingle_chars >= 1, "minhash: shingle size must be at least 1, got ", options_.shingle_chars);
    std::tie(bands_, rows_) = minhash_bands_rows(options_.threshold, options_.num_perm);
    for (int i = 0; i < options_.num_perm; ++i) salts_.push_back(mix64(options_.seed * 0x100000001B3ull + uint64_t(i)));
  }
}

std::vector<uint64_t> Deduplicator::signature(std::string_view text) const {
  const std::string norm = dedup_normalize(text);
  const std::vector<Utf8Char> chars = utf8_chars(norm);
  const size_t k = static_cast<size_t>(options_.shingle_chars);
  std::vector<uint64_t> sig(salts_.size(), std::numeric_limits<uint64_t>::max());
  const size_t shingles = chars.size() >= k ? chars.size() - k + 1 : (chars.empty() ? 0 : 1);
  for (size_t i = 0; i < shingles; ++i) {
    const size_t end = std::min(i + k, chars.size()) - 1;
    const char* b = chars[i].bytes.data();
    const char* e = chars[end].bytes.data() + chars[end].bytes.size();
    const uint64_t h = hash64(std::string_view(b, static_cast<size_t>(e - b)));
    for (size_t p = 0; p < salts_.size(); ++p) sig[p] = std::min(sig[p], mix64(h ^ salts_[p]));
  }
  return sig;
}

DedupKey Deduplicator::fingerprint(std::string_view text) const {
  DedupKey key;
  if (options_.mode == DedupMode::exact) key.keys.push_back(hash64(dedup_normalize(text), options_.seed));
  if (options_.mode != DedupMode::minhash) return key;
  const std::vector<uint64_t> sig = signature(text);
  for (int b = 0; b < bands_; ++b) {
    uint64_t h = mix64(uint64_t(b) + 0x51ED27ull);
    for (int r = 0; r < rows_; ++r) h = mix64(h ^ sig[size_t(b * rows_ + r)]);
    key.keys.push_back(h);
  }
  if (options_.verify)
    for (uint64_t v : sig) key.signature.push_back(static_cast<uint32_t>(v));
  return key;
}

bool Deduplicator::offer(const DedupKey& key) {
  if (options_.mode == DedupMode::none) return true;
  if (options_.mode == DedupMode::minhash && options_.verify) {
    const size_t n = key.signature.size();
    LD_ASSERT(n == salts_.size(), "dedup: fingerprint without a signature");
    for (uint64_t k : key.keys) {
      const uint32_t* owner = owners_.find(k);
      if (owner == nullptr) continue;
      const uint32_t* other = signatures_.data() + size_t(*owner) * n;
      size_t same = 0;
      for (size_t i = 0; i < n; ++i) same += key.signature[i] == other[i];
      if (double(same) >= options_.threshold * double(n)) return false;
    }
    LD_CHECK(kept_ < UINT32_MAX, "dedup: more than 2^32 - 1 kept documents; use --dedup exact");
    for (uint64_t k : key.keys) owners_.insert(k, kept_);
    signatures_.insert(signatures_.end(), key.signature.begin(), key.signature.end());
    ++kept_;
    return true;
  }
  for (uint64_t k : key.keys)
    if (seen_.contains(k)) return false;
  for (uint64_t k : key.keys) seen_.insert(k);
  return true;
}

double Deduplicator::estimated_jaccard(std::string_view a, std::string_view b) const {
  const auto sa = signature(a), sb = signature(b);
  if (sa.empty()) return 0.0;
  size_t same = 0;
  for (size_t i = 0; i < sa.size(); ++i) same += sa[i] == sb[i];
  return double(same) / double(sa.size());
}

}  // namespace ld::data
