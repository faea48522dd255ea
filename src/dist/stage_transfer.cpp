#include "dist/stage_transfer.hpp"

#include <sstream>
#include <string>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "ops/ops.hpp"

namespace ld::dist {

namespace {

// Tags of these transfers (the schedule's activation tags are below them).
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

}  // namespace

nn::StateDict gather_to_first_stage(Communicator& pp, const NamedTensors& local) {
  if (pp.rank() != 0) {
    send_string(pp, describe(local), 0);
    send_tensors(pp, local, 0);
    return {};
  }
  nn::StateDict full(local.begin(), local.end());
  for (int r = 1; r < pp.size(); ++r) {
    NamedTensors part = allocate_described(recv_string(pp, r));
    recv_tensors(pp, part, r);
    for (auto& [name, t] : part) full.emplace(name, t);  // a name already there came from a lower stage
  }
  return full;
}

NamedTensors scatter_from_first_stage(Communicator& pp, const nn::StateDict& full, NamedTensors wanted) {
  if (pp.rank() != 0) {
    send_string(pp, describe(wanted), 0);
    const std::string error = recv_string(pp, 0);
    LD_CHECK(error.empty(), error);
    NamedTensors received = allocate_described(describe(wanted));  // fresh: wanted may be parameters
    recv_tensors(pp, received, 0);
    return received;
  }
  std::string first_error = pick_from_full(full, wanted, 0);
  for (int r = 1; r < pp.size(); ++r) {
    NamedTensors theirs = allocate_described(recv_string(pp, r));
    const std::string error = pick_from_full(full, theirs, r);
    send_string(pp, error, r);
    if (error.empty()) send_tensors(pp, theirs, r);
    if (first_error.empty()) first_error = error;
  }
  LD_CHECK(first_error.empty(), first_error);
  return wanted;
}

void sum_tied_gradient(Communicator& pp, Tensor weight, int peer) {
  autograd::NoGradGuard no_grad;
  const Tensor own = weight.grad().defined() ? weight.grad().contiguous() : zeros(weight.shape(), weight.dtype());
  Tensor other = empty(weight.shape(), weight.dtype());
  WorkPtr recv = pp.recv_async(other.raw(), int64_t(other.nbytes()), ElemType::u8, peer, kTiedGradTag);
  WorkPtr send = pp.send_async(own.raw(), int64_t(own.nbytes()), ElemType::u8, peer, kTiedGradTag);
  recv->wait();
  send->wait();
  // Addition commutes exactly, so both copies get bit-identical gradients.
  weight.set_grad(ops::add(own, other));
}

}  // namespace ld::dist
