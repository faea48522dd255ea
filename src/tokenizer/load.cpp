// load_tokenizer: a folder with tokenizer.json (Hugging Face), a folder with encoder.json + vocab.bpe
// (GPT-2's original files), or a SentencePiece .model file.
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "tokenizer/byte_level_bpe.hpp"
#include "tokenizer/pretokenize.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::tok {

namespace fs = std::filesystem;
using nlohmann::json;

std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& path);  // sentencepiece.cpp

namespace {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in.good(), path.string(), ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json parse_json(const fs::path& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    LD_FAIL(path.string(), ": not valid JSON: ", e.what());
  }
}

// ---------------------------------------------------------------- GPT-2: encoder.json + vocab.bpe

std::unique_ptr<Tokenizer> load_gpt2(const fs::path& dir) {
  fs::path encoder_path = dir / "encoder.json", merges_path = dir / "vocab.bpe";
  json encoder = parse_json(encoder_path);
  LD_CHECK(encoder.is_object(), encoder_path.string(), ": expected an object mapping tokens to ids");
  ByteLevelConfig config;
  config.source = merges_path.string();
  for (const auto& [token, id] : encoder.items()) {
    LD_CHECK(id.is_number_integer(), encoder_path.string(), ": the id of '", token, "' is not an integer");
    config.vocab.emplace(token, id.get<int32_t>());
  }
  std::istringstream lines(read_file(merges_path));
  std::string line;
  for (size_t number = 1; std::getline(lines, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (number == 1 && line.rfind("#version", 0) == 0)) continue;
    size_t space = line.find(' ');
    LD_CHECK(space != std::string::npos && line.find(' ', space + 1) == std::string::npos, merges_path.string(),
             " line ", number, ": expected two tokens separated by one space, got '", line, "'");
    config.merges.push_back({line.substr(0, space), line.substr(space + 1), "line " + std::to_string(number)});
  }
  if (auto it = config.vocab.find("<|endoftext|>"); it != config.vocab.end())
    config.added_tokens.push_back({"<|endoftext|>", it->second, true});
  config.pattern = kGpt2Pattern;
  return make_byte_level_tokenizer(std::move(config));
}

// ---------------------------------------------------------------- Hugging Face tokenizer.json

struct HfReader {
  std::string file;

  [[noreturn]] void unsupported(const std::string& component, const json& j, const std::string& supported) const {
    std::string type = j.is_object() && j.contains("type") ? j["type"].dump() : j.dump();
    if (type.size() > 200) type = type.substr(0, 200) + "...";
    LD_FAIL(file, ": unsupported ", component, " ", type, " (supported: ", supported, ")");
  }

  static std::string type_of(const json& j) {
    return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
  }

  static bool flag(const json& j, const char* key, bool fallback) {
    return j.contains(key) && j[key].is_boolean() ? j[key].get<bool>() : fallback;
  }

  void read_model(const json& model, ByteLevelConfig& config) const {
    LD_CHECK(model.is_object(), file, ": 'model' is missing or not an object");
    std::string type = type_of(model);
    if (type != "BPE" && !(type.empty() && model.contains("merges"))) unsupported("model", model, "BPE");
    auto empty_or_null = [&](const char* key) {
      return !model.contains(key) || model[key].is_null() || (model[key].is_string() && model[key] == "");
    };
    for (const char* key : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"})
      LD_CHECK(empty_or_null(key), file, ": unsupported BPE model option ", key, "=", model[key].dump());
    LD_CHECK(!flag(model, "byte_fallback", false), file, ": unsupported BPE model option byte_fallback=true");
    config.ignore_merges = flag(model, "ignore_merges", false);
    LD_CHECK(model.contains("vocab") && model["vocab"].is_object(), file, ": model.vocab is missing or not an object");
    for (const auto& [token, id] : model["vocab"].items()) {
      LD_CHECK(id.is_number_integer(), file, ": model.vocab: the id of '", token, "' is not an integer");
      config.vocab.emplace(token, id.get<int32_t>());
    }
    LD_CHECK(model.contains("merges") && model["merges"].is_array(), file, ": model.merges is missing or not an array");
    const json& merges = model["merges"];
    for (size_t i = 0; i < merges.size(); ++i) config.merges.push_back(read_merge(merges[i], i));
  }

  MergeEntry read_merge(const json& m, size_t index) const {
    std::string where = "model.merges[" + std::to_string(index) + "]";
    if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
      return {m[0].get<std::string>(), m[1].get<std::string>(), where};
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      size_t space = s.find(' ');
      if (space != std::string::npos && s.find(' ', space + 1) == std::string::npos)
        return {s.substr(0, space), s.substr(space + 1), where};
    }
    LD_FAIL(file, ": ", where, " is ", m.dump(), "; expected \"left right\" or [\"left\", \"right\"]");
  }

