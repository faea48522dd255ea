#include "peft/peft_io.hpp"

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "io/safetensors.hpp"

namespace ld::peft {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kConfigFile = "adapter_config.json";
const char* const kWeightsFile = "adapter_model.safetensors";
const std::string kModelPrefix = "base_model.model.";  // PEFT's PeftModel -> LoraModel -> the model

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The fields every PEFT config carries (PeftConfigMixin). PEFT saves with inference_mode true.
json common_config(const char* peft_type, const SaveOptions& options) {
  return json{{"peft_type", peft_type},
              {"task_type", "CAUSAL_LM"},
              {"auto_mapping", nullptr},
              {"base_model_name_or_path",
               options.base_model_name_or_path.empty() ? json(nullptr) : json(options.base_model_name_or_path)},
              {"revision", nullptr},
              {"inference_mode", true}};
}

void write_adapter_folder(const fs::path& dir, const SaveOptions& options, const json& config,
                          const NamedTensors& tensors) {
  write_folder_atomically(dir, options.force, [&](const fs::path& tmp) {
    std::ofstream out(tmp / kConfigFile);
    out << config.dump(2) << "\n";
    LD_CHECK(out.good(), (tmp / kConfigFile).string(), ": cannot write");
    out.close();
    io::save_safetensors(tmp / kWeightsFile, tensors, {{"format", "pt"}});
  });
}

// --- reading

struct AdapterFiles {
  fs::path config_path, weights_path;
  json config;
  io::SafetensorsFile weights;
};

AdapterFiles open_adapter(const fs::path& dir) {
  const fs::path config_path = dir / kConfigFile, weights_path = dir / kWeightsFile;
  LD_CHECK(fs::is_regular_file(config_path), config_path.string(), ": not found (an adapter folder holds ",
           kConfigFile, " and ", kWeightsFile, ")");
  LD_CHECK(fs::is_regular_file(weights_path), weights_path.string(), ": not found (an adapter folder holds ",
           kConfigFile, " and ", kWeightsFile, ")");
  std::ifstream in(config_path);
  json config;
  try {
    config = json::parse(in);
  } catch (const json::exception& e) {
    LD_FAIL(config_path.string(), ": not valid JSON (", e.what(), ")");
  }
  LD_CHECK(config.is_object(), config_path.string(), ": expected a JSON object");
  return {config_path, weights_path, config, io::SafetensorsFile::open(weights_path)};
}

template <typename T>
T field(const AdapterFiles& f, const char* key, std::optional<T> fallback = std::nullopt) {
  auto it = f.config.find(key);
  if (it == f.config.end() || it->is_null()) {
    LD_CHECK(fallback.has_value(), f.config_path.string(), ": field \"", key, "\" is missing");
    return *fallback;
  }
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    LD_FAIL(f.config_path.string(), ": field \"", key, "\" has the wrong type (", it->dump(), ")");
  }
}

std::vector<std::string> target_list(const AdapterFiles& f) {
  auto it = f.config.find("target_modules");
  if (it == f.config.end() || it->is_null()) return {};
  if (it->is_string()) return {it->get<std::string>()};  // PEFT: a regex or "all-linear"
  LD_CHECK(it->is_array(), f.config_path.string(), ": target_modules must be a list of names or a string");
  std::vector<std::string> out;
  for (const json& t : *it) {
    LD_CHECK(t.is_string(), f.config_path.string(), ": target_modules holds ", t.dump(), ", not a name");
    out.push_back(t.get<std::string>());
  }
  return out;
}

std::string key_source(const AdapterFiles& f, const std::string& key) {
  return f.weights_path.string() + ": key '" + key + "'";
}

// module name -> (suffix -> key) for keys "base_model.model.<module>.<suffix>"; any other key is an error.
std::map<std::string, std::map<std::string, std::string>> group_keys(const AdapterFiles& f,
                                                                     const std::vector<std::string>& suffixes,
                                                                     const char* peft_type) {
  std::map<std::string, std::map<std::string, std::string>> out;
  for (const io::TensorInfo& info : f.weights.tensors()) {
    const std::string& key = info.name;
    bool known = false;
    for (const std::string& suffix : suffixes) {
      if (key.rfind(kModelPrefix, 0) != 0 || !ends_with(key, "." + suffix)) continue;
      const size_t len = key.size() - kModelPrefix.size() - suffix.size() - 1;
      if (len == 0) continue;
      out[key.substr(kModelPrefix.size(), len)][suffix] = key;
      known = true;
    }
    std::string expected;
    for (const std::string& s : suffixes) expected += (expected.empty() ? "" : ", ") + ("<module>." + s);
    LD_CHECK(known, key_source(f, key), " is not a ", peft_type, " tensor (expected ", kModelPrefix, "{", expected,
             "})");
  }
  LD_CHECK(!out.empty(), f.weights_path.string(), ": holds no ", peft_type, " tensors");
  return out;
}

