#include "dist/pipeline_stage.hpp"

#include <algorithm>
#include <sstream>
#include <string>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "ops/ops.hpp"

namespace ld::dist {

namespace {

// Tags of the checkpoint transfers (the schedule's activation tags are below them).
constexpr int kDescribeTag = 32001;
constexpr int kTensorTag = 32002;
constexpr int kTiedGradTag = 32003;

// --- named tensors between ranks: first a text describing them (name, dtype, shape per line), so
// the receiver can allocate, then each tensor's bytes.

std::string describe(const NamedTensors& tensors) {
  std::ostringstream out;
  for (const auto& [name, t] : tensors) {
    out << name << '\t' << int(t.dtype());
    for (int64_t d : t.shape()) out << ' ' << d;
    out << '\n';
  }
  return out.str();
}

NamedTensors allocate_described(const std::string& text) {
  NamedTensors out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t tab = line.find('\t');
    std::istringstream fields(line.substr(tab + 1));
    int dtype = 0;
    fields >> dtype;
    Shape shape;
    for (int64_t d = 0; fields >> d;) shape.push_back(d);
    out.emplace_back(line.substr(0, tab), empty(shape, DType(dtype)));
  }
  return out;
}

void send_string(Communicator& comm, const std::string& s, int dest) {
  int64_t length = int64_t(s.size());
  comm.send(&length, 1, ElemType::i64, dest, kDescribeTag);
  if (length > 0) comm.send(s.data(), length, ElemType::u8, dest, kDescribeTag);
}

std::string recv_string(Communicator& comm, int source) {
  int64_t length = 0;
  comm.recv(&length, 1, ElemType::i64, source, kDescribeTag);
  std::string s(size_t(length), '\0');
  if (length > 0) comm.recv(s.data(), length, ElemType::u8, source, kDescribeTag);
  return s;
}

// Raw bytes, so that any dtype travels.
void send_tensors(Communicator& comm, const NamedTensors& tensors, int dest) {
  for (const auto& [name, t] : tensors) {
    const Tensor c = t.contiguous();
    comm.send(c.raw(), int64_t(c.nbytes()), ElemType::u8, dest, kTensorTag);
  }
}

void recv_tensors(Communicator& comm, NamedTensors& tensors, int source) {
  for (auto& [name, t] : tensors) comm.recv(t.raw(), int64_t(t.nbytes()), ElemType::u8, source, kTensorTag);
}

// The tensors of `wanted` (names, dtypes, shapes) taken from `full`, or why they cannot be.
std::string pick_from_full(const nn::StateDict& full, NamedTensors& wanted, int stage) {
  for (auto& [name, t] : wanted) {
    const auto it = full.find(name);
    if (it == full.end())
      return "pipeline stage " + std::to_string(stage) + ": the full state dict has no \"" + name + "\"";
    if (it->second.shape() != t.shape())
      return "pipeline stage " + std::to_string(stage) + ": \"" + name + "\" is " + shape_str(it->second.shape()) +
             " in the full state dict, the stage holds " + shape_str(t.shape());
    t = it->second.to(t.dtype()).contiguous();
  }
  return "";
}

void append_module(NamedTensors& out, const std::string& prefix, const nn::Module& module) {
  for (auto& [name, t] : module.named_parameters()) out.emplace_back(prefix + name, t);
}

// The last stage's own copy of the tied embedding: a leaf with wte's values.
Tensor copy_of(const Tensor& weight) {
  Tensor copy = weight.detach().clone();
  copy.set_requires_grad(weight.requires_grad());
  return copy;
}

}  // namespace

BlockRange stage_blocks(int64_t n_layer, int stages, int stage) {
  LD_CHECK(stages >= 1 && stage >= 0 && stage < stages, "pipeline: stage ", stage, " of ", stages, " does not exist");
  LD_CHECK(stages <= n_layer, "pipeline: ", stages, " stages need at least as many layers, but the model has n_layer=",
           n_layer);
  const int64_t base = n_layer / stages, extra = n_layer % stages;
  const int64_t first = stage * base + std::min<int64_t>(stage, extra);
  return {first, first + base + (stage < extra ? 1 : 0)};
}

