// Training on a CUDA device (train.device) against the same run on the CPU, on the trainer tests'
// tiny dataset and models (tests/train/trainer_fixture.hpp): nn::Module::to moves weights in place
// and the forward agrees; 5 GPT-2 and LLaMA pretraining steps give the CPU's losses (1e-4
// relative); a checkpoint written on the GPU resumes on the CPU as the CPU's own does; a bf16
// autocast run trains; greedy generation agrees; fine-tuning (LoRA, clm) runs there too; the
// gradient norm and clipping agree.
// Every test skips without a device (cuda_test_util.hpp).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cuda/cuda_test_util.hpp"
#include "infer/generate.hpp"
#include "models/causal_lm.hpp"
#include "peft/lora.hpp"
#include "peft/prompt_tuning.hpp"
#include "test_util.hpp"
#include "train/grad_clip.hpp"
#include "train/run_config.hpp"
#include "train/stop_request.hpp"
#include "train/trainer.hpp"
#include "train/trainer_fixture.hpp"
#include "tune/finetune.hpp"

namespace ld::test {
namespace {

namespace fs = std::filesystem;
using train::Override;
using train::TrainResult;
using namespace train::fixture;

class CudaTraining : public CudaTest {};

void expect_losses_close(const std::vector<double>& gpu, const std::vector<double>& cpu, double rtol,
                         const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  for (size_t i = 0; i < cpu.size(); ++i)
    EXPECT_NEAR(gpu[i], cpu[i], rtol * std::abs(cpu[i])) << what << ": step " << i + 1;
}

// Pretraining `steps` steps on `device` (cpu | cuda) in tmp/<run>.
TrainResult pretrain_on(const char* model_yaml, const fs::path& data, const fs::path& run, const std::string& device,
                        std::vector<Override> extra = {}, train::TrainOptions options = quiet()) {
  std::vector<Override> overrides = {{"train.max_steps", "5"}, {"train.device", device}, {"eval.every", "5"},
                                     {"checkpoint.every", "0"}};
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  return train::pretrain(make_config(model_yaml, data, run, overrides), options);
}

TEST_F(CudaTraining, ModuleToMovesInPlaceAndTheForwardAgrees) {
  TempDir tmp("cuda_module_to");
  const train::RunConfig config = make_config(kGpt2Model, make_dataset(tmp / "data"), tmp / "run", {});
  Generator init(7);
  std::unique_ptr<models::CausalLM> lm = models::make_causal_lm(config.model.hf, init);
  lm->eval();
  const Tensor ids = from_vector<int64_t>({1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2}, {2, 6});
  const Tensor cpu_logits = lm->forward(ids);
  std::vector<const TensorImpl*> impls;
  for (const auto& [_, t] : lm->named_parameters()) impls.push_back(t.impl_ptr().get());
  nn::StateDict before;  // copies: the state dict's tensors are the parameters themselves
  for (const auto& [name, t] : lm->state_dict()) before[name] = t.clone();

  lm->to(kGPU);
  std::vector<const TensorImpl*> moved;
  for (const auto& [name, t] : lm->named_parameters()) {
    moved.push_back(t.impl_ptr().get());
    EXPECT_EQ(t.device(), kGPU) << name;
  }
  EXPECT_EQ(moved, impls);  // the same tensors, now on the device
  const nn::StateDict after = lm->state_dict();
  EXPECT_EQ(after.at("lm_head.weight").impl_ptr(), after.at("transformer.wte.weight").impl_ptr());  // still tied
  expect_close(lm->forward(ids.to(kGPU)), cpu_logits, 1e-4, 1e-5, "GPT-2 logits on cuda");

  lm->to(kCPU);  // and back, bit for bit
  for (const auto& [name, t] : lm->state_dict()) expect_equal<float>(t, before.at(name), name);
}

void expect_matches_cpu(const char* model_yaml) {
  TempDir tmp("cuda_train");
  const fs::path data = make_dataset(tmp / "data");
  const TrainResult cpu = pretrain_on(model_yaml, data, tmp / "cpu", "cpu");
  const TrainResult gpu = pretrain_on(model_yaml, data, tmp / "gpu", "cuda");
  expect_losses_close(gpu.losses, cpu.losses, 1e-4, "training loss");
  expect_losses_close(gpu.val_losses, cpu.val_losses, 1e-4, "validation loss");
  // The final model was written from host copies and reads back on the CPU.
  const std::unique_ptr<models::CausalLM> a = models::load_causal_lm(tmp / "gpu" / "model");
  const std::unique_ptr<models::CausalLM> b = models::load_causal_lm(tmp / "cpu" / "model");
  for (const auto& [name, t] : a->state_dict()) expect_close(t, b->state_dict().at(name), 1e-3, 1e-5, name);
}

TEST_F(CudaTraining, Gpt2StepsMatchTheCpu) { expect_matches_cpu(kGpt2Model); }
TEST_F(CudaTraining, LlamaStepsMatchTheCpu) { expect_matches_cpu(kLlamaModel); }

// 3 steps on one device, a stop, then 3 more on the CPU: the resumed losses of a GPU checkpoint are
// those of the CPU's own checkpoint.
TEST_F(CudaTraining, ACheckpointWrittenOnCudaResumesOnTheCpu) {
  TempDir tmp("cuda_resume");
  const fs::path data = make_dataset(tmp / "data");
  const std::vector<Override> six = {{"train.max_steps", "6"}, {"eval.every", "0"}};
  auto split_run = [&](const std::string& first_device, const fs::path& run) {
    train::TrainOptions first = quiet();
    first.on_step = [](const train::StepReport& r) {
      if (r.step == 3) train::request_stop();
    };
    const TrainResult part1 = pretrain_on(kGpt2Model, data, run, first_device, six, first);
    EXPECT_TRUE(part1.interrupted);
    train::TrainOptions second = quiet();
    second.resume = run;
    return pretrain_on(kGpt2Model, data, run, "cpu", six, second);
  };
  const TrainResult from_cpu = split_run("cpu", tmp / "cpu");
  const TrainResult from_gpu = split_run("cuda", tmp / "gpu");
  ASSERT_EQ(from_cpu.losses.size(), 3u);
  expect_losses_close(from_gpu.losses, from_cpu.losses, 1e-4, "losses after the resume");
}

TEST_F(CudaTraining, Bf16AutocastTrains) {
  TempDir tmp("cuda_bf16");
  const fs::path data = make_dataset(tmp / "data");
  const std::vector<Override> bf16 = {{"train.precision", "bf16"}, {"train.max_steps", "10"}};
  const TrainResult cpu = pretrain_on(kLlamaModel, data, tmp / "cpu", "cpu", bf16);
  const TrainResult gpu = pretrain_on(kLlamaModel, data, tmp / "gpu", "cuda", bf16);
  ASSERT_EQ(gpu.losses.size(), 10u);
  for (double loss : gpu.losses) EXPECT_TRUE(std::isfinite(loss));
  EXPECT_LT(gpu.losses.back(), gpu.losses.front());
  expect_losses_close(gpu.losses, cpu.losses, 2e-2, "bf16 loss");  // bf16 products round differently
}

// kLlamaModel's tiny LLaMA with seeded random weights, in eval mode, on the CPU.
std::unique_ptr<models::CausalLM> tiny_llama(const fs::path& dir) {
  const train::RunConfig config = make_config(kLlamaModel, make_dataset(dir / "data"), dir / "run", {});
  Generator init(9);
  std::unique_ptr<models::CausalLM> lm = models::make_causal_lm(config.model.hf, init);
  lm->eval();
  return lm;
}

std::vector<int32_t> greedy_tokens(const models::CausalLM& lm, int64_t n) {
  infer::GenerateOptions g;
  g.max_new_tokens = n;
  g.sampling.temperature = 0.0f;
  return infer::generate(lm, {3, 4, 5}, g);
}

TEST_F(CudaTraining, GreedyGenerationAgrees) {
  TempDir tmp("cuda_generate");
  std::unique_ptr<models::CausalLM> lm = tiny_llama(tmp.path());
  const std::vector<int32_t> on_cpu = greedy_tokens(*lm, 12);
  lm->to(kGPU);
  EXPECT_EQ(greedy_tokens(*lm, 12), on_cpu);
}

// A prompt-tuning prompt is held by the model outside its parameters: CausalLM::to moves it too, in
// place (as `generate --adapter` and `eval --adapter` rely on), and generation agrees with the CPU.
TEST_F(CudaTraining, PromptTuningMovesWithTheModel) {
  TempDir tmp("cuda_prompt");
  std::unique_ptr<models::CausalLM> lm = tiny_llama(tmp.path());
  Generator gen(4);
  peft::PromptTuning tuning = peft::apply_prompt_tuning(*lm, peft::PromptTuningConfig{.num_virtual_tokens = 3}, gen);
  const std::vector<int32_t> on_cpu = greedy_tokens(*lm, 8);
  lm->to(kGPU);
  EXPECT_EQ(lm->prompt().device(), kGPU);
  EXPECT_EQ(tuning.prompt->weight.device(), kGPU);  // the same tensor, moved in place
  EXPECT_EQ(greedy_tokens(*lm, 8), on_cpu);
}

// Adapters attached to a model already on the device are made beside it: a prompt (same seed as on
// the CPU, so the same numbers) and LoRA (B starts at zero: the output is unchanged).
TEST_F(CudaTraining, AdaptersAttachedOnTheDeviceStayThere) {
  TempDir tmp("cuda_attach");
  auto tuned = [&](Device device) {
    std::unique_ptr<models::CausalLM> lm = tiny_llama(tmp.path() / device.str());
    lm->to(device);
    Generator adapters(4);
    peft::apply_prompt_tuning(*lm, peft::PromptTuningConfig{.num_virtual_tokens = 3}, adapters);
    peft::LoraModel lora = peft::apply_lora(*lm, peft::LoraConfig{}, adapters, "llama");
    for (const auto& t : lora.targets) EXPECT_EQ(t.lora->lora_B->weight.device(), device);
    EXPECT_EQ(lm->prompt().device(), device);
    return greedy_tokens(*lm, 8);
  };
  EXPECT_EQ(tuned(kGPU), tuned(kCPU));
}

// LoRA fine-tuning (clm) of a saved tiny model: the same losses on the device as on the CPU.
TEST_F(CudaTraining, LoraFinetuningMatchesTheCpu) {
  TempDir tmp("cuda_finetune");
  const fs::path data = make_dataset(tmp / "data");
  pretrain_on(kLlamaModel, data, tmp / "base", "cpu");
  auto finetune_on = [&](const std::string& device) {
    const std::string yaml = "model:\n  from: " + (tmp / "base" / "model").string() + "\ndata:\n  path: " +
                             data.string() +
                             "\nfinetune:\n  method: lora\n  task: clm\ntrain:\n  batch_size: 4\n  seq_len: 16\n"
                             "  max_steps: 5\n  lr: 1e-2\n  warmup_steps: 1\n  threads: 1\n  device: " +
                             device + "\neval:\n  every: 0\ncheckpoint:\n  every: 0\noutput_dir: " +
                             (tmp / ("ft_" + device)).string() + "\n";
    return tune::finetune(train::parse_run_config(yaml, "finetune.yaml", {}), quiet());
  };
  const TrainResult cpu = finetune_on("cpu");
  const TrainResult gpu = finetune_on("cuda");
  expect_losses_close(gpu.losses, cpu.losses, 1e-4, "LoRA loss");
}

// The global gradient norm of gradients on the device (reduced there, read back once) against the
// host's float64 sum of the same gradients, over a 2-million-element gradient and small ones; clipping
// scales the device gradients as the host's; an inf gradient makes the norm non-finite.
TEST_F(CudaTraining, GradNormAndClippingMatchTheCpu) {
  std::vector<Tensor> on_cpu, on_gpu;
  for (const Shape& shape : {Shape{1024, 2048}, Shape{3, 5}, Shape{7}}) {
    Tensor grad = randn(shape, &gen);
    on_cpu.push_back(zeros(shape).set_requires_grad(true));
    on_cpu.back().set_grad(grad);
    on_gpu.push_back(zeros(shape).to(kGPU).set_requires_grad(true));
    on_gpu.back().set_grad(to_gpu(grad));
  }
  const double cpu_norm = train::grad_norm(on_cpu);
  EXPECT_NEAR(train::grad_norm(on_gpu), cpu_norm, 1e-5 * cpu_norm);
  train::clip_grads_to(on_cpu, cpu_norm, 1.0);
  train::clip_grads_to(on_gpu, cpu_norm, 1.0);
  for (size_t i = 0; i < on_cpu.size(); ++i)
    expect_close(on_gpu[i].grad(), on_cpu[i].grad(), 1e-6, 1e-7, "clipped grad " + std::to_string(i));
  on_gpu[1].set_grad(to_gpu(full({3, 5}, std::numeric_limits<float>::infinity())));
  EXPECT_FALSE(std::isfinite(train::grad_norm(on_gpu)));
}

}  // namespace
}  // namespace ld::test
