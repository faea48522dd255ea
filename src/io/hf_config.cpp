#include "io/hf_config.hpp"

#include <fstream>
#include <optional>
#include <sstream>

#include "core/atomic_file.hpp"
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

// Some configs list several ids (LLaMA 3: eos_token_id [128001, 128009]); all of them, in order.
std::vector<int64_t> token_ids(const json& j, const char* key, const std::string& source, int64_t fallback) {
  const json* v = find(j, key);
  if (v == nullptr) return fallback >= 0 ? std::vector<int64_t>{fallback} : std::vector<int64_t>{};
  if (!v->is_array()) return {get_int(j, key, source)};
  std::vector<int64_t> ids;
  for (const json& id : *v) {
    LD_CHECK(id.is_number_integer(), source, ": field \"", key, "\" must be an integer or a list of integers, got ",
             v->dump());
    ids.push_back(id.get<int64_t>());
  }
  return ids;
}

// The first of them is the main one.
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

struct Fields {
  const json& j;
  const std::string& source;
  int64_t integer(const char* key, std::optional<int64_t> fallback = {}) const { return get_int(j, key, source, fallback); }
  int64_t positive(const char* key, std::optional<int64_t> fallback = {}) const {
    const int64_t v = get_int(j, key, source, fallback);
    check_positive(v, key, source);
    return v;
  }
  double number(const char* key, double fallback) const { return get_number(j, key, source, fallback); }
  bool boolean(const char* key, bool fallback) const { return get_bool(j, key, source, fallback); }
  std::string string(const char* key, const char* fallback) const { return get_string(j, key, source, fallback); }
  // A feature liandan does not compute must keep its neutral value, or the model would be different.
  void refuse_true(const char* key, const std::string& model_type) const {
    LD_CHECK(!boolean(key, false), source, ": ", key, "=true is not supported for ", model_type);
  }
};

// The GELU variant an activation name asks for: true = tanh approximation.
bool gelu_is_tanh(const std::string& act, const char* key, const std::string& source) {
  if (act == "gelu_new" || act == "gelu_pytorch_tanh" || act == "gelu_fast") return true;
  LD_CHECK(act == "gelu", source, ": ", key, " \"", act,
           "\" is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh)");
  return false;
}

// liandan's MoE keys; Mixtral's names where it has them.
void parse_moe(const Fields& f, nn::MoeConfig& moe, int64_t default_experts) {
  moe.num_experts = f.integer("num_local_experts", default_experts);
  if (moe.num_experts == 0) return;
  check_positive(moe.num_experts, "num_local_experts", f.source);
  moe.top_k = f.positive("num_experts_per_tok", 2);
  moe.aux_loss_coef = f.number("router_aux_loss_coef", 0.001);
  moe.z_loss_coef = f.number("router_z_loss_coef", 0.0);
  moe.capacity_factor = f.number("moe_capacity_factor", 0.0);
  LD_CHECK(moe.top_k <= moe.num_experts, f.source, ": num_experts_per_tok=", moe.top_k, " exceeds num_local_experts=",
           moe.num_experts);
  LD_CHECK(f.number("router_jitter_noise", 0.0) == 0.0, f.source, ": router_jitter_noise is not supported (must be 0)");
  try {
    nn::validate(moe);
  } catch (const Error& e) {
    LD_FAIL(f.source, ": ", e.what());
  }
}

struct LlamaDefaults {
  int64_t max_positions;
  double norm_eps, rope_theta;
  int64_t bos, eos;
};

LlamaDefaults llama_defaults(const std::string& type) {
  if (type == "mistral") return {131072, 1e-6, 10000.0, 1, 2};
  if (type == "qwen2") return {32768, 1e-6, 10000.0, -1, -1};
  if (type == "mixtral") return {131072, 1e-5, 1e6, 1, 2};
  return {2048, 1e-6, 10000.0, 1, 2};
}

