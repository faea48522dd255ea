#include "train/run_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <variant>

#include "backend/backend.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "train/run_config_table.hpp"

namespace ld::train {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using config_table::Field;
using config_table::Range;
using config_table::Row;
using config_table::rows;

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> s = {"model", "data",     "train", "eval",         "checkpoint",
                                             "log",   "dist",   "finetune", "multitask", "continual", "lora",  "adapter",
                                             "prompt_tuning"};
  return s;
}

bool is_section(const std::string& name) {
  return std::find(section_names().begin(), section_names().end(), name) != section_names().end();
}

// An example key of a section, for messages.
std::string first_key_of(const std::string& section) {
  if (section == "model") return "model.type";
  for (const Row& r : rows())
    if (r.name.rfind(section + ".", 0) == 0) return r.name;
  return section;
}

KeyType type_of(const Field& f) {
  switch (f.index()) {
    case 0: return KeyType::integer;
    case 1: return KeyType::number;
    case 2: return KeyType::boolean;
    case 3: return KeyType::string;
    default: return KeyType::list;
  }
}

const Row* find_row(const std::string& name) {
  for (const Row& r : rows())
    if (r.name == name) return &r;
  return nullptr;
}

// --- formatting values

std::string format_number(double v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

std::string format_list(const std::vector<std::string>& items) {
  YAML::Emitter out;
  out << YAML::Flow << items;
  return out.c_str();
}

std::string format_field(const Field& f) {
  return std::visit(
      [](auto* p) -> std::string {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, int64_t>) return std::to_string(*p);
        if constexpr (std::is_same_v<T, double>) return format_number(*p);
        if constexpr (std::is_same_v<T, bool>) return *p ? "true" : "false";
        if constexpr (std::is_same_v<T, std::string>) return p->empty() ? "\"\"" : *p;
        if constexpr (std::is_same_v<T, std::vector<std::string>>) return format_list(*p);
      },
      f);
}

// --- where a value came from, for messages: the file, or the override as typed

struct Entry {
  std::string key;  // dotted
  YAML::Node value;
  std::string origin;
};

std::string show(const YAML::Node& node) {
  if (node.IsScalar()) return "\"" + node.Scalar() + "\"";
  if (node.IsNull()) return "null";
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

[[noreturn]] void bad_value(const Entry& e, KeyType type, const std::string& extra = "") {
  LD_FAIL(e.origin, ": ", e.key, ": expected ", key_type_name(type), extra, ", got ", show(e.value));
}

int64_t to_integer(const Entry& e) {
  if (!e.value.IsScalar()) bad_value(e, KeyType::integer);
  const std::string& s = e.value.Scalar();
  int64_t v = 0;
  const char* begin = s.data() + (!s.empty() && s[0] == '+' ? 1 : 0);
  auto res = std::from_chars(begin, s.data() + s.size(), v);
  if (res.ec != std::errc() || res.ptr != s.data() + s.size() || s.empty()) bad_value(e, KeyType::integer);
  return v;
}

double to_number(const Entry& e) {
  if (!e.value.IsScalar()) bad_value(e, KeyType::number);
  const std::string& s = e.value.Scalar();
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) bad_value(e, KeyType::number);
  return v;
}

bool to_boolean(const Entry& e) {
  if (e.value.IsScalar()) {
    const std::string& s = e.value.Scalar();
    if (s == "true" || s == "True") return true;
    if (s == "false" || s == "False") return false;
  }
  bad_value(e, KeyType::boolean, " (true or false)");
}

std::string to_string_value(const Entry& e) {
  if (e.value.IsNull()) return "";
  if (!e.value.IsScalar()) bad_value(e, KeyType::string);
  return e.value.Scalar();
}

std::vector<std::string> to_list(const Entry& e) {
  if (e.value.IsNull()) return {};
  if (!e.value.IsSequence()) bad_value(e, KeyType::list, " (e.g. [a, b])");
  std::vector<std::string> items;
  for (const YAML::Node& item : e.value) {
    if (!item.IsScalar()) bad_value(e, KeyType::list, " of strings");
    items.push_back(item.Scalar());
  }
  return items;
}