  void read_normalizer(const json& n, ByteLevelConfig& config) const {
    if (n.is_null()) return;
    std::string type = type_of(n);
    if (type == "NFC") {
      config.nfc = true;
    } else if (type == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
      for (const json& inner : n["normalizers"]) read_normalizer(inner, config);
    } else {
      unsupported("normalizer", n, "NFC, a Sequence of NFC, or null");
    }
  }

  // ByteLevel alone (its own GPT-2 regex), or Sequence [Split(Regex, Isolated), ByteLevel(use_regex=false)].
  void read_pre_tokenizer(const json& p, ByteLevelConfig& config) const {
    const char* supported = "ByteLevel, or a Sequence of Split (Regex, Isolated) and ByteLevel (use_regex false)";
    std::string type = type_of(p);
    if (type == "ByteLevel") {
      check_byte_level(p, "pre_tokenizer");
      config.pattern = flag(p, "use_regex", true) ? kGpt2Pattern : R"([\s\S]+)";
      return;
    }
    if (type != "Sequence" || !p.contains("pretokenizers") || !p["pretokenizers"].is_array() ||
        p["pretokenizers"].size() != 2)
      unsupported("pre_tokenizer", p, supported);
    const json& split = p["pretokenizers"][0];
    const json& byte_level = p["pretokenizers"][1];
    if (type_of(split) != "Split") unsupported("pre_tokenizer", split, supported);
    if (type_of(byte_level) != "ByteLevel" || flag(byte_level, "use_regex", true))
      unsupported("pre_tokenizer", byte_level, supported);
    check_byte_level(byte_level, "pre_tokenizer");
    LD_CHECK(split.value("behavior", "") == "Isolated" && !flag(split, "invert", false), file,
             ": unsupported pre_tokenizer Split behavior ", split.value("behavior", "?"),
             " (supported: Isolated, invert false)");
    const json& pattern = split.contains("pattern") ? split["pattern"] : json();
    LD_CHECK(pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string(), file,
             ": unsupported pre_tokenizer Split pattern ", pattern.dump(), " (supported: {\"Regex\": ...})");
    config.pattern = pattern["Regex"].get<std::string>();
  }

  void check_byte_level(const json& j, const char* component) const {
    LD_CHECK(!flag(j, "add_prefix_space", false), file, ": unsupported ", component,
             " ByteLevel option add_prefix_space=true");
  }

  void read_post_processor(const json& p, ByteLevelConfig& config) const {
    if (p.is_null()) return;
    std::string type = type_of(p);
    if (type == "ByteLevel") return;  // only adjusts offsets
    if (type == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
      for (const json& inner : p["processors"]) read_post_processor(inner, config);
      return;
    }
    if (type != "TemplateProcessing" || !p.contains("single") || !p["single"].is_array())
      unsupported("post_processor", p, "ByteLevel, TemplateProcessing, a Sequence of those, or null");
    config.prefix.clear();
    config.suffix.clear();
    bool after_text = false;
    for (const json& piece : p["single"]) {
      if (piece.contains("Sequence")) {
        after_text = true;
        continue;
      }
      LD_CHECK(piece.contains("SpecialToken") && piece["SpecialToken"].contains("id"), file,
               ": post_processor TemplateProcessing: unsupported piece ", piece.dump());
      std::string name = piece["SpecialToken"]["id"].get<std::string>();
      std::vector<int32_t> ids = template_token_ids(p, name);
      auto& target = after_text ? config.suffix : config.prefix;
      target.insert(target.end(), ids.begin(), ids.end());
    }
  }