void parse_llama_family(const Fields& f, HfModelConfig& c) {
  const LlamaDefaults d = llama_defaults(c.model_type);
  models::StackConfig& s = c.stack;
  s.kind = models::StackKind::llama;
  s.n_embd = f.positive("hidden_size");
  s.intermediate_size = f.positive("intermediate_size");
  s.n_layer = f.positive("num_hidden_layers");
  s.n_head = f.positive("num_attention_heads");
  s.n_kv_head = f.positive("num_key_value_heads", s.n_head);  // HF's default: no grouping
  s.vocab_size = f.positive("vocab_size");
  s.n_positions = f.positive("max_position_embeddings", d.max_positions);
  s.norm_eps = f.number("rms_norm_eps", d.norm_eps);
  s.rope_theta = f.number("rope_theta", d.rope_theta);
  LD_CHECK(s.n_embd % s.n_head == 0, f.source, ": num_attention_heads=", s.n_head, " does not divide hidden_size=",
           s.n_embd);
  LD_CHECK(s.n_head % s.n_kv_head == 0, f.source, ": num_key_value_heads=", s.n_kv_head,
           " does not divide num_attention_heads=", s.n_head);
  LD_CHECK(s.head_dim() % 2 == 0, f.source, ": RoPE needs an even head size, got hidden_size/num_attention_heads=",
           s.head_dim());
  const int64_t head_dim = f.integer("head_dim", s.head_dim());
  LD_CHECK(head_dim == s.head_dim(), f.source, ": head_dim=", head_dim,
           " differs from hidden_size/num_attention_heads=", s.head_dim(), " (a separate head size is not supported)");
  LD_CHECK(s.norm_eps > 0, f.source, ": rms_norm_eps=", s.norm_eps, " must be positive");
  LD_CHECK(s.rope_theta > 0, f.source, ": rope_theta=", s.rope_theta, " must be positive");

  c.hidden_act = f.string("hidden_act", "silu");
  LD_CHECK(c.hidden_act == "silu", f.source, ": hidden_act \"", c.hidden_act, "\" is not supported (",
           c.model_type, " uses \"silu\")");
  LD_CHECK(find(f.j, "rope_scaling") == nullptr, f.source, ": rope_scaling is not supported, got ",
           f.j.at("rope_scaling").dump());
  f.refuse_true("mlp_bias", c.model_type);
  if (c.model_type == "qwen2") {
    c.attention_bias = true;  // Qwen2's q/k/v projections always have biases
    f.refuse_true("use_sliding_window", c.model_type);
  } else {
    f.refuse_true("attention_bias", c.model_type);
  }
  if (c.model_type == "mistral" || c.model_type == "mixtral") {
    // MistralConfig's default 4096 applies only when the key is absent: null means no window
    // (Mistral 7B v0.2 and later), and is what we write for a model without one.
    const bool absent = !f.j.contains("sliding_window");
    c.sliding_window = absent && c.model_type == "mistral" ? 4096 : f.integer("sliding_window", 0);
    LD_CHECK(c.sliding_window >= 0, f.source, ": sliding_window=", c.sliding_window, " must be positive or null");
  }
  parse_moe(f, c.moe, c.model_type == "mixtral" ? 8 : 0);
  LD_CHECK(c.model_type == "mixtral" || !c.moe.enabled(), f.source, ": num_local_experts is only read for mixtral ",
           "(and gpt2); ", c.model_type, " is dense");
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", false);
  c.bos_token_id = first_token_id(f.j, "bos_token_id", f.source, d.bos);
  c.eos_token_id = first_token_id(f.j, "eos_token_id", f.source, d.eos);
  c.eos_token_ids = token_ids(f.j, "eos_token_id", f.source, d.eos);
}