void check_range(const Entry& e, Range range, double v) {
  switch (range) {
    case Range::any: return;
    case Range::positive: LD_CHECK(v > 0, e.origin, ": ", e.key, "=", show(e.value), " must be positive"); return;
    case Range::non_negative:
      LD_CHECK(v >= 0, e.origin, ": ", e.key, "=", show(e.value), " must be 0 or more");
      return;
    case Range::unit:
      LD_CHECK(v >= 0 && v <= 1, e.origin, ": ", e.key, "=", show(e.value), " must be between 0 and 1");
      return;
  }
}

void check_choice(const Entry& e, const std::string& choices, const std::string& v) {
  if (choices.empty()) return;
  std::stringstream ss(choices);
  for (std::string c; std::getline(ss, c, '|');)
    if (c == v) return;
  LD_FAIL(e.origin, ": ", e.key, ": expected one of ", choices, ", got ", show(e.value));
}

void assign(RunConfig& config, const Row& row, const Entry& e) {
  std::visit(
      [&](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, int64_t>) {
          *p = to_integer(e);
          check_range(e, row.range, double(*p));
        } else if constexpr (std::is_same_v<T, double>) {
          *p = to_number(e);
          check_range(e, row.range, *p);
        } else if constexpr (std::is_same_v<T, bool>) {
          *p = to_boolean(e);
        } else if constexpr (std::is_same_v<T, std::string>) {
          *p = to_string_value(e);
          check_choice(e, row.choices, *p);
        } else {
          *p = to_list(e);
        }
      },
      row.field(config));
}

// --- unknown keys: the nearest valid name, counting aliases and a right name in the wrong section

struct Candidate {
  std::string name;       // compared
  std::string canonical;  // suggested
};

