#include "peft/adapter.hpp"

#include "core/error.hpp"
#include "ops/ops.hpp"

namespace ld::peft {

void AdapterConfig::validate() const {
  LD_CHECK(width >= 1, "Adapter: width=", width, " must be at least 1");
  LD_CHECK(nonlinearity == "gelu" || nonlinearity == "relu", "Adapter: nonlinearity \"", nonlinearity,
           "\" is not supported (gelu, relu)");
}

HoulsbyAdapter::HoulsbyAdapter(int64_t dim, const AdapterConfig& config, Generator& gen)
    : relu_(config.nonlinearity == "relu") {
  config.validate();
  adapter_down = register_module("adapter_down", std::make_shared<nn::Linear>(dim, config.width, /*bias=*/true, gen));
  adapter_up = register_module("adapter_up", std::make_shared<nn::Linear>(config.width, dim, /*bias=*/true, gen));
  adapter_up->weight.zero_();  // the model starts unchanged
}

Tensor HoulsbyAdapter::adapt(const Tensor& /*x*/, Tensor y) const {
  Tensor h = adapter_down->forward(y);
  h = relu_ ? ops::relu(h) : ops::gelu(h, /*tanh_approximation=*/false);
  return ops::add(y, adapter_up->forward(h));
}

int64_t AdapterModel::trainable_parameter_count() const {
  int64_t n = 0;
  for (const AdapterTarget& t : targets) {
    const int64_t dim = t.projection.out_features();
    n += 2 * dim * config.width + config.width + dim;
  }
  return n;
}

std::vector<std::string> houlsby_targets(const models::CausalLM& model) {
  const io::HfModelConfig& hf = model.hf_config();
  LD_CHECK(!hf.moe.enabled(), "Adapter: model_type \"", hf.model_type,
           "\" with experts (MoE) is not supported: its feed-forward output is no single projection");
  std::vector<std::string> names;
  for (int64_t i = 0; i < hf.stack.n_layer; ++i) {
    const std::string layer = std::to_string(i);
    if (hf.model_type == "gpt2") {
      names.push_back("transformer.h." + layer + ".attn.c_proj");
      names.push_back("transformer.h." + layer + ".mlp.c_proj");
    } else {
      names.push_back("model.layers." + layer + ".self_attn.o_proj");
      names.push_back("model.layers." + layer + ".mlp.down_proj");
    }
  }
  return names;
}

AdapterModel apply_houlsby(models::CausalLM& model, const AdapterConfig& config, Generator& gen) {
  return apply_houlsby_to(model, config, houlsby_targets(model), gen, "Adapter");
}

AdapterModel apply_houlsby_to(nn::Module& model, const AdapterConfig& config,
                              const std::vector<std::string>& module_names, Generator& gen, const std::string& what) {
  config.validate();
  std::vector<Projection> targets;
  for (const std::string& name : module_names) {
    targets.push_back(find_projection(model, name, what));
    LD_CHECK(!targets.back().has_adapter("adapter"), what, ": '", name, "' already has an adapter");
  }
  freeze_all(model);
  AdapterModel out{.config = config, .targets = {}};
  for (const Projection& p : targets) {
    auto adapter = std::make_shared<HoulsbyAdapter>(p.out_features(), config, gen);
    adapter->to(p.weight().device());  // made on the host: beside a base already on a device
    p.attach(adapter);
    out.targets.push_back({p, adapter});
  }
  return out;
}

}  // namespace ld::peft