// The tensor under `key` as f32, checked against `shape` (what the model's module needs).
Tensor tensor_for(const AdapterFiles& f, const std::string& key, const Shape& shape, const std::string& module) {
  Tensor t = f.weights.get(key, DType::f32);
  LD_CHECK(t.shape() == shape, key_source(f, key), " has shape ", shape_str(t.shape()), "; the model's '", module,
           "' needs ", shape_str(shape));
  return t;
}

// Each module's tensors under `suffixes`, all present; every module a projection of the model.
std::map<std::string, std::map<std::string, std::string>> module_keys(models::CausalLM& model, const AdapterFiles& f,
                                                                      const std::vector<std::string>& suffixes,
                                                                      const char* peft_type) {
  auto groups = group_keys(f, suffixes, peft_type);
  for (const auto& [module, keys] : groups) {
    find_projection(model, module, key_source(f, keys.begin()->second));
    for (const std::string& s : suffixes)
      LD_CHECK(keys.count(s), f.weights_path.string(), ": '", module, "' has no ", kModelPrefix + module + "." + s);
  }
  return groups;
}

std::vector<std::string> names_of(const std::map<std::string, std::map<std::string, std::string>>& groups) {
  std::vector<std::string> names;
  for (const auto& [module, _] : groups) names.push_back(module);
  return names;
}

LoraModel load_lora(models::CausalLM& model, const AdapterFiles& f) {
  LoraConfig config;
  config.r = field<int64_t>(f, "r");
  config.alpha = field<double>(f, "lora_alpha", 8.0);
  config.dropout = field<double>(f, "lora_dropout", 0.0);
  config.use_rslora = field<bool>(f, "use_rslora", false);
  config.target_modules = target_list(f);
  const std::string bias = field<std::string>(f, "bias", std::string("none"));
  LD_CHECK(bias == "none", f.config_path.string(), ": bias \"", bias, "\" is not supported (only \"none\")");
  LD_CHECK(!field<bool>(f, "use_dora", false), f.config_path.string(), ": use_dora (DoRA) is not supported");
  try {
    config.validate();
  } catch (const Error& e) {
    LD_FAIL(f.config_path.string(), ": ", e.what());
  }
  const auto groups = module_keys(model, f, {"lora_A.weight", "lora_B.weight"}, "LoRA");
  // Every shape checked before anything is attached.
  std::map<std::string, std::pair<Tensor, Tensor>> tensors;
  for (const auto& [module, keys] : groups) {
    const Projection p = find_projection(model, module, f.weights_path.string());
    tensors[module] = {tensor_for(f, keys.at("lora_A.weight"), {config.r, p.in_features()}, module),
                       tensor_for(f, keys.at("lora_B.weight"), {p.out_features(), config.r}, module)};
  }
  Generator gen(0);  // the init is overwritten
  LoraModel lora = apply_lora_to(model, config, names_of(groups), gen, f.weights_path.string());
  for (LoraTarget& t : lora.targets) {
    t.lora->lora_A->weight.copy_(tensors.at(t.projection.name).first);
    t.lora->lora_B->weight.copy_(tensors.at(t.projection.name).second);
  }
  return lora;
}