std::string leaf(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

std::string section_of(const std::string& key) {
  const size_t dot = key.find('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}

std::string nearest(const std::string& key, const std::vector<Candidate>& candidates) {
  std::string best;
  size_t best_score = std::numeric_limits<size_t>::max();
  for (const Candidate& c : candidates) {
    size_t score = levenshtein(key, c.name);
    if (leaf(key) == leaf(c.name) && section_of(key) != section_of(c.name)) score = std::min<size_t>(score, 1);
    if (score < best_score) best_score = score, best = c.canonical;
  }
  return best;
}

std::vector<Candidate> model_candidates(const std::string& model_type) {
  std::vector<Candidate> out{{"model.type", "model.type"}, {"model.from", "model.from"}};
  for (const ModelKeySpec& k : model_config_keys()) {
    if (!model_type.empty() && !model_key_applies(k, model_type)) continue;
    out.push_back({"model." + k.name, "model." + k.name});
    for (const std::string& a : k.aliases) out.push_back({"model." + a, "model." + k.name});
  }
  return out;
}

std::vector<Candidate> all_candidates(const std::string& model_type) {
  std::vector<Candidate> out = model_candidates(model_type);
  for (const Row& r : rows()) {
    out.push_back({r.name, r.name});
    const std::string prefix = section_of(r.name).empty() ? "" : section_of(r.name) + ".";
    for (const std::string& a : r.aliases) out.push_back({prefix + a, r.name});
  }
  for (const std::string& s : section_names()) out.push_back({s, s});
  return out;
}

[[noreturn]] void unknown_key(const Entry& e, const std::vector<Candidate>& candidates, const std::string& what = "") {
  LD_FAIL(e.origin, ": unknown key ", e.key, what, " (did you mean ", nearest(e.key, candidates), "?)");
}

// --- reading the YAML tree into entries

YAML::Node load_yaml(const std::string& text, const std::string& source) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& ex) {
    LD_FAIL(source, ": not valid YAML: ", ex.what());
  }
}

void set_entry(std::vector<Entry>& entries, Entry e) {
  for (Entry& old : entries)
    if (old.key == e.key) {
      old = std::move(e);
      return;
    }
  entries.push_back(std::move(e));
}

std::vector<Entry> flatten(const YAML::Node& root, const std::string& source) {
  std::vector<Entry> entries;
  if (root.IsNull()) return entries;
  LD_CHECK(root.IsMap(), source, ": expected a mapping of sections (model:, train:, ...), got ", show(root));
  for (const auto& item : root) {
    const std::string name = item.first.as<std::string>();
    const YAML::Node& value = item.second;
    if (!is_section(name)) {
      set_entry(entries, {name, value, source});
      continue;
    }
    if (value.IsNull()) continue;
    LD_CHECK(value.IsMap(), source, ": ", name, ": expected a mapping of keys, got ", show(value));
    for (const auto& kv : value) set_entry(entries, {name + "." + kv.first.as<std::string>(), kv.second, source});
  }
  return entries;
}

std::string given_model_type(const std::vector<Entry>& entries) {
  for (const Entry& e : entries)
    if (e.key == "model.type" && e.value.IsScalar()) return e.value.Scalar();
  return "";
}

bool known_model_type(const std::string& type) {
  return type == "gpt2" || type == "llama" || type == "mistral" || type == "qwen2" || type == "mixtral" ||
         type == "bert";
}

// --- the model section

const ModelKeySpec* find_model_key(const std::string& name, const std::string& type) {
  for (const ModelKeySpec& k : model_config_keys())
    if (k.name == name && model_key_applies(k, type)) return &k;
  return nullptr;
}

bool any_model_key(const std::string& name) {
  for (const ModelKeySpec& k : model_config_keys())
    if (k.name == name) return true;
  return false;
}

json model_value(const Entry& e, const ModelKeySpec& key) {
  if (key.nullable && e.value.IsNull()) return nullptr;
  switch (key.type) {
    case KeyType::integer: return to_integer(e);
    case KeyType::number: return to_number(e);
    case KeyType::boolean: return to_boolean(e);
    default: return to_string_value(e);
  }
}

json read_config_json(const fs::path& path) {
  std::ifstream in(path);
  LD_CHECK(in, path.string(), ": cannot open (model.from must be a Hugging Face folder with a config.json)");
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  LD_CHECK(!j.is_discarded() && j.is_object(), path.string(), ": not a JSON object");
  return j;
}

void resolve_model(ModelSection& m, const std::vector<Entry>& model_entries, const std::string& source) {
  std::string type_origin = source;
  for (const Entry& e : model_entries) {
    if (e.key == "model.type") {
      m.type = to_string_value(e);
      type_origin = e.origin;
    } else if (e.key == "model.from") {
      m.from = to_string_value(e);
    }
  }
  json base = json::object();
  if (!m.from.empty()) {
    base = read_config_json(fs::path(m.from) / "config.json");
    const std::string folder_type = base.value("model_type", std::string());
    LD_CHECK(m.type.empty() || m.type == folder_type, type_origin, ": model.type=", m.type, " but ", m.from,
             "/config.json has model_type \"", folder_type, "\"");
    m.type = folder_type;
  }
  if (m.type.empty())  // a misspelt `type` is likelier than a missing one: name it first
    for (const Entry& e : model_entries)
      if (e.key != "model.from" && !any_model_key(leaf(e.key))) unknown_key(e, model_candidates(""));
  LD_CHECK(!m.type.empty(), source, ": model: needs type (", io::supported_model_types(),
           ") or from: a Hugging Face model folder");
  LD_CHECK(known_model_type(m.type), type_origin, ": model.type: expected one of ", io::supported_model_types(),
           ", got \"", m.type, "\"");
  m.keys = json::object();
  for (const Entry& e : model_entries) {
    if (e.key == "model.type" || e.key == "model.from") continue;
    const ModelKeySpec* key = find_model_key(leaf(e.key), m.type);
    if (key == nullptr) unknown_key(e, model_candidates(m.type), " for model type " + m.type);
    m.keys[key->name] = model_value(e, *key);
  }
  if (!m.from.empty() && m.keys.empty()) {
    m.hf = io::read_hf_config(m.from);  // generation_config.json's stop ids too
    return;
  }
  base["model_type"] = m.type;
  base.update(m.keys);
  m.hf = io::parse_hf_config(base, source + ": model");
}

// --- what follows from the rest

void resolve_derived(RunConfig& c, const std::string& source) {
  const models::StackConfig& s = c.model.hf.stack;
  if (c.train.seq_len == 0) c.train.seq_len = s.n_positions;
  const bool learned_positions = c.model.type == "gpt2" || c.model.type == "bert";
  LD_CHECK(!learned_positions || c.train.seq_len <= s.n_positions, source, ": train.seq_len=", c.train.seq_len,
           " exceeds the model's ", c.model.type == "gpt2" ? "n_positions=" : "max_position_embeddings=",
           s.n_positions);
  const bool causal = c.model.hf.is_causal_lm();
  if (c.train.objective == "auto") c.train.objective = causal ? "clm" : "mlm";
  LD_CHECK(causal == (c.train.objective == "clm"), source, ": train.objective=", c.train.objective,
           " does not fit model type ", c.model.type, " (", causal ? "causal: use clm" : "bidirectional: use mlm", ")");
}

}  // namespace

