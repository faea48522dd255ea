// `liandan op NAME --shape 2,3 --shape 3,4`: run one op on random inputs and print the result's
// shape and checksum. Handy to try an op (or its error message) from a shell.
#include <cstdio>
#include <sstream>

#include "backend/cpu/cpu_backend.hpp"
#include "cli/commands.hpp"
#include "core/rng.hpp"
#include "ops/ops.hpp"

namespace ld::cli {

namespace {

Shape parse_shape(const std::string& text) {
  Shape s;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (part.empty()) continue;
    try {
      size_t used = 0;
      long long v = std::stoll(part, &used);
      LD_CHECK(used == part.size() && v >= 0, "");
      s.push_back(v);
    } catch (const std::exception&) {
      LD_FAIL("--shape '", text, "': expected comma-separated non-negative integers like 2,3,4");
    }
  }
  return s;
}

Tensor run_op(const std::string& name, const std::vector<Tensor>& in) {
  auto need = [&](size_t n) {
    LD_CHECK(in.size() == n, "op ", name, " takes ", n, " --shape arguments, got ", in.size());
  };
  if (name == "add") return need(2), ops::add(in[0], in[1]);
  if (name == "mul") return need(2), ops::mul(in[0], in[1]);
  if (name == "matmul") return need(2), ops::matmul(in[0], in[1]);
  if (name == "linear") return need(2), ops::linear(in[0], in[1]);
  if (name == "softmax") return need(1), ops::softmax(in[0]);
  if (name == "gelu") return need(1), ops::gelu(in[0]);
  if (name == "layernorm") return need(3), ops::layernorm(in[0], in[1], in[2]);
  if (name == "rmsnorm") return need(2), ops::rmsnorm(in[0], in[1]);
  if (name == "attention") return need(3), ops::attention(in[0], in[1], in[2]);
  if (name == "sum") return need(1), ops::sum(in[0]);
  LD_FAIL("unknown op '", name, "' (this command knows: add, mul, matmul, linear, softmax, gelu, layernorm, rmsnorm, attention, sum)");
}

}  // namespace

void add_op_command(CLI::App& app, std::function<void()>& run) {
  auto* cmd = app.add_subcommand("op", "Run one op on random inputs and print the output shape and checksum");
  auto name = std::make_shared<std::string>();
  auto shapes = std::make_shared<std::vector<std::string>>();
  auto seed = std::make_shared<uint64_t>(0);
  cmd->add_option("name", *name, "op name (add, mul, matmul, linear, softmax, gelu, layernorm, rmsnorm, attention, sum)")->required();
  cmd->add_option("--shape", *shapes, "shape of each input, e.g. --shape 2,3 --shape 3,4")->required();
  cmd->add_option("--seed", *seed, "random seed");
  run = [=] {
    Generator gen(*seed);
    std::vector<Tensor> inputs;
    for (const auto& s : *shapes) inputs.push_back(randn(parse_shape(s), &gen));
    Tensor out = run_op(*name, inputs);
    double checksum = ops::sum(out.reshape({-1})).item();
    std::printf("%s -> shape %s, sum %.6g\n", name->c_str(), shape_str(out.shape()).c_str(), checksum);
  };
}

}  // namespace ld::cli
