// liandan_bench_ops: times single ops (GEMM, attention, layernorm, cross-entropy) at transformer
// shapes, one JSON line per (case, shape) on stdout, progress on stderr. Its twin is
// ops_bench_torch.py (same cases, shapes, warm-up and repetitions); ops_vs_torch.sh runs both
// alternately and prints the comparison table (bench/README.md).
//
// Usage: liandan_bench_ops <gemm|attention|layernorm|cross_entropy|all> [--threads 2] [--reps 10] [--warmup 3]
//            [--only SUBSTRING]   (only the shapes whose label contains SUBSTRING, e.g. "50257" or "dW")
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/engine.hpp"
#include "autograd/grad_mode.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "ops/ops.hpp"

namespace {

using ld::Shape;
using ld::Tensor;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string which = "all";
  int threads = 2;
  int reps = 10;
  int warmup = 3;
  std::string only;  // run only the shapes whose label contains this
};

const std::vector<std::string> kCases = {"gemm", "attention", "layernorm", "cross_entropy"};

// Builds labels with a stream: GCC 12 -O3 gives a false -Wrestrict on "literal" + std::string.
template <typename... Args>
std::string label(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "liandan_bench_ops: " << message << "\n"
            << "usage: liandan_bench_ops <gemm|attention|layernorm|cross_entropy|all> [--threads 2] [--reps 10] "
               "[--warmup 3] [--only SUBSTRING]\n";
  std::exit(2);
}

int parse_positive(const std::string& flag, const std::string& text, int minimum) {
  try {
    size_t used = 0;
    int value = std::stoi(text, &used);
    if (used == text.size() && value >= minimum) return value;
  } catch (const std::exception&) {
  }
  usage_error(label(flag, " needs an integer >= ", minimum, ", got '", text, "'"));
}

Options parse_args(int argc, char** argv) {
  Options o;
  bool have_case = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(label(arg, " needs a value"));
      return argv[++i];
    };
    if (arg == "--threads") {
      o.threads = parse_positive(arg, value(), 1);
    } else if (arg == "--reps") {
      o.reps = parse_positive(arg, value(), 1);
    } else if (arg == "--warmup") {
      o.warmup = parse_positive(arg, value(), 0);
    } else if (arg == "--only") {
      o.only = value();
    } else if (arg == "-h" || arg == "--help") {
      usage_error("help");
    } else if (!have_case && arg.rfind("--", 0) != 0) {
      o.which = arg;
      have_case = true;
    } else {
      usage_error(label("unexpected argument '", arg, "'"));
    }
  }
  if (!have_case) usage_error("missing case");
  if (o.which != "all" && std::find(kCases.begin(), kCases.end(), o.which) == kCases.end())
    usage_error(label("unknown case '", o.which, "'"));
  return o;
}

struct Timing {
  double median_ms = 0, min_ms = 0, max_ms = 0;
};

Timing summarise(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  size_t n = ms.size();
  double median = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
  return {median, ms.front(), ms.back()};
}

double round3(double x) { return std::round(x * 1000.0) / 1000.0; }

// One measured unit: `body` runs inside the timer, `reset` after it (dropping outputs and grads
// so that no rep accumulates into the previous one's gradients).
struct Measured {
  std::function<void()> body;
  std::function<void()> reset;
};

