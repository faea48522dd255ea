// What every Tokenizer shares: batch encoding on OpenMP threads and streaming decode.
#include "tokenizer/tokenizer.hpp"

#include <omp.h>

#include <exception>

namespace ld::tok {

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(std::span<const std::string> texts, int threads) const {
  std::vector<std::vector<int32_t>> out(texts.size());
  const int n = static_cast<int>(texts.size());
  const int use = threads > 0 ? threads : omp_get_max_threads();
  std::exception_ptr error;
  // Dynamic schedule: documents differ a lot in length.
#pragma omp parallel for schedule(dynamic, 1) num_threads(use)
  for (int i = 0; i < n; ++i) {
    try {
      out[static_cast<size_t>(i)] = encode(texts[static_cast<size_t>(i)]);
    } catch (...) {
#pragma omp critical(ld_tok_encode_batch)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
  return out;
}

namespace {
// Length of a trailing UTF-8 sequence that is started but not complete (0 if none): those bytes
// wait for the next token.
size_t incomplete_tail(const std::string& s) {
  size_t n = s.size();
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back for the lead
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > back ? back : 0;
  }
  return 0;
}
}  // namespace

std::string StreamDecoder::push(int32_t id) {
  ids_.push_back(id);
  std::string text = tokenizer_.decode(ids_);
  bool grew = text.size() > pending_.size() && text.compare(0, pending_.size(), pending_) == 0;
  if (!grew || incomplete_tail(text) > 0) return "";  // wait for the ids that complete it
  std::string ready = text.substr(pending_.size());
  // The ids just emitted become the context of the next ones.
  ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(context_));
  context_ = ids_.size();
  pending_ = tokenizer_.decode(ids_);
  return ready;
}

std::string StreamDecoder::flush() {
  std::string text = tokenizer_.decode(ids_);
  std::string rest = text.compare(0, pending_.size(), pending_) == 0 ? text.substr(pending_.size()) : text;
  ids_.clear();
  context_ = 0;
  pending_.clear();
  return rest;
}

}  // namespace ld::tok