PromptTuning load_prompt(models::CausalLM& model, const AdapterFiles& f) {
  const models::StackConfig& c = model.config();
  PromptTuningConfig config;
  config.num_virtual_tokens = field<int64_t>(f, "num_virtual_tokens");
  const int64_t token_dim = field<int64_t>(f, "token_dim", c.n_embd);
  LD_CHECK(token_dim == c.n_embd, f.config_path.string(), ": token_dim=", token_dim,
           " does not match the model's n_embd=", c.n_embd);
  const int64_t submodules = field<int64_t>(f, "num_transformer_submodules", 1);
  LD_CHECK(submodules == 1, f.config_path.string(), ": num_transformer_submodules=", submodules,
           " (encoder-decoder prompts) is not supported; a causal LM has 1");
  try {
    config.validate();
  } catch (const Error& e) {
    LD_FAIL(f.config_path.string(), ": ", e.what());
  }
  for (const io::TensorInfo& info : f.weights.tensors())
    LD_CHECK(info.name == "prompt_embeddings", key_source(f, info.name),
             " is not a prompt-tuning tensor (expected only prompt_embeddings)");
  LD_CHECK(f.weights.contains("prompt_embeddings"), f.weights_path.string(), ": has no prompt_embeddings");
  const Tensor table = tensor_for(f, "prompt_embeddings", {config.num_virtual_tokens, c.n_embd}, "prompt");
  Generator gen(0);  // the init is overwritten
  PromptTuning prompt = apply_prompt_tuning(model, config, gen);
  prompt.prompt->weight.copy_(table);
  const std::string init = field<std::string>(f, "prompt_tuning_init", std::string("RANDOM"));
  prompt.config.init = init == "TEXT" ? PromptTuningConfig::Init::text : PromptTuningConfig::Init::random;
  prompt.config.init_text = field<std::string>(f, "prompt_tuning_init_text", std::string());
  return prompt;
}

AdapterModel load_houlsby(models::CausalLM& model, const AdapterFiles& f) {
  AdapterConfig config;
  config.width = field<int64_t>(f, "width");
  config.nonlinearity = field<std::string>(f, "nonlinearity", std::string("gelu"));
  try {
    config.validate();
  } catch (const Error& e) {
    LD_FAIL(f.config_path.string(), ": ", e.what());
  }
  const std::vector<std::string> suffixes = {"adapter_down.weight", "adapter_down.bias", "adapter_up.weight",
                                             "adapter_up.bias"};
  const auto groups = module_keys(model, f, suffixes, "Adapter");
  std::map<std::string, std::vector<Tensor>> tensors;
  for (const auto& [module, keys] : groups) {
    const int64_t dim = find_projection(model, module, f.weights_path.string()).out_features(), w = config.width;
    const Shape shapes[] = {{w, dim}, {w}, {dim, w}, {dim}};
    for (size_t i = 0; i < suffixes.size(); ++i)
      tensors[module].push_back(tensor_for(f, keys.at(suffixes[i]), shapes[i], module));
  }
  Generator gen(0);  // the init is overwritten
  AdapterModel adapters = apply_houlsby_to(model, config, names_of(groups), gen, f.weights_path.string());
  for (AdapterTarget& t : adapters.targets) {
    const std::vector<Tensor>& src = tensors.at(t.projection.name);
    t.adapter->adapter_down->weight.copy_(src[0]);
    t.adapter->adapter_down->bias.copy_(src[1]);
    t.adapter->adapter_up->weight.copy_(src[2]);
    t.adapter->adapter_up->bias.copy_(src[3]);
  }
  return adapters;
}

}  // namespace

void save_lora(const LoraModel& lora, const fs::path& dir, const SaveOptions& options) {
  LD_CHECK(!lora.targets.empty(), "save_lora: the LoRA model has no targets");
  json config = common_config("LORA", options);
  config["r"] = lora.config.r;
  // PEFT's lora_alpha is an int unless set otherwise; write 16, not 16.0, when it is whole.
  const double alpha = lora.config.alpha;
  config["lora_alpha"] = alpha == std::floor(alpha) ? json(int64_t(alpha)) : json(alpha);
  config["lora_dropout"] = lora.config.dropout;
  config["target_modules"] = lora.config.target_modules;
  config["use_rslora"] = lora.config.use_rslora;
  config["fan_in_fan_out"] = lora.targets.front().projection.fan_in_fan_out();
  config["bias"] = "none";
  config["init_lora_weights"] = true;
  config["modules_to_save"] = nullptr;
  config["layers_to_transform"] = nullptr;
  config["layers_pattern"] = nullptr;
  config["rank_pattern"] = json::object();
  config["alpha_pattern"] = json::object();
  config["use_dora"] = false;
  NamedTensors tensors;
  for (const LoraTarget& t : lora.targets) {
    tensors.emplace_back(kModelPrefix + t.projection.name + ".lora_A.weight", t.lora->lora_A->weight);
    tensors.emplace_back(kModelPrefix + t.projection.name + ".lora_B.weight", t.lora->lora_B->weight);
  }
  write_adapter_folder(dir, options, config, tensors);
}

