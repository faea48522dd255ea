#include "peft/lora.hpp"

#include <cmath>
#include <set>
#include <sstream>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "ops/ops.hpp"

namespace ld::peft {

namespace {

std::string join(const std::vector<std::string>& names) {
  std::ostringstream os;
  for (size_t i = 0; i < names.size(); ++i) os << (i ? ", " : "") << names[i];
  return os.str();
}

bool is_all_linear(const std::vector<std::string>& targets) { return targets.size() == 1 && targets[0] == kAllLinear; }

// The output head is excluded from all-linear, as PEFT excludes the model's output embeddings.
bool is_output_head(const std::string& name) { return name == "lm_head"; }

// The last component of a module name ("c_proj" of "transformer.h.0.mlp.c_proj").
std::string base_name(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

// The selected projections, and the target list PEFT would save (all-linear becomes the set of
// the selected layers' last name components).
std::vector<Projection> select_targets(nn::Module& model, LoraConfig& config) {
  const std::vector<Projection> all = find_projections(model);
  std::vector<Projection> chosen;
  const bool all_linear = is_all_linear(config.target_modules);
  for (const Projection& p : all) {
    bool hit = false;
    for (const std::string& t : config.target_modules) hit = hit || matches_target(p.name, t);
    if (all_linear) hit = !is_output_head(p.name);
    if (hit) chosen.push_back(p);
  }
  LD_CHECK(!chosen.empty(), "LoRA: target_modules [", join(config.target_modules),
           "] match no Linear/Conv1D module of the model (a target matches a module whose full name equals it or "
           "ends with '.' + it; the model has ",
           describe_projections(all), ")");
  if (all_linear) {
    std::set<std::string> names;
    for (const Projection& p : chosen) names.insert(base_name(p.name));
    config.target_modules.assign(names.begin(), names.end());
  }
  return chosen;
}

LoraModel attach_all(const std::vector<Projection>& targets, const LoraConfig& config, Generator& gen) {
  for (const Projection& p : targets)
    LD_CHECK(!p.has_adapter("lora"), "LoRA: '", p.name, "' already has a LoRA adapter");
  LoraModel out{.config = config, .targets = {}};
  for (const Projection& p : targets) {
    auto lora = std::make_shared<LoraLayer>(p.in_features(), p.out_features(), config, gen);
    lora->to(p.weight().device());  // made on the host: beside a base already on a device
    p.attach(lora);
    out.targets.push_back({p, lora});
  }
  return out;
}

void check_f32_base(const LoraTarget& t, const char* what) {
  LD_CHECK(t.projection.weight().dtype() == DType::f32, "LoRA ", what, ": '", t.projection.name, "' has a ",
           dtype_name(t.projection.weight().dtype()), " weight; merging needs an f32 base");
}

// weight += sign * delta, in the layer's own layout.
void add_delta(const LoraTarget& t, double sign) {
  autograd::NoGradGuard no_grad;
  Tensor delta = ops::scale(t.lora->delta_weight(), sign);
  if (t.projection.fan_in_fan_out()) delta = delta.transpose(0, 1);
  Tensor w = t.projection.weight();
  w.copy_(ops::add(w, delta));
}

}  // namespace

double LoraConfig::scale() const { return use_rslora ? alpha / std::sqrt(double(r)) : alpha / double(r); }

void LoraConfig::validate() const {
  LD_CHECK(r >= 1, "LoRA: rank r=", r, " must be at least 1");
  LD_CHECK(alpha > 0, "LoRA: lora_alpha=", alpha, " must be positive");
  LD_CHECK(dropout >= 0 && dropout < 1, "LoRA: lora_dropout=", dropout, " must be in [0, 1)");
}

std::vector<std::string> default_lora_targets(const std::string& model_type) {
  if (model_type == "gpt2") return {"c_attn"};
  if (model_type == "llama" || model_type == "mistral" || model_type == "qwen2" || model_type == "mixtral")
    return {"q_proj", "v_proj"};
  if (model_type == "bert") return {"query", "value"};
  LD_FAIL("LoRA: no default target_modules for model_type \"", model_type,
          "\" (defaults exist for gpt2, llama, mistral, qwen2, mixtral, bert); name the modules to adapt");
}

LoraLayer::LoraLayer(int64_t in, int64_t out, const LoraConfig& config, Generator& gen)
    : scale(config.scale()), dropout(config.dropout) {
  config.validate();
  lora_A = register_module("lora_A", std::make_shared<nn::Linear>(in, config.r, /*bias=*/false, gen));
  lora_B = register_module("lora_B", std::make_shared<nn::Linear>(config.r, out, /*bias=*/false, gen));
  // kaiming_uniform_(a=sqrt(5)) as nn.Linear and PEFT: U(-1/sqrt(in), 1/sqrt(in)); B = 0.
  const float bound = 1.0f / std::sqrt(float(in));
  lora_A->weight.copy_(uniform({config.r, in}, -bound, bound, &gen));
  lora_B->weight.zero_();
}

// The scale is applied to the rank-r activation A x ([..., r]) rather than to B A x ([..., out]):
// the same product, but the scale's forward and backward passes touch r columns instead of out.
// B h is added by B's gemm into y's own buffer (y is the base layer's fresh output): no add pass.
Tensor LoraLayer::adapt(const Tensor& x, Tensor y) const {
  if (merged) return y;
  Tensor h = ops::scale(lora_A->forward(ops::dropout(x, dropout, is_training())), scale);
  return ops::projection(h, lora_B->weight, ops::WeightLayout::out_in, Tensor(), std::move(y));
}

Tensor LoraLayer::delta_weight() const { return ops::scale(ops::matmul(lora_B->weight, lora_A->weight), scale); }

int64_t LoraModel::trainable_parameter_count() const {
  int64_t n = 0;
  for (const LoraTarget& t : targets) n += config.r * (t.projection.in_features() + t.projection.out_features());
  return n;
}

LoraModel apply_lora(nn::Module& model, LoraConfig config, Generator& gen, const std::string& model_type) {
  config.validate();
  if (config.target_modules.empty()) config.target_modules = default_lora_targets(model_type);
  const std::vector<Projection> targets = select_targets(model, config);
  freeze_all(model);
  return attach_all(targets, config, gen);
}

LoraModel apply_lora_to(nn::Module& model, const LoraConfig& config, const std::vector<std::string>& module_names,
                        Generator& gen, const std::string& what) {
  config.validate();
  std::vector<Projection> targets;
  for (const std::string& name : module_names) targets.push_back(find_projection(model, name, what));
  freeze_all(model);
  return attach_all(targets, config, gen);
}

void merge_lora(LoraModel& model) {
  for (const LoraTarget& t : model.targets) check_f32_base(t, "merge");
  for (LoraTarget& t : model.targets) {
    if (t.lora->merged) continue;
    add_delta(t, +1.0);
    t.lora->merged = true;
  }
}

void unmerge_lora(LoraModel& model) {
  for (const LoraTarget& t : model.targets) check_f32_base(t, "unmerge");
  for (LoraTarget& t : model.targets) {
    if (!t.lora->merged) continue;
    add_delta(t, -1.0);
    t.lora->merged = false;
  }
}

}  // namespace ld::peft
