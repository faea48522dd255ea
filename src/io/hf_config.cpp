#include "io/hf_config.hpp"

#include <unistd.h>

#include <fstream>
#include <optional>
#include <sstream>

#include "core/error.hpp"

namespace ld::io {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// --- reading fields with messages that name the file and the field

const json* find(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

int64_t get_int(const json& j, const char* key, const std::string& source, std::optional<int64_t> fallback = {}) {
  const json* v = find(j, key);
  if (!v) {
    LD_CHECK(fallback.has_value(), source, ": missing field \"", key, "\"");
    return *fallback;
  }
  LD_CHECK(v->is_number_integer(), source, ": field \"", key, "\" must be an integer, got ", v->dump());
  return v->get<int64_t>();
}

double get_number(const json& j, const char* key, const std::string& source, double fallback) {
  const json* v = find(j, key);
  if (!v) return fallback;
  LD_CHECK(v->is_number(), source, ": field \"", key, "\" must be a number, got ", v->dump());
  return v->get<double>();
}

bool get_bool(const json& j, const char* key, const std::string& source, bool fallback) {
  const json* v = find(j, key);
  if (!v) return fallback;
  LD_CHECK(v->is_boolean(), source, ": field \"", key, "\" must be true or false, got ", v->dump());
  return v->get<bool>();
}

std::string get_string(const json& j, const char* key, const std::string& source, const char* fallback) {
  const json* v = find(j, key);
  if (!v) {
    LD_CHECK(fallback != nullptr, source, ": missing field \"", key, "\"");
    return fallback;
  }
  LD_CHECK(v->is_string(), source, ": field \"", key, "\" must be a string, got ", v->dump());
  return v->get<std::string>();
}

// Some configs list several ids (LLaMA 3: eos_token_id [128001, 128009]); the first is the main one.
int64_t first_token_id(const json& j, const char* key, const std::string& source, int64_t fallback) {
  const json* v = find(j, key);
  if (v && v->is_array()) {
    LD_CHECK(!v->empty() && v->front().is_number_integer(), source, ": field \"", key,
             "\" must be an integer or a list of integers, got ", v->dump());
    return v->front().get<int64_t>();
  }
  return get_int(j, key, source, fallback);
}

void check_positive(int64_t value, const char* key, const std::string& source) {
  LD_CHECK(value >= 1, source, ": \"", key, "\"=", value, " must be positive");
}

// LLaMA features liandan's stack does not compute: refuse them rather than run a different model.
void check_llama_features(const json& j, const std::string& source) {
  std::string act = get_string(j, "hidden_act", source, "silu");
  LD_CHECK(act == "silu", source, ": hidden_act \"", act, "\" is not supported (LLaMA uses \"silu\")");
  LD_CHECK(!get_bool(j, "attention_bias", source, false), source, ": attention_bias=true is not supported");
  LD_CHECK(!get_bool(j, "mlp_bias", source, false), source, ": mlp_bias=true is not supported");
  LD_CHECK(find(j, "rope_scaling") == nullptr, source, ": rope_scaling is not supported, got ",
           j.at("rope_scaling").dump());
}

models::StackConfig parse_llama_stack(const json& j, const std::string& source) {
  models::StackConfig s;
  s.kind = models::StackKind::llama;
  s.n_embd = get_int(j, "hidden_size", source);
  s.intermediate_size = get_int(j, "intermediate_size", source);
  s.n_layer = get_int(j, "num_hidden_layers", source);
  s.n_head = get_int(j, "num_attention_heads", source);
  s.n_kv_head = get_int(j, "num_key_value_heads", source, s.n_head);  // HF's default: no grouping
  s.vocab_size = get_int(j, "vocab_size", source);
  s.n_positions = get_int(j, "max_position_embeddings", source, 2048);
  s.norm_eps = get_number(j, "rms_norm_eps", source, 1e-6);
  s.rope_theta = get_number(j, "rope_theta", source, 10000.0);

  check_positive(s.n_embd, "hidden_size", source);
  check_positive(s.intermediate_size, "intermediate_size", source);
  check_positive(s.n_layer, "num_hidden_layers", source);
  check_positive(s.n_head, "num_attention_heads", source);
  check_positive(s.n_kv_head, "num_key_value_heads", source);
  check_positive(s.vocab_size, "vocab_size", source);
  check_positive(s.n_positions, "max_position_embeddings", source);
  LD_CHECK(s.n_embd % s.n_head == 0, source, ": num_attention_heads=", s.n_head, " does not divide hidden_size=",
           s.n_embd);
  LD_CHECK(s.n_head % s.n_kv_head == 0, source, ": num_key_value_heads=", s.n_kv_head,
           " does not divide num_attention_heads=", s.n_head);
  LD_CHECK(s.head_dim() % 2 == 0, source, ": RoPE needs an even head size, got hidden_size/num_attention_heads=",
           s.head_dim());
  int64_t head_dim = get_int(j, "head_dim", source, s.head_dim());
  LD_CHECK(head_dim == s.head_dim(), source, ": head_dim=", head_dim, " differs from hidden_size/num_attention_heads=",
           s.head_dim(), " (a separate head size is not supported)");
  LD_CHECK(s.norm_eps > 0, source, ": rms_norm_eps=", s.norm_eps, " must be positive");
  LD_CHECK(s.rope_theta > 0, source, ": rope_theta=", s.rope_theta, " must be positive");
  check_llama_features(j, source);
  models::validate(s);  // backstop: the stack's own invariants
  return s;
}

void write_json_atomically(const fs::path& path, const json& j) {
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    LD_CHECK(out.good(), tmp.string(), ": cannot open for writing");
    out << j.dump(2) << "\n";
    out.close();
    LD_CHECK(out.good(), tmp.string(), ": write failed");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    LD_FAIL(path.string(), ": cannot rename the temporary file into place");
  }
}

}  // namespace