// --- public

bool RunConfig::was_given(const std::string& key) const {
  return std::find(given.begin(), given.end(), key) != given.end();
}

bool RunConfig::set_away_from_default(const std::string& key) const {
  if (!was_given(key)) return false;
  const Row* row = find_row(key);
  LD_ASSERT(row != nullptr, key);
  static RunConfig defaults;
  RunConfig copy = *this;  // the table's accessors hand out mutable pointers; nothing is changed
  return format_field(row->field(copy)) != format_field(row->field(defaults));
}

std::vector<std::string> RunConfig::given_in(const std::string& section) const {
  std::vector<std::string> out;
  for (const std::string& key : given)
    if (section_of(key) == section) out.push_back(key);
  return out;
}

const char* key_type_name(KeyType type) {
  switch (type) {
    case KeyType::integer: return "an integer";
    case KeyType::number: return "a number";
    case KeyType::boolean: return "a boolean";
    case KeyType::string: return "a string";
    case KeyType::list: return "a list";
  }
  return "?";
}

const std::vector<KeySpec>& run_config_keys() {
  static const std::vector<KeySpec> keys = [] {
    std::vector<KeySpec> out;
    RunConfig probe;
    for (const Row& r : rows()) out.push_back({r.name, type_of(r.field(probe)), r.choices, r.doc, r.aliases});
    return out;
  }();
  return keys;
}

std::string default_text(const KeySpec& key) {
  static RunConfig defaults;
  const Row* row = find_row(key.name);
  LD_ASSERT(row != nullptr, key.name);
  return format_field(row->field(defaults));
}

bool model_key_applies(const ModelKeySpec& key, const std::string& model_type) {
  std::stringstream ss(key.types);
  for (std::string t; std::getline(ss, t, ',');)
    if (t == model_type) return true;
  return false;
}

Override parse_override(const std::string& arg) {
  std::string s = arg;
  if (s.rfind("--", 0) == 0) s = s.substr(2);
  const size_t eq = s.find('=');
  LD_CHECK(eq != std::string::npos && eq > 0, "override ", arg, ": expected --section.key=value");
  return {s.substr(0, eq), s.substr(eq + 1)};
}

std::vector<Override> parse_overrides(const std::vector<std::string>& args) {
  std::vector<Override> out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    LD_CHECK(a.rfind("--", 0) == 0, "unexpected argument ", a, " (overrides are --section.key=value)");
    if (a.find('=') == std::string::npos && i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) {
      out.push_back({a.substr(2), args[i + 1]});
      ++i;
    } else {
      out.push_back(parse_override(a));
    }
  }
  return out;
}