void save_prompt_tuning(const PromptTuning& prompt, const fs::path& dir, const SaveOptions& options) {
  LD_CHECK(prompt.prompt != nullptr, "save_prompt_tuning: no prompt");
  const bool text = prompt.config.init == PromptTuningConfig::Init::text;
  json config = common_config("PROMPT_TUNING", options);
  config["num_virtual_tokens"] = prompt.config.num_virtual_tokens;
  config["token_dim"] = prompt.token_dim;
  config["num_transformer_submodules"] = 1;
  config["num_attention_heads"] = prompt.num_attention_heads;
  config["num_layers"] = prompt.num_layers;
  config["prompt_tuning_init"] = text ? "TEXT" : "RANDOM";
  config["prompt_tuning_init_text"] = text ? json(prompt.config.init_text) : json(nullptr);
  config["tokenizer_name_or_path"] =
      text && !options.base_model_name_or_path.empty() ? json(options.base_model_name_or_path) : json(nullptr);
  config["tokenizer_kwargs"] = nullptr;
  write_adapter_folder(dir, options, config, {{"prompt_embeddings", prompt.prompt->weight}});
}

void save_houlsby(const AdapterModel& adapters, const fs::path& dir, const SaveOptions& options) {
  LD_CHECK(!adapters.targets.empty(), "save_houlsby: the adapter model has no targets");
  json config = common_config("LIANDAN_ADAPTER", options);
  config["width"] = adapters.config.width;
  config["nonlinearity"] = adapters.config.nonlinearity;
  std::vector<std::string> names;
  NamedTensors tensors;
  for (const AdapterTarget& t : adapters.targets) {
    const std::string prefix = kModelPrefix + t.projection.name + ".";
    names.push_back(t.projection.name);
    tensors.emplace_back(prefix + "adapter_down.weight", t.adapter->adapter_down->weight);
    tensors.emplace_back(prefix + "adapter_down.bias", t.adapter->adapter_down->bias);
    tensors.emplace_back(prefix + "adapter_up.weight", t.adapter->adapter_up->weight);
    tensors.emplace_back(prefix + "adapter_up.bias", t.adapter->adapter_up->bias);
  }
  config["target_modules"] = names;
  write_adapter_folder(dir, options, config, tensors);
}

void save_merged_model(models::CausalLM& model, LoraModel& lora, const fs::path& dir, bool force,
                       const fs::path& tokenizer_from) {
  for (const Projection& p : find_projections(model))
    for (const auto& adapter : p.linear ? p.linear->adapters() : p.conv1d->adapters())
      LD_CHECK(adapter->kind() == "lora", "save_merged_model: '", p.name, "' carries a '", adapter->kind(),
               "' adapter, which cannot be merged into the base weights");
  merge_lora(lora);
  models::save_pretrained(base_parameters(model), model.hf_config(), dir, force, tokenizer_from);
}

LoadedAdapter load_adapter(models::CausalLM& model, const fs::path& dir) {
  const AdapterFiles f = open_adapter(dir);
  LoadedAdapter out;
  out.peft_type = field<std::string>(f, "peft_type");
  const std::string task = field<std::string>(f, "task_type", std::string("CAUSAL_LM"));
  LD_CHECK(task == "CAUSAL_LM", f.config_path.string(), ": task_type \"", task,
           "\" is not supported here (a causal LM adapter has CAUSAL_LM)");
  if (out.peft_type == "LORA")
    out.lora = load_lora(model, f);
  else if (out.peft_type == "PROMPT_TUNING")
    out.prompt = load_prompt(model, f);
  else if (out.peft_type == "LIANDAN_ADAPTER")
    out.adapter = load_houlsby(model, f);
  else
    LD_FAIL(f.config_path.string(), ": peft_type \"", out.peft_type,
            "\" is not supported (LORA, PROMPT_TUNING, LIANDAN_ADAPTER)");
  return out;
}

}  // namespace ld::peft
