// liandan_bench_dp: data-parallel scaling of a GPT-2 training step, the twin of bench/dist/
// ddp_torch.py (PyTorch DDP). Run as one process (the baseline: the plain step, as the trainer runs
// with one rank) or under `mpirun -np N` (dist::DataParallel at ZeRO stage 0, as the trainer wires
// it). Each rank trains on its own B x T batch (the configs of bench/train_bench.cpp), so N ranks
// process N*B*T tokens a step.
//
// One step = optimizer zero_grad + DataParallel start_step, begin_micro_batch(last), forward,
// train::clm_loss, backward (buckets all-reduced as they fill), finish_backward, AdamW step,
// finish_step. The ranks meet at a barrier before each step; a step's time is the slowest rank's.
// tokens_per_s = ranks*B*T / median(step time) over --steps timed steps after --warmup.
//
// Hidden all-reduce. A rank's exposed wait in a step: the growth of stats().exposed_seconds, the
// time finish_backward waited for the buckets (it includes their 1/N scaling). The rank whose
// backward ends last waits only for what communication was not hidden; the others also wait for it.
// So exposed_s is the median over timed steps of the least wait over the ranks, and skew_s the
// median of (most - least): load imbalance, not communication. allreduce_alone_s: after training,
// the same buckets (sizes rebuilt by DataParallel's rule: trainable parameters in reverse order, a
// new bucket once one holds bucket_bytes) all-reduced one after another, blocking, without compute;
// median over --steps repetitions. hidden_fraction = 1 - exposed_s / allreduce_alone_s.
//
// Usage: [mpirun -np N] liandan_bench_dp [--config tiny|small] [--threads 1] [--bucket-mb 25]
//            [--steps 10] [--warmup 3] [--tag S]
// Prints one JSON line on rank 0's stdout; progress on stderr.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../bench_train_setup.hpp"
#include "backend/cpu/cpu_backend.hpp"
#include "core/rng.hpp"
#include "core/tensor.hpp"
#include "dist/data_parallel.hpp"
#include "dist/world.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "train/objectives.hpp"
#include "train/optimizer.hpp"
#include "train/run_config.hpp"

namespace {

using ld::Tensor;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string config = "tiny";
  int threads = 1;
  double bucket_mb = 25;  // the trainer's dist.bucket_mb default, and DDP's bucket_cap_mb
  int steps = 10;
  int warmup = 3;
  std::string tag;
};

[[noreturn]] void usage_error(const std::string& message) {
  std::cerr << "liandan_bench_dp: " << message << "\n"
            << "usage: [mpirun -np N] liandan_bench_dp [--config tiny|small] [--threads 1] [--bucket-mb 25] "
               "[--steps 10] [--warmup 3] [--tag S]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--config") o.config = value();
      else if (a == "--threads") o.threads = std::stoi(value());
      else if (a == "--bucket-mb") o.bucket_mb = std::stod(value());
      else if (a == "--steps") o.steps = std::stoi(value());
      else if (a == "--warmup") o.warmup = std::stoi(value());
      else if (a == "--tag") o.tag = value();
      else usage_error("unknown option " + a);
    } catch (const std::logic_error&) {
      usage_error("bad number for " + a);
    }
  }
  if (o.config != "tiny" && o.config != "small") usage_error("unknown --config " + o.config + " (tiny, small)");
  if (o.steps < 1 || o.warmup < 0 || o.threads < 1 || !(o.bucket_mb > 0))
    usage_error("--steps, --threads and --bucket-mb must be positive, --warmup >= 0");
  return o;
}

// One step; `dp` is null for the one-process baseline. Returns the loss.
double train_step(const ld::models::CausalLM& model, ld::train::Optimizer& optimizer, ld::dist::DataParallel* dp,
                  const ld::bench::Batch& batch) {
  optimizer.zero_grad();
  if (dp) {
    dp->start_step();
    dp->begin_micro_batch(/*last=*/true);
  }
  const ld::train::LossParts parts = ld::train::clm_loss(model, batch.inputs, batch.targets);
  parts.loss.backward();
  const double loss = parts.loss.item();
  if (dp) dp->finish_backward();
  optimizer.step();
  if (dp) dp->finish_step();
  return loss;
}