std::string supported_model_types() { return "llama"; }

HfModelConfig parse_hf_config(const json& j, const std::string& source) {
  LD_CHECK(j.is_object(), source, ": expected a JSON object");
  HfModelConfig c;
  c.model_type = get_string(j, "model_type", source, nullptr);
  LD_CHECK(c.model_type == "llama", source, ": model_type \"", c.model_type, "\" is not supported (supported: ",
           supported_model_types(), ")");
  c.stack = parse_llama_stack(j, source);
  c.tie_word_embeddings = get_bool(j, "tie_word_embeddings", source, false);  // LlamaConfig's default
  c.bos_token_id = first_token_id(j, "bos_token_id", source, 1);
  c.eos_token_id = first_token_id(j, "eos_token_id", source, 2);
  c.torch_dtype = get_string(j, "torch_dtype", source, "float32");
  return c;
}

HfModelConfig read_hf_config(const fs::path& dir_or_file) {
  fs::path path = fs::is_directory(dir_or_file) ? dir_or_file / "config.json" : dir_or_file;
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in.good(), path.string(), ": cannot open (a Hugging Face model folder needs a config.json)");
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  LD_CHECK(!j.is_discarded(), path.string(), ": not valid JSON");
  return parse_hf_config(j, path.string());
}

json to_hf_config_json(const HfModelConfig& c) {
  LD_CHECK(c.model_type == "llama" && c.stack.kind == models::StackKind::llama, "config.json: model_type \"",
           c.model_type, "\" cannot be written (supported: ", supported_model_types(), ")");
  const models::StackConfig& s = c.stack;
  // The fields transformers' LlamaConfig writes, so that LlamaForCausalLM.from_pretrained reads it.
  return json{{"architectures", json::array({"LlamaForCausalLM"})},
              {"attention_bias", false},
              {"attention_dropout", 0.0},
              {"bos_token_id", c.bos_token_id},
              {"eos_token_id", c.eos_token_id},
              {"hidden_act", "silu"},
              {"hidden_size", s.n_embd},
              {"initializer_range", 0.02},
              {"intermediate_size", s.intermediate_size},
              {"max_position_embeddings", s.n_positions},
              {"model_type", "llama"},
              {"num_attention_heads", s.n_head},
              {"num_hidden_layers", s.n_layer},
              {"num_key_value_heads", s.n_kv_head},
              {"pretraining_tp", 1},
              {"rms_norm_eps", s.norm_eps},
              {"rope_scaling", nullptr},
              {"rope_theta", s.rope_theta},
              {"tie_word_embeddings", c.tie_word_embeddings},
              {"torch_dtype", c.torch_dtype},
              {"use_cache", true},
              {"vocab_size", s.vocab_size}};
}

json to_generation_config_json(const HfModelConfig& c) {
  return json{{"bos_token_id", c.bos_token_id}, {"eos_token_id", c.eos_token_id}};
}

void write_hf_config(const fs::path& dir, const HfModelConfig& config) {
  write_json_atomically(dir / "config.json", to_hf_config_json(config));
  write_json_atomically(dir / "generation_config.json", to_generation_config_json(config));
}

void tie_lm_head(models::Params& params, const HfModelConfig& config) {
  if (!config.tie_word_embeddings) {
    LD_CHECK(params.count("lm_head.weight"), "checkpoint: lm_head.weight is missing and config.json has "
             "tie_word_embeddings=false");
    return;
  }
  auto embed = params.find("model.embed_tokens.weight");
  LD_CHECK(embed != params.end(), "checkpoint: model.embed_tokens.weight is missing");
  params["lm_head.weight"] = embed->second;
}

int64_t expected_parameter_count(const HfModelConfig& config) {
  const models::StackConfig& s = config.stack;
  const int64_t C = s.n_embd, D = s.head_dim(), I = s.intermediate_size;
  const int64_t per_layer = 2 * C                              // the two RMSNorms
                            + C * s.n_head * D * 2             // q_proj, o_proj
                            + C * s.n_kv_head * D * 2          // k_proj, v_proj
                            + 3 * C * I;                       // gate, up, down
  const int64_t embed = s.vocab_size * C;
  return embed + s.n_layer * per_layer + C + (config.tie_word_embeddings ? 0 : embed);
}

}  // namespace ld::io