void parse_gpt2(const Fields& f, HfModelConfig& c) {
  models::StackConfig& s = c.stack;
  s.kind = models::StackKind::gpt2;
  s.vocab_size = f.positive("vocab_size", 50257);
  s.n_positions = f.positive("n_positions", 1024);
  s.n_embd = f.positive("n_embd", 768);
  s.n_layer = f.positive("n_layer", 12);
  s.n_head = f.positive("n_head", 12);
  s.n_kv_head = s.n_head;
  s.intermediate_size = f.positive("n_inner", 4 * s.n_embd);  // null: 4 * n_embd
  s.norm_eps = f.number("layer_norm_epsilon", 1e-5);
  LD_CHECK(s.n_embd % s.n_head == 0, f.source, ": n_head=", s.n_head, " does not divide n_embd=", s.n_embd);
  LD_CHECK(s.norm_eps > 0, f.source, ": layer_norm_epsilon=", s.norm_eps, " must be positive");
  c.hidden_act = f.string("activation_function", "gelu_new");
  gelu_is_tanh(c.hidden_act, "activation_function", f.source);
  LD_CHECK(f.boolean("scale_attn_weights", true), f.source, ": scale_attn_weights=false is not supported");
  f.refuse_true("scale_attn_by_inverse_layer_idx", "gpt2");
  f.refuse_true("add_cross_attention", "gpt2");
  parse_moe(f, c.moe, 0);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", true);
  c.bos_token_id = first_token_id(f.j, "bos_token_id", f.source, 50256);
  c.eos_token_id = first_token_id(f.j, "eos_token_id", f.source, 50256);
  c.eos_token_ids = token_ids(f.j, "eos_token_id", f.source, 50256);
}

void parse_bert(const Fields& f, HfModelConfig& c) {
  models::StackConfig& s = c.stack;
  s.kind = models::StackKind::gpt2;  // learned positions, LayerNorm, GELU MLP (post-norm in the model)
  s.vocab_size = f.positive("vocab_size", 30522);
  s.n_embd = f.positive("hidden_size", 768);
  s.n_layer = f.positive("num_hidden_layers", 12);
  s.n_head = f.positive("num_attention_heads", 12);
  s.n_kv_head = s.n_head;
  s.intermediate_size = f.positive("intermediate_size", 3072);
  s.n_positions = f.positive("max_position_embeddings", 512);
  s.norm_eps = f.number("layer_norm_eps", 1e-12);
  LD_CHECK(s.n_embd % s.n_head == 0, f.source, ": num_attention_heads=", s.n_head, " does not divide hidden_size=",
           s.n_embd);
  LD_CHECK(s.norm_eps > 0, f.source, ": layer_norm_eps=", s.norm_eps, " must be positive");
  c.hidden_act = f.string("hidden_act", "gelu");
  gelu_is_tanh(c.hidden_act, "hidden_act", f.source);
  c.type_vocab_size = f.positive("type_vocab_size", 2);
  const std::string positions = f.string("position_embedding_type", "absolute");
  LD_CHECK(positions == "absolute", f.source, ": position_embedding_type \"", positions,
           "\" is not supported (supported: absolute)");
  f.refuse_true("is_decoder", "bert");
  f.refuse_true("add_cross_attention", "bert");
  const json* labels = find(f.j, "id2label");
  LD_CHECK(labels == nullptr || labels->is_object(), f.source, ": id2label must be an object");
  c.num_labels = labels != nullptr ? int64_t(labels->size()) : f.positive("num_labels", 2);
  check_positive(c.num_labels, "id2label", f.source);
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", true);
  c.pad_token_id = f.integer("pad_token_id", 0);
  c.bos_token_id = -1;
  c.eos_token_id = -1;
}

std::string default_architecture(const std::string& type) {
  if (type == "gpt2") return "GPT2LMHeadModel";
  if (type == "bert") return "BertForMaskedLM";
  if (type == "llama") return "LlamaForCausalLM";
  if (type == "mistral") return "MistralForCausalLM";
  if (type == "qwen2") return "Qwen2ForCausalLM";
  return "MixtralForCausalLM";
}

void parse_architecture(const Fields& f, HfModelConfig& c) {
  c.architecture = default_architecture(c.model_type);
  const json* archs = find(f.j, "architectures");
  if (archs == nullptr) return;
  LD_CHECK(archs->is_array() && (archs->empty() || archs->front().is_string()), f.source,
           ": architectures must be a list of class names, got ", archs->dump());
  if (archs->empty()) return;
  const std::string a = archs->front().get<std::string>();
  if (c.model_type == "bert") {
    LD_CHECK(a == "BertForMaskedLM" || a == "BertForSequenceClassification" || a == "BertModel", f.source,
             ": architecture \"", a, "\" is not supported for bert (supported: BertForMaskedLM, ",
             "BertForSequenceClassification, BertModel)");
    c.architecture = a;
  }
  // Causal LM folders sometimes name a sibling class (e.g. GPT2Model); liandan builds the LM head model.
}

}  // namespace

