#include "tokenizer/pretokenize.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <cstdlib>

#include "core/error.hpp"

namespace ld::tok {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kCl100kPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

pcre2_code* as_code(void* p) { return static_cast<pcre2_code*>(p); }

// One JIT stack and match context per thread: the default 32 KiB stack is too small for long runs
// of white space under \s+(?!\S).
pcre2_match_context* thread_match_context() {
  struct Context {
    pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
    pcre2_match_context* context = pcre2_match_context_create(nullptr);
    Context() { pcre2_jit_stack_assign(context, nullptr, stack); }
    ~Context() {
      pcre2_match_context_free(context);
      pcre2_jit_stack_free(stack);
    }
  };
  thread_local Context ctx;
  return ctx.context;
}

struct MatchData {
  pcre2_match_data* data;
  explicit MatchData(const pcre2_code* code) : data(pcre2_match_data_create_from_pattern(code, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(data); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

Pretokenizer::Pretokenizer(const std::string& pattern, const std::string& source) : pattern_(pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  uint32_t options = PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &error, &offset,
                        nullptr);
  LD_CHECK(code_ != nullptr, source, ": pre-tokenizer regex does not compile at offset ", offset, ": ",
           pcre2_message(error), " (pattern: ", pattern, ")");
  // Without JIT pcre2_match still works (interpreted), only slower.
  pcre2_jit_compile(as_code(code_), PCRE2_JIT_COMPLETE);
}

Pretokenizer::~Pretokenizer() { pcre2_code_free(as_code(code_)); }

void Pretokenizer::split(std::string_view text, const std::function<void(std::string_view)>& on_piece) const {
  MatchData match(as_code(code_));
  pcre2_match_context* context = thread_match_context();
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  size_t emitted = 0;  // text before this has been passed on
  while (pos < text.size()) {
    int rc = pcre2_match(as_code(code_), subject, text.size(), pos, 0, match.data, context);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    LD_CHECK(rc >= 0, "pre-tokenizer: regex match failed: ", pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match.data);
    size_t start = ovector[0], end = ovector[1];
    if (start > emitted) on_piece(text.substr(emitted, start - emitted));  // bytes the pattern skipped
    if (end == start) {  // an empty match: step over one byte, it joins the next gap
      emitted = start;
      pos = start + 1;
      continue;
    }
    on_piece(text.substr(start, end - start));
    emitted = pos = end;
  }
  if (emitted < text.size()) on_piece(text.substr(emitted));
}

namespace {
bool is_ascii(std::string_view text) {
  for (unsigned char c : text)
    if (c >= 0x80) return false;
  return true;
}

void append_normalized(std::string_view valid, utf8proc_option_t options, std::string& out) {
  if (valid.empty()) return;
  utf8proc_uint8_t* mapped = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(valid.data()),
                                    static_cast<utf8proc_ssize_t>(valid.size()), &mapped, options);
  if (n < 0) {  // cannot happen for valid input; keep the text rather than lose it
    out.append(valid);
    return;
  }
  out.append(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
  std::free(mapped);
}
}  // namespace

std::string nfc_normalize(std::string_view text) { return unicode_normalize(text, /*compatibility=*/false); }

std::string unicode_normalize(std::string_view text, bool compatibility) {
  if (is_ascii(text)) return std::string(text);
  const auto options = static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE |
                                                      (compatibility ? UTF8PROC_COMPAT : 0));
  std::string out;
  out.reserve(text.size());
  auto bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  size_t run_start = 0, pos = 0;
  while (pos < text.size()) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t len = utf8proc_iterate(bytes + pos, static_cast<utf8proc_ssize_t>(text.size() - pos), &cp);
    if (len > 0) {
      pos += static_cast<size_t>(len);
      continue;
    }
    append_normalized(text.substr(run_start, pos - run_start), options, out);
    out.push_back(text[pos]);  // an invalid byte stays a byte
    run_start = ++pos;
  }
  append_normalized(text.substr(run_start), options, out);
  return out;
}

}  // namespace ld::tok
