// save_tokenizer_json: tokenizer.json + tokenizer_config.json in the layout Hugging Face tokenizers
// writes itself (field names as in Qwen3's tokenizer.json), so both it and load_tokenizer read them.
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "tokenizer/byte_level_bpe.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::tok {

namespace fs = std::filesystem;
using ordered = nlohmann::ordered_json;

namespace {

ordered byte_level_component() {
  return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
}

ordered added_tokens_json(const ByteLevelBpeData& data) {
  ordered list = ordered::array();
  for (const auto& [content, id] : data.special_tokens)
    list.push_back({{"id", id},
                    {"content", content},
                    {"single_word", false},
                    {"lstrip", false},
                    {"rstrip", false},
                    {"normalized", false},
                    {"special", true}});
  return list;
}

bool is_special(const ByteLevelBpeData& data, const std::string& token) {
  for (const auto& s : data.special_tokens)
    if (s.first == token) return true;
  return false;
}

ordered model_json(const ByteLevelBpeData& data) {
  ordered vocab = ordered::object();
  for (size_t id = 0; id < data.vocab.size(); ++id)
    if (!data.vocab[id].empty() && !is_special(data, data.vocab[id])) vocab[data.vocab[id]] = id;
  // "left right" strings: every tokenizers version reads them (byte-level tokens hold no space).
  ordered merges = ordered::array();
  for (const auto& [left, right] : data.merges) merges.push_back(left + " " + right);
  return {{"type", "BPE"},
          {"dropout", nullptr},
          {"unk_token", nullptr},
          {"continuing_subword_prefix", ""},
          {"end_of_word_suffix", ""},
          {"fuse_unk", false},
          {"byte_fallback", false},
          {"ignore_merges", false},
          {"vocab", std::move(vocab)},
          {"merges", std::move(merges)}};
}

ordered tokenizer_json(const ByteLevelBpeData& data) {
  ordered split = {{"type", "Split"},
                   {"pattern", {{"Regex", resolve_pattern(data.pattern)}}},
                   {"behavior", "Isolated"},
                   {"invert", false}};
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added_tokens_json(data)},
          {"normalizer", nullptr},
          {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {split, byte_level_component()}}}},
          {"post_processor", byte_level_component()},
          {"decoder", byte_level_component()},
          {"model", model_json(data)}};
}

ordered tokenizer_config_json(const ByteLevelBpeData& data) {
  ordered decoder = ordered::object();
  for (const auto& [content, id] : data.special_tokens)
    decoder[std::to_string(id)] = {{"content", content}, {"lstrip", false}, {"normalized", false},
                                   {"rstrip", false},    {"single_word", false}, {"special", true}};
  ordered config = {{"add_bos_token", false},
                    {"add_prefix_space", false},
                    {"added_tokens_decoder", std::move(decoder)},
                    {"bos_token", nullptr},
                    {"clean_up_tokenization_spaces", false},
                    {"tokenizer_class", "PreTrainedTokenizerFast"},
                    {"unk_token", nullptr}};
  // The first special token ends documents (the trainer's convention, e.g. <|endoftext|>).
  config["eos_token"] = data.special_tokens.empty() ? ordered(nullptr) : ordered(data.special_tokens[0].first);
  if (!data.chat_template.empty()) config["chat_template"] = data.chat_template;
  return config;
}

}  // namespace

void save_tokenizer_json(const ByteLevelBpeData& data, const fs::path& dir) {
  // Build first: a tokenizer that does not load must not be written.
  make_byte_level_tokenizer(data);
  std::error_code ec;
  fs::create_directories(dir, ec);
  LD_CHECK(!ec, dir.string(), ": cannot create folder: ", ec.message());
  std::string tokenizer_text, config_text;
  try {
    tokenizer_text = tokenizer_json(data).dump(2);
    config_text = tokenizer_config_json(data).dump(2);
  } catch (const nlohmann::json::exception& e) {  // a special token or template that is not UTF-8
    LD_FAIL(dir.string(), ": cannot write tokenizer.json: ", e.what());
  }
  write_file_atomically(dir / "tokenizer.json", tokenizer_text);
  write_file_atomically(dir / "tokenizer_config.json", config_text);
}

}  // namespace ld::tok