RunConfig parse_run_config(const std::string& yaml_text, const std::string& source,
                           const std::vector<Override>& overrides) {
  std::vector<Entry> entries = flatten(load_yaml(yaml_text, source), source);
  for (const Override& o : overrides) {
    const std::string origin = "override --" + o.key + "=" + o.value;
    LD_CHECK(!is_section(o.key), origin, ": ", o.key, " is a section: set its keys, e.g. --",
             first_key_of(o.key), "=...");
    set_entry(entries, {o.key, load_yaml(o.value, origin), origin});
  }
  const std::string type = given_model_type(entries);
  const std::vector<Candidate> candidates = all_candidates(known_model_type(type) ? type : "");
  RunConfig config;
  std::vector<Entry> model_entries;
  for (const Entry& e : entries) {
    config.given.push_back(e.key);
    if (section_of(e.key) == "model") {
      model_entries.push_back(e);
      continue;
    }
    const Row* row = find_row(e.key);
    if (row == nullptr) unknown_key(e, candidates);
    assign(config, *row, e);
  }
  resolve_model(config.model, model_entries, source);
  resolve_derived(config, source);
  return config;
}

RunConfig load_run_config(const fs::path& yaml_file, const std::vector<Override>& overrides) {
  std::ifstream in(yaml_file);
  LD_CHECK(in, yaml_file.string(), ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return parse_run_config(text.str(), yaml_file.string(), overrides);
}

namespace {

// A model key's resolved value in YAML text, from the config.json transformers would write.
std::string model_value_text(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_number_float()) return format_number(v.get<double>());
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void emit_model(YAML::Emitter& out, const ModelSection& m) {
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "type" << YAML::Value << m.hf.model_type;
  if (!m.from.empty()) out << YAML::Key << "from" << YAML::Value << m.from;
  const json j = io::to_hf_config_json(m.hf);
  for (const ModelKeySpec& k : model_config_keys()) {
    if (!model_key_applies(k, m.hf.model_type) || !j.contains(k.name)) continue;
    const json& v = j.at(k.name);
    if (v.is_array()) continue;  // a list of stop ids: only a folder (from:) has those
    out << YAML::Key << k.name << YAML::Value;
    if (v.is_null())
      out << YAML::Null;
    else
      out << model_value_text(v);
  }
  out << YAML::EndMap;
}

void emit_value(YAML::Emitter& out, const Field& f) {
  std::visit(
      [&](auto* p) {
        using T = std::remove_pointer_t<decltype(p)>;
        if constexpr (std::is_same_v<T, std::string>)
          out << *p;
        else if constexpr (std::is_same_v<T, std::vector<std::string>>)
          out << YAML::Flow << *p;
        else
          out << format_field(f);
      },
      f);
}

}  // namespace

std::string to_yaml(const RunConfig& config) {
  RunConfig copy = config;  // the table's accessors hand out mutable pointers; nothing is changed
  YAML::Emitter out;
  out << YAML::Comment("liandan run configuration, resolved: every key with the value this run used");
  out << YAML::BeginMap;
  emit_model(out, copy.model);
  std::string open_section;
  for (const Row& r : rows()) {
    const std::string section = section_of(r.name);
    if (section != open_section) {
      if (!open_section.empty()) out << YAML::EndMap;
      if (!section.empty()) out << YAML::Key << section << YAML::Value << YAML::BeginMap;
      open_section = section;
    }
    out << YAML::Key << leaf(r.name) << YAML::Value;
    emit_value(out, r.field(copy));
  }
  if (!open_section.empty()) out << YAML::EndMap;
  out << YAML::EndMap;
  LD_ASSERT(out.good(), out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

fs::path save_resolved(const RunConfig& config, const fs::path& dir) {
  fs::create_directories(dir);
  const fs::path path = dir / "resolved.yaml";
  write_file_atomically(path, to_yaml(config));
  return path;
}

namespace {

std::string type_word(KeyType t, const std::string& choices) {
  if (!choices.empty()) return "`" + choices + "`";
  switch (t) {
    case KeyType::integer: return "int";
    case KeyType::number: return "float";
    case KeyType::boolean: return "bool";
    case KeyType::string: return "string";
    case KeyType::list: return "list of strings";
  }
  return "?";
}

std::string aliases_note(const std::vector<std::string>& aliases) {
  if (aliases.empty()) return "";
  std::string s = " (elsewhere: ";
  for (size_t i = 0; i < aliases.size(); ++i) s += (i ? ", " : "") + std::string("`") + aliases[i] + "`";
  return s + ")";
}

}  // namespace

std::string config_reference_markdown() {
  std::ostringstream md;
  md << "# Run configuration\n\n"
     << "<!-- Generated from src/train/run_config_table.cpp by `liandan plan --print-config-docs`; "
        "tests/train/run_config_test.cpp fails when this file differs. -->\n\n"
     << "`liandan pretrain`, `liandan finetune` and `liandan plan` read a YAML file (`--config FILE`) and then\n"
     << "`--section.key=value` overrides from the command line (`--train.lr=3e-4`, `--output_dir=runs/b`,\n"
     << "`--eval.samples=[Once upon, The]`); an override wins over the file, a later override over an\n"
     << "earlier one. Values are parsed by the key's type; a bad value is an error naming the key and the\n"
     << "type expected, and an unknown key is an error naming the nearest valid one. The run folder gets\n"
     << "`resolved.yaml`: every key with the value the run used, which loads back to the same run.\n\n"
     << "Examples: `examples/*.yaml`. `finetune` loads the weights of `model.from` and refuses keys that only\n"
     << "pretraining reads; its own sections (finetune, lora, adapter, prompt_tuning, data.train...) are\n"
     << "described in docs/finetuning.md.\n\n"
     << "## model\n\n"
     << "Either `type:` and the model's sizes under their Hugging Face `config.json` names for that type,\n"
     << "or `from: FOLDER` (a Hugging Face model folder: its `config.json` is the base, keys given here\n"
     << "replace its entries). The keys are validated exactly as a `config.json` is.\n\n"
     << "| key | type | model types | default | description |\n|---|---|---|---|---|\n"
     << "| `type` | `gpt2\\|llama\\|mistral\\|qwen2\\|mixtral\\|bert` | all | required without `from` | "
        "The architecture (`model_type` in config.json). |\n"
     << "| `from` | string | all | `\"\"` | A Hugging Face model folder whose config.json is the base. |\n";
  auto escape = [](std::string s) {
    for (size_t p = 0; (p = s.find('|', p)) != std::string::npos; p += 2) s.replace(p, 1, "\\|");
    return s;
  };
  for (const ModelKeySpec& k : model_config_keys())
    md << "| `" << k.name << "` | " << type_word(k.type, "") << (k.nullable ? " or null" : "") << " | "
       << k.types << " | " << k.default_text << " | " << k.doc << aliases_note(k.aliases) << " |\n";
  std::string open_section = "model";
  for (const KeySpec& k : run_config_keys()) {
    const std::string section = section_of(k.name);
    if (section != open_section) {
      md << "\n## " << (section.empty() ? "top level" : section) << "\n\n"
         << "| key | type | default | description |\n|---|---|---|---|\n";
      open_section = section;
    }
    md << "| `" << k.name << "` | " << escape(type_word(k.type, k.choices)) << " | `" << default_text(k) << "` | "
       << k.doc << aliases_note(k.aliases) << " |\n";
  }
  return md.str();
}

size_t levenshtein(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

namespace {

// "cpu", "cuda" (index 0) or "cuda:N"; nullopt for anything else.
std::optional<Device> parse_device(const std::string& name) {
  if (name == "cpu") return kCPU;
  if (name == "cuda") return Device{DeviceKind::cuda, 0};
  const std::string prefix = "cuda:";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  int index = -1;
  const char* end = name.data() + name.size();
  const auto [ptr, ec] = std::from_chars(name.data() + prefix.size(), end, index);
  if (ec != std::errc() || ptr != end || index < 0) return std::nullopt;
  return Device{DeviceKind::cuda, index};
}

}  // namespace

Device usable_device(const std::string& name, const std::string& option) {
  const std::optional<Device> device = parse_device(name);
  LD_CHECK(device.has_value(), option, ": \"", name, "\" is not cpu, cuda or cuda:N");
  try {
    backend_for(*device);  // throws when this build or machine cannot run there
  } catch (const Error& e) {
    LD_FAIL(option, "=", name, ": ", e.what());
  }
  return *device;
}

Device training_device(const TrainSection& train) { return usable_device(train.device, "train.device"); }

}  // namespace ld::train