// The element counts of DataParallel's buckets (its rule, see data_parallel.hpp).
std::vector<int64_t> bucket_sizes(const std::vector<std::pair<std::string, Tensor>>& named, int64_t bucket_bytes) {
  const int64_t per_bucket = std::max<int64_t>(1, bucket_bytes / int64_t(sizeof(float)));
  std::vector<int64_t> sizes;
  for (auto it = named.rbegin(); it != named.rend(); ++it) {
    if (!it->second.requires_grad()) continue;
    if (sizes.empty() || sizes.back() >= per_bucket) sizes.push_back(0);
    sizes.back() += it->second.numel();
  }
  return sizes;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The buckets' blocking all-reduces alone, without compute: median over `reps` of the slowest rank's.
double allreduce_alone_seconds(ld::dist::Communicator& comm, const std::vector<int64_t>& sizes, int reps) {
  std::vector<std::vector<float>> buffers;
  for (int64_t n : sizes) buffers.emplace_back(size_t(n), 1.0f);
  std::vector<double> times;
  for (int r = 0; r < reps + 1; ++r) {  // the first round (page faults, MPI's first contact) not counted
    comm.barrier();
    const auto t0 = Clock::now();
    for (auto& b : buffers) comm.all_reduce(b.data(), int64_t(b.size()), ld::dist::ElemType::f32);
    const double dt = comm.all_reduce_max(std::chrono::duration<double>(Clock::now() - t0).count());
    if (r > 0) times.push_back(dt);
  }
  return median(times);
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;  // KiB on Linux
}

struct Timings {
  std::vector<double> warm, step, exposed, skew;
  double loss_first = 0, loss_last = 0;
};

Timings run_steps(const ld::models::CausalLM& model, ld::train::Optimizer& optimizer, ld::dist::DataParallel* dp,
                  const std::vector<ld::bench::Batch>& data, const Options& o, ld::dist::Communicator& comm) {
  Timings t;
  const bool main_rank = comm.rank() == 0;
  for (int i = 0; i < o.warmup + o.steps; ++i) {
    comm.barrier();
    const double exposed_before = dp ? dp->stats().exposed_seconds : 0.0;
    const auto t0 = Clock::now();
    const double loss = train_step(model, optimizer, dp, data[size_t(i) % data.size()]);
    const double dt = comm.all_reduce_max(std::chrono::duration<double>(Clock::now() - t0).count());
    const double mine = dp ? dp->stats().exposed_seconds - exposed_before : 0.0;
    const double exposed = -comm.all_reduce_max(-mine), most = comm.all_reduce_max(mine);
    const bool warm = i < o.warmup;
    (warm ? t.warm : t.step).push_back(dt);
    if (!warm) t.exposed.push_back(exposed), t.skew.push_back(most - exposed);
    if (i == 0) t.loss_first = loss;
    t.loss_last = loss;
    if (main_rank)
      std::cerr << "[dp " << o.config << " x" << comm.size() << "]" << (warm ? " warmup " : " step ")
                << (warm ? i : i - o.warmup) << " " << dt << "s exposed " << exposed << "s loss " << loss << "\n";
  }
  return t;
}

int run(const Options& o) {
  ld::set_num_threads(o.threads);
  ld::dist::Communicator& comm = ld::dist::world();
  const ld::bench::BenchConfig config = *ld::bench::bench_config(o.config);
  const ld::models::StackConfig& stack = config.stack;
  const int64_t T = stack.n_positions;
  const ld::io::HfModelConfig hf = ld::io::make_hf_config(stack, /*tie_word_embeddings=*/true);
  ld::Generator gen(1234);  // the same weights on every rank
  const std::unique_ptr<ld::models::CausalLM> model = ld::models::make_causal_lm(hf, gen);
  const auto named = model->named_parameters();
  const int64_t bucket_bytes = int64_t(o.bucket_mb * double(1 << 20));
  std::unique_ptr<ld::dist::DataParallel> dp;
  const ld::dist::DataParallelOptions dp_options{.zero_stage = 0, .bucket_bytes = bucket_bytes};
  if (comm.size() > 1) dp = std::make_unique<ld::dist::DataParallel>(comm, named, dp_options);
  ld::train::Optimizer optimizer(named, ld::bench::peer_optimizer_settings());
  const std::vector<ld::bench::Batch> data =
      ld::bench::random_batches(4, config.batch, T, stack.vocab_size, 1234 + uint64_t(comm.rank()));

  const Timings t = run_steps(*model, optimizer, dp.get(), data, o, comm);
  const std::vector<int64_t> buckets = bucket_sizes(named, bucket_bytes);
  const double alone = comm.size() > 1 ? allreduce_alone_seconds(comm, buckets, o.steps) : 0.0;
  const double med = median(t.step), exposed = median(t.exposed);
  const double rss = comm.all_reduce_max(peak_rss_mib());
  if (comm.rank() != 0) return 0;
  int64_t grad_elements = 0;
  for (int64_t n : buckets) grad_elements += n;
  const nlohmann::json j = {
      {"program", "liandan"},
      {"bench", "dp"},
      {"config", o.config},
      {"tag", o.tag},
      {"ranks", comm.size()},
      {"backend", comm.backend_name()},
      {"threads", o.threads},
      {"T", T},
      {"B_per_rank", config.batch},
      {"params", model->parameter_count()},
      {"bucket_mb", o.bucket_mb},
      {"buckets", buckets.size()},
      {"grad_mib", double(grad_elements) * 4.0 / double(1 << 20)},
      {"warmup_times_s", t.warm},
      {"step_times_s", t.step},
      {"median_step_s", med},
      {"tokens_per_s", double(comm.size() * config.batch * T) / med},
      {"exposed_times_s", t.exposed},
      {"exposed_s", exposed},
      {"skew_s", median(t.skew)},
      {"allreduce_alone_s", alone},
      {"hidden_fraction", alone > 0 ? nlohmann::json(1.0 - exposed / alone) : nlohmann::json(nullptr)},
      {"loss_first", t.loss_first},
      {"loss_last", t.loss_last},
      {"ln_vocab", std::log(double(stack.vocab_size))},
      {"peak_rss_mib", rss},
  };
  std::cout << j.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ld::dist::init(&argc, &argv);
  const Options o = parse(argc, argv);
  try {
    run(o);
  } catch (const std::exception& e) {
    // Under mpirun a failing rank ends the job, so that no rank waits in a collective.
    ld::dist::abort_job(std::string("liandan_bench_dp: ") + e.what());
  }
  ld::dist::finalize();
  return 0;
}