std::string supported_model_types() { return "gpt2, llama, mistral, qwen2, mixtral, bert"; }

HfModelConfig make_hf_config(const models::StackConfig& stack, bool tie_word_embeddings) {
  models::validate(stack);
  HfModelConfig c;
  const bool gpt2 = stack.kind == models::StackKind::gpt2;
  c.model_type = gpt2 ? "gpt2" : "llama";
  c.architecture = default_architecture(c.model_type);
  c.stack = stack;
  if (gpt2) c.stack.intermediate_size = 4 * stack.n_embd;  // the functional GPT-2 stack's MLP width
  c.hidden_act = gpt2 ? "gelu_new" : "silu";
  c.tie_word_embeddings = tie_word_embeddings;
  c.bos_token_id = gpt2 ? stack.vocab_size - 1 : 1;
  c.eos_token_id = gpt2 ? stack.vocab_size - 1 : 2;
  c.eos_token_ids = {c.eos_token_id};
  return c;
}

HfModelConfig parse_hf_config(const json& j, const std::string& source) {
  LD_CHECK(j.is_object(), source, ": expected a JSON object");
  HfModelConfig c;
  c.model_type = get_string(j, "model_type", source, nullptr);
  const Fields f{j, source};
  if (c.model_type == "gpt2")
    parse_gpt2(f, c);
  else if (c.model_type == "bert")
    parse_bert(f, c);
  else if (c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2" ||
           c.model_type == "mixtral")
    parse_llama_family(f, c);
  else
    LD_FAIL(source, ": model_type \"", c.model_type, "\" is not supported (supported: ", supported_model_types(), ")");
  parse_architecture(f, c);
  c.torch_dtype = get_string(j, "torch_dtype", source, "float32");
  try {
    models::validate(c.stack);  // backstop: the stack's own invariants
  } catch (const Error& e) {
    LD_FAIL(source, ": ", e.what());
  }
  return c;
}

namespace {

json read_json_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in.good(), path.string(), ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  LD_CHECK(!j.is_discarded(), path.string(), ": not valid JSON");
  return j;
}

// generation_config.json's eos_token_id (what transformers' generate() stops on) overrides config.json's.
void read_generation_eos(const fs::path& path, HfModelConfig& config) {
  if (!fs::exists(path)) return;
  const json j = read_json_file(path);
  LD_CHECK(j.is_object(), path.string(), ": expected a JSON object");
  if (find(j, "eos_token_id") == nullptr) return;
  config.eos_token_ids = token_ids(j, "eos_token_id", path.string(), -1);
  if (!config.eos_token_ids.empty()) config.eos_token_id = config.eos_token_ids.front();
}

}  // namespace

HfModelConfig read_hf_config(const fs::path& dir_or_file) {
  fs::path path = fs::is_directory(dir_or_file) ? dir_or_file / "config.json" : dir_or_file;
  LD_CHECK(fs::exists(path), path.string(), ": cannot open (a Hugging Face model folder needs a config.json)");
  const json j = read_json_file(path);
  HfModelConfig config = parse_hf_config(j, path.string());
  read_generation_eos(path.parent_path() / "generation_config.json", config);
  return config;
}