Timing time_it(const Options& o, const Measured& m) {
  for (int i = 0; i < o.warmup; ++i) {
    m.body();
    m.reset();
  }
  std::vector<double> ms;
  ms.reserve(static_cast<size_t>(o.reps));
  for (int i = 0; i < o.reps; ++i) {
    auto t0 = Clock::now();
    m.body();
    auto t1 = Clock::now();
    m.reset();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return summarise(std::move(ms));
}

bool selected(const Options& o, const std::string& shape) {
  return o.only.empty() || shape.find(o.only) != std::string::npos;
}

// Runs one (case, shape): prints its JSON line, or an "error" line if the op throws. Returns success
// (true for a shape left out by --only).
bool run_shape(const Options& o, const std::string& name, const std::string& shape, double flops,
               const std::function<Measured()>& setup) {
  if (!selected(o, shape)) return true;
  nlohmann::ordered_json line = {{"impl", "liandan"}, {"case", name}, {"shape", shape}};
  std::cerr << "[liandan] " << name << " " << shape << " ..." << std::flush;
  bool ok = true;
  try {
    Measured m = setup();
    Timing t = time_it(o, m);
    line["median_ms"] = round3(t.median_ms);
    line["min_ms"] = round3(t.min_ms);
    line["max_ms"] = round3(t.max_ms);
    if (flops > 0) {
      line["gflops"] = std::round(flops / (t.median_ms * 1e6) * 10.0) / 10.0;
      line["flops"] = flops;
    }
    std::cerr << " median " << t.median_ms << " ms\n";
  } catch (const std::exception& e) {
    line["error"] = e.what();
    ok = false;
    std::cerr << " FAILED: " << e.what() << "\n";
  }
  line["threads"] = o.threads;
  line["reps"] = o.reps;
  line["warmup"] = o.warmup;
  std::cout << line.dump() << std::endl;
  return ok;
}

ld::Generator& bench_generator() {
  static ld::Generator gen(1234);
  return gen;
}

Tensor random_input(const Shape& shape, bool requires_grad) {
  Tensor t = ld::randn(shape, &bench_generator());
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

// Forward + backward of a single op: out = forward(), then backward with an upstream gradient
// prepared outside the timer. Leaves' grads are dropped after each rep.
Measured forward_backward(std::function<Tensor()> forward, std::vector<Tensor> leaves) {
  Tensor probe;
  {
    ld::autograd::NoGradGuard no_grad;
    probe = forward();
  }
  Tensor upstream = random_input(probe.shape(), false);
  auto out = std::make_shared<Tensor>();
  Measured m;
  m.body = [forward, upstream, out] {
    *out = forward();
    ld::autograd::run_backward({*out}, {upstream});
  };
  m.reset = [leaves, out]() mutable {
    *out = Tensor();
    // a missing gradient would mean the timed backward did not run the op's rule at all
    for (Tensor& t : leaves) {
      LD_CHECK(t.grad().defined(), "bench: the backward gave an input of shape ", ld::shape_str(t.shape()),
               " no gradient");
      t.zero_grad();
    }
  };
  return m;
}

// --- gemm: the three products of a Linear layer (no bias), each timed on its own.
struct LinearShape {
  int64_t rows, in, out;
};

int gemm_case(const Options& o) {
  const std::vector<LinearShape> shapes = {
      {2048, 256, 768},  {2048, 256, 256},  {2048, 256, 1024}, {2048, 1024, 256}, {2048, 256, 8192},
      {1024, 768, 2304}, {1024, 768, 768}, {1024, 768, 3072}, {1024, 3072, 768}, {1024, 768, 50257},
  };
  int failures = 0;
  for (const LinearShape& s : shapes) {
    std::string base = label("N=", s.rows, " ", s.in, "->", s.out);
    double flops = 2.0 * double(s.rows) * double(s.in) * double(s.out);
    if (!selected(o, label(base, " fwd")) && !selected(o, label(base, " dX")) && !selected(o, label(base, " dW")))
      continue;
    Tensor x = random_input({s.rows, s.in}, false);
    Tensor w = random_input({s.out, s.in}, false);
    Tensor dy = random_input({s.rows, s.out}, false);
    auto result = std::make_shared<Tensor>();
    auto drop = [result] { *result = Tensor(); };
    // Y[N,out] = X W^T, as ops::linear's forward
    failures += !run_shape(o, "gemm", label(base, " fwd"), flops, [&] {
      return Measured{[x, w, result] { *result = ld::ops::linear(x, w); }, drop};
    });
    // dX[N,in] = dY W, the product ProjectionBackward does for the input gradient
    failures += !run_shape(o, "gemm", label(base, " dX"), flops, [&] {
      return Measured{[dy, w, result] { *result = ld::ops::matmul(dy, w); }, drop};
    });
    // dW[out,in] = dY^T X, read through the transposed view as ProjectionBackward does
    failures += !run_shape(o, "gemm", label(base, " dW"), flops, [&] {
      return Measured{[dy, x, result] { *result = ld::ops::matmul(dy.transpose(0, 1), x); }, drop};
    });
  }
  return failures;
}

// --- attention: causal, scale 1/sqrt(D), q k v [B, H, T, D]
int attention_case(const Options& o) {
  struct AttnShape {
    int64_t b, h, t, d;
  };
  const std::vector<AttnShape> shapes = {{8, 4, 256, 64}, {8, 6, 256, 64}, {1, 12, 1024, 64}};
  int failures = 0;
  for (const AttnShape& s : shapes) {
    std::string shape = label("B=", s.b, " H=", s.h, " T=", s.t, " D=", s.d);
    failures += !run_shape(o, "attention", shape, 0, [&] {
      Tensor q = random_input({s.b, s.h, s.t, s.d}, true);
      Tensor k = random_input({s.b, s.h, s.t, s.d}, true);
      Tensor v = random_input({s.b, s.h, s.t, s.d}, true);
      ld::ops::AttentionOptions opts;
      opts.causal = true;
      opts.scale = 1.0 / std::sqrt(double(s.d));
      return forward_backward([q, k, v, opts] { return ld::ops::attention(q, k, v, opts); }, {q, k, v});
    });
  }
  return failures;
}

// --- layernorm over the last dim, with weight and bias
int layernorm_case(const Options& o) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{2048, 256}, {2048, 384}, {1024, 768}, {8192, 768}};
  int failures = 0;
  for (auto [rows, cols] : shapes) {
    std::string shape = label("[", rows, ",", cols, "]");
    failures += !run_shape(o, "layernorm", shape, 0, [&] {
      Tensor x = random_input({rows, cols}, true);
      Tensor w = random_input({cols}, true);
      Tensor b = random_input({cols}, true);
      return forward_backward([x, w, b] { return ld::ops::layernorm(x, w, b, 1e-5); }, {x, w, b});
    });
  }
  return failures;
}

Tensor random_targets(int64_t n, int64_t vocab) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t& id : ids) id = pick(rng);
  return ld::from_vector(ids, {n});
}

// --- cross-entropy, mean reduction, i64 targets
int cross_entropy_case(const Options& o) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{2048, 8192}, {1024, 50257}};
  int failures = 0;
  for (auto [rows, vocab] : shapes) {
    std::string shape = label("[", rows, ",", vocab, "]");
    failures += !run_shape(o, "cross_entropy", shape, 0, [&] {
      Tensor logits = random_input({rows, vocab}, true);
      Tensor targets = random_targets(rows, vocab);
      return forward_backward([logits, targets] { return ld::ops::cross_entropy(logits, targets); }, {logits});
    });
  }
  return failures;
}

int run_case(const Options& o, const std::string& name) {
  if (name == "gemm") return gemm_case(o);
  if (name == "attention") return attention_case(o);
  if (name == "layernorm") return layernorm_case(o);
  return cross_entropy_case(o);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  ld::set_num_threads(o.threads);
  int failures = 0;
  try {
    if (o.which == "all") {
      for (const std::string& name : kCases) failures += run_case(o, name);
    } else {
      failures += run_case(o, o.which);
    }
  } catch (const std::exception& e) {
    std::cerr << "liandan_bench_ops: " << e.what() << "\n";
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