PipelineGpt2Stage::PipelineGpt2Stage(const models::Gpt2LMHeadModel& model, Communicator& comm)
    : comm_(&comm), hf_(model.hf_config()) {
  LD_CHECK(!hf_.moe.enabled(), "pipeline parallel: only dense GPT-2 is supported (this one has ",
           hf_.moe.num_experts, " experts per layer)");
  blocks_ = stage_blocks(hf_.stack.n_layer, stages(), stage());
  const models::Gpt2Model& t = *model.transformer;
  if (is_first()) {
    wte_ = t.wte;
    wpe_ = t.wpe;
  }
  for (int64_t i = blocks_.first; i < blocks_.end; ++i) blocks_h_.push_back(t.h->at<models::Gpt2Block>(size_t(i)));
  if (is_last()) {
    ln_f_ = t.ln_f;
    head_weight_ = has_tied_copy() ? copy_of(t.wte->weight) : model.lm_head->weight;
  }
  activation_dtype_ = blocks_h_.front()->ln_1->weight.dtype();
}

Tensor PipelineGpt2Stage::forward(const Tensor& ids, const Tensor& hidden) const {
  models::LmInputs in;
  in.ids = ids;
  // Checks the ids (vocabulary, n_positions) and gives positions 0..T-1, as the full model's run.
  const models::AttentionContext ctx = models::make_attention_context(in, hf_.stack, /*sliding_window=*/0, Tensor());
  if (!is_first()) {
    const Shape expected = {ids.size(0), ids.size(1), hf_.stack.n_embd};
    LD_CHECK(hidden.defined() && hidden.shape() == expected, "pipeline stage ", stage(), ": the hidden states must be ",
             shape_str(expected), ", got ", hidden.defined() ? shape_str(hidden.shape()) : "none");
  }
  const Tensor out = run_blocks(is_first() ? embed(ids, ctx) : hidden, ctx);
  return is_last() ? ops::linear(out, head_weight_) : out;
}

Tensor PipelineGpt2Stage::loss(const Tensor& logits, const Tensor& targets) {
  return ops::cross_entropy(logits, targets);
}

Tensor PipelineGpt2Stage::embed(const Tensor& ids, const models::AttentionContext& ctx) const {
  return ops::add(wte_->forward(ids), wpe_->forward(ctx.positions));
}

// Gpt2LMHeadModel::run's blocks: each LayerNorm fused into the residual add before it, except at the
// end of a stage that is not the last, where the stream leaves unnormalised (the next stage's first
// ln_1 normalises it).
Tensor PipelineGpt2Stage::run_blocks(const Tensor& input, const models::AttentionContext& ctx) const {
  Tensor residual = input;
  Tensor normed = blocks_h_.front()->ln_1->forward(residual);
  const size_t n = blocks_h_.size();
  for (size_t j = 0; j < n; ++j) {
    const models::Gpt2Block& block = *blocks_h_[j];
    const nn::LayerNorm& ln_2 = *block.ln_2;
    const Tensor attn = block.attn->forward(normed, ctx, nullptr, blocks_.first + int64_t(j));
    const ops::ResidualNorm mid = ops::add_layernorm(attn, residual, ln_2.weight, ln_2.bias, ln_2.eps);
    const Tensor ffn = block.mlp->forward(mid.normed);
    const nn::LayerNorm* next = j + 1 < n ? blocks_h_[j + 1]->ln_1.get() : (is_last() ? ln_f_.get() : nullptr);
    if (next == nullptr) return ops::add(ffn, mid.sum);
    const ops::ResidualNorm end = ops::add_layernorm(ffn, mid.sum, next->weight, next->bias, next->eps);
    residual = end.sum;
    normed = end.normed;
  }
  return normed;
}

