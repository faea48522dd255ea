#include "autograd/checkpoint.hpp"

#include "autograd/engine.hpp"
#include "autograd/node.hpp"
#include "core/rng.hpp"

namespace ld::autograd {

namespace {

struct CheckpointBackward : Node {
  CheckpointFn fn;
  std::vector<Tensor> inputs;  // detached
  std::vector<bool> input_requires_grad;
  std::vector<Tensor> params;  // leaves fn used
  uint64_t rng_seed = 0, rng_offset = 0;

  const char* name() const override { return "CheckpointBackward"; }

  std::vector<Tensor> backward(const std::vector<Tensor>& grad_outputs) override {
    Generator& gen = default_generator();
    uint64_t seed_now = gen.seed(), offset_now = gen.offset();
    gen.set_state(rng_seed, rng_offset);  // same dropout masks as the first forward
    std::vector<Tensor> leaves_in;
    for (size_t i = 0; i < inputs.size(); ++i) {
      Tensor d = inputs[i].defined() ? inputs[i].detach() : Tensor();
      if (input_requires_grad[i]) d.set_requires_grad(true);
      leaves_in.push_back(d);
    }
    std::vector<Tensor> outputs;
    {
      GradModeGuard grad_on(true);
      outputs = fn(leaves_in);
    }
    gen.set_state(seed_now, offset_now);

    std::vector<Tensor> roots, seeds;
    for (size_t i = 0; i < outputs.size() && i < grad_outputs.size(); ++i) {
      if (grad_outputs[i].defined() && outputs[i].requires_grad()) {
        roots.push_back(outputs[i]);
        seeds.push_back(grad_outputs[i]);
      }
    }
    std::vector<Tensor> capture;
    for (size_t i = 0; i < leaves_in.size(); ++i)
      if (input_requires_grad[i]) capture.push_back(leaves_in[i]);
    for (const Tensor& p : params) capture.push_back(p);
    std::vector<Tensor> got = run_backward(roots, seeds, false, capture);

    std::vector<Tensor> result;
    size_t c = 0;
    for (size_t i = 0; i < leaves_in.size(); ++i) result.push_back(input_requires_grad[i] ? got[c++] : Tensor());
    for (size_t i = 0; i < params.size(); ++i) result.push_back(got[c++]);
    return result;
  }

  void release() override {
    inputs.clear();
    params.clear();
  }
};

}  // namespace

std::vector<Tensor> checkpoint(const CheckpointFn& fn, const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return fn(inputs);
  Generator& gen = default_generator();
  uint64_t seed = gen.seed(), offset = gen.offset();
  std::vector<Tensor> detached;
  for (const Tensor& t : inputs) detached.push_back(t.defined() ? t.detach() : t);
  std::vector<Tensor> outputs;
  std::vector<Tensor> params;
  {
    LeafCollector collector;
    NoGradGuard no_grad;
    outputs = fn(detached);
    params = collector.leaves();
  }
  bool any = false;
  for (const Tensor& t : inputs) any = any || (t.defined() && t.requires_grad());
  if (!any && params.empty()) return outputs;

  auto node = std::make_shared<CheckpointBackward>();
  node->fn = fn;
  node->inputs = detached;
  for (const Tensor& t : inputs) node->input_requires_grad.push_back(t.defined() && t.requires_grad());
  node->params = params;
  node->rng_seed = seed;
  node->rng_offset = offset;
  node->num_outputs = uint32_t(outputs.size());
  // edges: inputs first, then the parameters fn touched
  detail::connect(*node, inputs);
  detail::connect(*node, params);
  for (size_t i = 0; i < outputs.size(); ++i) {
    // A fresh handle, so that an output which is an input or a parameter itself gets no history.
    outputs[i] = outputs[i].detach();
    set_history(outputs[i], node, uint32_t(i));
  }
  return outputs;
}

}  // namespace ld::autograd