  std::vector<int32_t> template_token_ids(const json& p, const std::string& name) const {
    LD_CHECK(p.contains("special_tokens") && p["special_tokens"].contains(name) &&
                 p["special_tokens"][name].contains("ids"),
             file, ": post_processor TemplateProcessing uses '", name, "' but its special_tokens do not define it");
    return p["special_tokens"][name]["ids"].get<std::vector<int32_t>>();
  }

  void read_decoder(const json& d) const {
    if (d.is_null() || type_of(d) == "ByteLevel") return;
    unsupported("decoder", d, "ByteLevel or null");
  }

  std::vector<AddedToken> read_added_tokens(const json& list) const {
    std::vector<AddedToken> out;
    if (list.is_null()) return out;
    LD_CHECK(list.is_array(), file, ": added_tokens is not an array");
    for (const json& t : list) {
      LD_CHECK(t.contains("id") && t["id"].is_number_integer() && t.contains("content") && t["content"].is_string(),
               file, ": added token ", t.dump(), " lacks an integer id or a string content");
      for (const char* option : {"lstrip", "rstrip", "single_word"})
        LD_CHECK(!flag(t, option, false), file, ": added token ", t["content"].dump(), " uses ", option,
                 "=true, which is not supported");
      out.push_back({t["content"].get<std::string>(), t["id"].get<int32_t>(), flag(t, "special", true)});
    }
    return out;
  }
};

std::unique_ptr<Tokenizer> load_hf_tokenizer_json(const fs::path& path) {
  json j = parse_json(path);
  HfReader reader{path.string()};
  LD_CHECK(j.is_object(), path.string(), ": expected a JSON object at the top level");
  auto field = [&](const char* key) { return j.contains(key) ? j[key] : json(); };
  ByteLevelConfig config;
  config.source = path.string();
  reader.read_model(field("model"), config);
  reader.read_normalizer(field("normalizer"), config);
  if (field("pre_tokenizer").is_null()) LD_FAIL(path.string(), ": pre_tokenizer is missing (a byte-level BPE needs ByteLevel)");
  reader.read_pre_tokenizer(field("pre_tokenizer"), config);
  reader.read_decoder(field("decoder"));
  config.added_tokens = reader.read_added_tokens(field("added_tokens"));
  reader.read_post_processor(field("post_processor"), config);
  return make_byte_level_tokenizer(std::move(config));
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path) {
  if (fs::is_directory(path)) {
    if (fs::exists(path / "tokenizer.json")) return load_hf_tokenizer_json(path / "tokenizer.json");
    if (fs::exists(path / "encoder.json") && fs::exists(path / "vocab.bpe")) return load_gpt2(path);
    if (fs::exists(path / "tokenizer.model")) return load_sentencepiece(path / "tokenizer.model");
    LD_FAIL(path.string(), ": no tokenizer here (expected tokenizer.json, encoder.json + vocab.bpe, or tokenizer.model)");
  }
  LD_CHECK(fs::exists(path), path.string(), ": no such file or folder");
  if (path.extension() == ".json") return load_hf_tokenizer_json(path);
  if (path.extension() == ".model") return load_sentencepiece(path);
  LD_FAIL(path.string(), ": unknown tokenizer file (expected a folder, a tokenizer.json, or a SentencePiece .model)");
}

}  // namespace ld::tok