NamedTensors PipelineGpt2Stage::named_parameters() const {
  NamedTensors out;
  if (is_first()) {
    append_module(out, "transformer.wte.", *wte_);
    append_module(out, "transformer.wpe.", *wpe_);
  }
  for (size_t j = 0; j < blocks_h_.size(); ++j)
    append_module(out, "transformer.h." + std::to_string(blocks_.first + int64_t(j)) + ".", *blocks_h_[j]);
  if (is_last()) {
    append_module(out, "transformer.ln_f.", *ln_f_);
    if (has_tied_copy()) out.emplace_back("transformer.wte.weight", head_weight_);
    if (!hf_.tie_word_embeddings) out.emplace_back("lm_head.weight", head_weight_);
  }
  return out;
}

void PipelineGpt2Stage::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

void PipelineGpt2Stage::reduce_tied_gradients() {
  if (!has_tied_copy() || !(is_first() || is_last())) return;
  Tensor weight = is_first() ? wte_->weight : head_weight_;  // a handle
  const int peer = is_first() ? stages() - 1 : 0;
  autograd::NoGradGuard no_grad;
  const Tensor own = weight.grad().defined() ? weight.grad().contiguous() : zeros(weight.shape(), weight.dtype());
  Tensor other = empty(weight.shape(), weight.dtype());
  WorkPtr recv = comm_->recv_async(other.raw(), int64_t(other.nbytes()), ElemType::u8, peer, kTiedGradTag);
  WorkPtr send = comm_->send_async(own.raw(), int64_t(own.nbytes()), ElemType::u8, peer, kTiedGradTag);
  recv->wait();
  send->wait();
  // Addition commutes exactly, so both copies get bit-identical gradients.
  weight.set_grad(ops::add(own, other));
}

nn::StateDict PipelineGpt2Stage::gather_full(const NamedTensors& local) const {
  if (comm_->rank() != 0) {
    send_string(*comm_, describe(local), 0);
    send_tensors(*comm_, local, 0);
    return {};
  }
  nn::StateDict full(local.begin(), local.end());
  for (int r = 1; r < comm_->size(); ++r) {
    NamedTensors part = allocate_described(recv_string(*comm_, r));
    recv_tensors(*comm_, part, r);
    for (auto& [name, t] : part) full.emplace(name, t);  // a name already there came from a lower stage
  }
  return full;
}

nn::StateDict PipelineGpt2Stage::gather_full_state_dict() const {
  nn::StateDict full = gather_full(named_parameters());
  if (comm_->rank() == 0 && hf_.tie_word_embeddings) full.emplace("lm_head.weight", full.at("transformer.wte.weight"));
  return full;
}

// Rank 0 serves every other rank before failing, and tells each whether its part was found, so that
// an error ends every rank rather than leaving some waiting.
NamedTensors PipelineGpt2Stage::scatter_full(const nn::StateDict& full) const {
  NamedTensors part = named_parameters();
  if (comm_->rank() != 0) {
    send_string(*comm_, describe(part), 0);
    const std::string error = recv_string(*comm_, 0);
    LD_CHECK(error.empty(), error);
    NamedTensors received = allocate_described(describe(part));
    recv_tensors(*comm_, received, 0);
    return received;
  }
  std::string first_error = pick_from_full(full, part, 0);
  for (int r = 1; r < comm_->size(); ++r) {
    NamedTensors wanted = allocate_described(recv_string(*comm_, r));
    const std::string error = pick_from_full(full, wanted, r);
    send_string(*comm_, error, r);
    if (error.empty()) send_tensors(*comm_, wanted, r);
    if (first_error.empty()) first_error = error;
  }
  LD_CHECK(first_error.empty(), first_error);
  return part;
}

void PipelineGpt2Stage::load_full_state_dict(const nn::StateDict& full) {
  const NamedTensors values = scatter_full(full);
  NamedTensors params = named_parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].second.copy_(values[i].second);
}

}  // namespace ld::dist
