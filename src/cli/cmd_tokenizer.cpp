// `liandan tokenizer encode|decode|train`. encode prints ids (one line) or JSON; decode prints the
// text. `train` is registered by add_tokenizer_train (cmd_tokenizer_train.cpp).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::cli {

namespace {

struct EncodeArgs {
  std::string tokenizer, text, input, output = "ids";
  bool add_special = false;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in.good(), path, ": cannot open input file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_stdout(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

void run_encode(const EncodeArgs& a) {
  auto tokenizer = tok::load_tokenizer(a.tokenizer);
  std::string text = a.input.empty() ? a.text : read_all(a.input);
  std::vector<int32_t> ids = tokenizer->encode(text, a.add_special);
  if (a.output == "json") {
    nlohmann::json tokens = nlohmann::json::array();
    for (int32_t id : ids) tokens.push_back(tokenizer->id_to_token(id));
    nlohmann::json out = {{"ids", ids}, {"tokens", tokens}};
    write_stdout(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    return;
  }
  std::string line;
  line.reserve(ids.size() * 6 + 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) line += ' ';
    line += std::to_string(ids[i]);
  }
  write_stdout(line + "\n");
}

std::vector<int32_t> parse_ids(const std::string& text) {
  std::vector<int32_t> ids;
  std::string cleaned = text;
  for (char& c : cleaned)
    if (c == ',' || c == '[' || c == ']' || c == '\n' || c == '\t') c = ' ';
  std::istringstream in(cleaned);
  std::string word;
  while (in >> word) {
    try {
      size_t used = 0;
      long long v = std::stoll(word, &used);
      LD_CHECK(used == word.size() && v >= 0 && v <= INT32_MAX, "");
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::exception&) {
      LD_FAIL("--ids: '", word, "' is not a token id (expected non-negative integers separated by spaces or commas)");
    }
  }
  return ids;
}

void run_decode(const std::string& tokenizer_path, const std::string& ids_text, bool skip_special) {
  auto tokenizer = tok::load_tokenizer(tokenizer_path);
  std::string text = tokenizer->decode(parse_ids(ids_text), skip_special);
  write_stdout(text);
  if (isatty(fileno(stdout))) write_stdout("\n");  // exact bytes when piped
}

void add_encode(CLI::App& parent, std::function<void()>& run) {
  auto* cmd = parent.add_subcommand("encode", "Encode text into token ids");
  auto a = std::make_shared<EncodeArgs>();
  cmd->add_option("--tokenizer", a->tokenizer,
                  "folder with tokenizer.json, or with encoder.json + vocab.bpe, or a SentencePiece .model")
      ->required();
  auto* text = cmd->add_option("--text", a->text, "text to encode");
  auto* input = cmd->add_option("--input", a->input, "file whose bytes to encode");
  text->excludes(input);
  cmd->add_option("--output", a->output, "ids: one line of ids separated by spaces; json: ids and tokens")
      ->check(CLI::IsMember({"ids", "json"}))
      ->capture_default_str();
  cmd->add_flag("--add-special", a->add_special, "add the post-processor's special tokens (e.g. BOS)");
  run = [a, text, input] {
    LD_CHECK(text->count() + input->count() == 1, "tokenizer encode: give --text STR or --input FILE");
    run_encode(*a);
  };
}

void add_decode(CLI::App& parent, std::function<void()>& run) {
  auto* cmd = parent.add_subcommand("decode", "Decode token ids into text");
  auto path = std::make_shared<std::string>();
  auto ids = std::make_shared<std::string>();
  auto skip_special = std::make_shared<bool>(false);
  cmd->add_option("--tokenizer", *path, "folder with tokenizer.json, or with encoder.json + vocab.bpe, or a .model")
      ->required();
  cmd->add_option("--ids", *ids, "token ids separated by spaces or commas")->required();
  cmd->add_flag("--skip-special", *skip_special, "leave special tokens out of the text");
  run = [=] { run_decode(*path, *ids, *skip_special); };
}

}  // namespace

void add_tokenizer_command(CLI::App& app, std::function<void()>& run) {
  add_command_group(app, run, "tokenizer", "Encode, decode and train tokenizers",
                    {add_encode, add_decode, add_tokenizer_train});
}

}  // namespace ld::cli