namespace {

void add_moe_json(const HfModelConfig& c, json& j) {
  if (!c.moe.enabled()) return;
  j["num_local_experts"] = c.moe.num_experts;
  j["num_experts_per_tok"] = c.moe.top_k;
  j["router_aux_loss_coef"] = c.moe.aux_loss_coef;
  j["router_z_loss_coef"] = c.moe.z_loss_coef;      // liandan's (transformers keeps unknown keys)
  j["moe_capacity_factor"] = c.moe.capacity_factor;  // liandan's
  j["output_router_logits"] = false;
  j["router_jitter_noise"] = 0.0;
}

// What transformers' LlamaConfig / MistralConfig / Qwen2Config / MixtralConfig write.
json llama_family_json(const HfModelConfig& c) {
  const models::StackConfig& s = c.stack;
  json j{{"attention_dropout", 0.0},
         {"hidden_act", "silu"},
         {"hidden_size", s.n_embd},
         {"initializer_range", 0.02},
         {"intermediate_size", s.intermediate_size},
         {"max_position_embeddings", s.n_positions},
         {"num_attention_heads", s.n_head},
         {"num_hidden_layers", s.n_layer},
         {"num_key_value_heads", s.n_kv_head},
         {"rms_norm_eps", s.norm_eps},
         {"rope_theta", s.rope_theta},
         {"tie_word_embeddings", c.tie_word_embeddings},
         {"use_cache", true},
         {"vocab_size", s.vocab_size}};
  if (c.model_type == "llama") {
    j["attention_bias"] = false;
    j["mlp_bias"] = false;
    j["pretraining_tp"] = 1;
    j["rope_scaling"] = nullptr;
  }
  if (c.model_type == "mistral" || c.model_type == "mixtral")
    j["sliding_window"] = c.sliding_window > 0 ? json(c.sliding_window) : json(nullptr);
  if (c.model_type == "qwen2") {
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
    j["max_window_layers"] = s.n_layer;
  }
  add_moe_json(c, j);
  return j;
}

json gpt2_json(const HfModelConfig& c) {
  const models::StackConfig& s = c.stack;
  json j{{"activation_function", c.hidden_act.empty() ? "gelu_new" : c.hidden_act},
         {"attn_pdrop", 0.1},
         {"embd_pdrop", 0.1},
         {"initializer_range", 0.02},
         {"layer_norm_epsilon", s.norm_eps},
         {"n_embd", s.n_embd},
         {"n_head", s.n_head},
         {"n_inner", s.intermediate_size == 4 * s.n_embd ? json(nullptr) : json(s.intermediate_size)},
         {"n_layer", s.n_layer},
         {"n_positions", s.n_positions},
         {"resid_pdrop", 0.1},
         {"scale_attn_weights", true},
         {"tie_word_embeddings", c.tie_word_embeddings},
         {"use_cache", true},
         {"vocab_size", s.vocab_size}};
  add_moe_json(c, j);
  return j;
}

json bert_json(const HfModelConfig& c) {
  const models::StackConfig& s = c.stack;
  json id2label = json::object(), label2id = json::object();
  for (int64_t i = 0; i < c.num_labels; ++i) {
    id2label[std::to_string(i)] = "LABEL_" + std::to_string(i);
    label2id["LABEL_" + std::to_string(i)] = i;
  }
  return json{{"attention_probs_dropout_prob", 0.1},
              {"hidden_act", c.hidden_act.empty() ? "gelu" : c.hidden_act},
              {"hidden_dropout_prob", 0.1},
              {"hidden_size", s.n_embd},
              {"id2label", id2label},
              {"initializer_range", 0.02},
              {"intermediate_size", s.intermediate_size},
              {"label2id", label2id},
              {"layer_norm_eps", s.norm_eps},
              {"max_position_embeddings", s.n_positions},
              {"num_attention_heads", s.n_head},
              {"num_hidden_layers", s.n_layer},
              {"pad_token_id", c.pad_token_id},
              {"position_embedding_type", "absolute"},
              {"tie_word_embeddings", c.tie_word_embeddings},
              {"type_vocab_size", c.type_vocab_size},
              {"use_cache", true},
              {"vocab_size", s.vocab_size}};
}

}  // namespace

namespace {

json eos_json(const HfModelConfig& c) {
  if (c.eos_token_ids.size() > 1) return json(c.eos_token_ids);
  return json(c.eos_token_id);
}

}  // namespace

json to_hf_config_json(const HfModelConfig& c) {
  json j;
  if (c.model_type == "gpt2")
    j = gpt2_json(c);
  else if (c.model_type == "bert")
    j = bert_json(c);
  else if (c.model_type == "llama" || c.model_type == "mistral" || c.model_type == "qwen2" ||
           c.model_type == "mixtral")
    j = llama_family_json(c);
  else
    LD_FAIL("config.json: model_type \"", c.model_type, "\" cannot be written (supported: ",
            supported_model_types(), ")");
  j["architectures"] = json::array({c.architecture.empty() ? default_architecture(c.model_type) : c.architecture});
  j["model_type"] = c.model_type;
  j["torch_dtype"] = c.torch_dtype;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_id >= 0) j["eos_token_id"] = eos_json(c);
  return j;
}

json to_generation_config_json(const HfModelConfig& c) {
  json j = json::object();
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_id >= 0) j["eos_token_id"] = eos_json(c);
  if (c.pad_token_id >= 0) j["pad_token_id"] = c.pad_token_id;
  return j;
}

void write_hf_config(const fs::path& dir, const HfModelConfig& config) {
  write_file_atomically(dir / "config.json", to_hf_config_json(config).dump(2) + "\n");
  write_file_atomically(dir / "generation_config.json", to_generation_config_json(config).dump(2) + "\n");
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

namespace {

int64_t linear_params(int64_t in, int64_t out, bool bias) { return in * out + (bias ? out : 0); }

// The feed-forward of one block: dense, or num_experts copies plus the router.
int64_t ffn_params(const HfModelConfig& c, int64_t dense_one) {
  if (!c.moe.enabled()) return dense_one;
  return c.moe.num_experts * dense_one + linear_params(c.stack.n_embd, c.moe.num_experts, false);
}

int64_t llama_family_params(const HfModelConfig& c) {
  const models::StackConfig& s = c.stack;
  const int64_t C = s.n_embd, D = s.head_dim(), I = s.intermediate_size;
  const bool b = c.attention_bias;
  const int64_t attn = linear_params(C, s.n_head * D, b) + 2 * linear_params(C, s.n_kv_head * D, b) +
                       linear_params(s.n_head * D, C, false);
  const int64_t layer = 2 * C + attn + ffn_params(c, 3 * C * I);
  const int64_t embed = s.vocab_size * C;
  return embed + s.n_layer * layer + C + (c.tie_word_embeddings ? 0 : embed);
}

int64_t gpt2_params(const HfModelConfig& c) {
  const models::StackConfig& s = c.stack;
  const int64_t C = s.n_embd, I = s.intermediate_size;
  const int64_t mlp = linear_params(C, I, true) + linear_params(I, C, true);
  const int64_t layer = 4 * C + linear_params(C, 3 * C, true) + linear_params(C, C, true) + ffn_params(c, mlp);
  const int64_t embed = s.vocab_size * C;
  return embed + s.n_positions * C + s.n_layer * layer + 2 * C + (c.tie_word_embeddings ? 0 : embed);
}

int64_t bert_params(const HfModelConfig& c) {
  const models::StackConfig& s = c.stack;
  const int64_t C = s.n_embd, I = s.intermediate_size, V = s.vocab_size;
  const int64_t embeddings = (V + s.n_positions + c.type_vocab_size) * C + 2 * C;
  const int64_t layer = 4 * linear_params(C, C, true) + linear_params(C, I, true) + linear_params(I, C, true) + 4 * C;
  int64_t head = 0;
  if (c.architecture == "BertForSequenceClassification")
    head = linear_params(C, C, true) + linear_params(C, c.num_labels, true);  // pooler, classifier
  else if (c.architecture == "BertModel")
    head = linear_params(C, C, true);  // pooler
  else
    head = linear_params(C, C, true) + 2 * C + V + (c.tie_word_embeddings ? 0 : V * C);  // transform, LN, decoder
  return embeddings + s.n_layer * layer + head;
}

}  // namespace

int64_t expected_parameter_count(const HfModelConfig& config) {
  if (config.model_type == "gpt2") return gpt2_params(config);
  if (config.model_type == "bert") return bert_params(config);
  return llama_family_params(config);
}

}  // namespace ld::io
