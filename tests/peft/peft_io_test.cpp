// Adapter folders in Hugging Face PEFT's layout: LoRA, prompt tuning and our Houlsby adapter saved
// and loaded back give identical logits; adapter_config.json carries PEFT's fields; the safetensors
// keys are PEFT's names, checked from Python too (the header read with the standard library, the
// values with numpy); loading refuses missing files, other shapes, modules the model lacks.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.hpp"
#include "peft/peft_io.hpp"
#include "peft_test_util.hpp"
#include "test_util.hpp"

namespace ld::peft {
namespace {

namespace fs = std::filesystem;
using test::randomize;
using test::tiny_model;
using ::ld::test::error_message;
using ::ld::test::expect_mentions;
using ::ld::test::max_abs_diff;
using ::ld::test::TempDir;

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

std::set<std::string> keys_of(const fs::path& file) {
  std::set<std::string> keys;
  const io::SafetensorsFile st = io::SafetensorsFile::open(file);
  for (const io::TensorInfo& t : st.tensors()) keys.insert(t.name);
  return keys;
}

// Python's view of the file: "key shape sum" lines, sorted, read without liandan (struct + json +
// numpy), so a header we misread ourselves cannot hide.
std::string python_listing(const fs::path& file) {
  const std::string script =
      "import json,struct,sys,numpy as np\n"
      "b=open(sys.argv[1],'rb').read(); n=struct.unpack('<Q',b[:8])[0]; h=json.loads(b[8:8+n])\n"
      "assert h.pop('__metadata__')=={'format':'pt'}\n"
      "for k in sorted(h):\n"
      "  v=h[k]; s,e=v['data_offsets']; assert v['dtype']=='F32'\n"
      "  a=np.frombuffer(b[8+n+s:8+n+e],dtype='<f4').reshape(v['shape'])\n"
      "  print(k, list(a.shape), '%.6f' % float(a.astype(np.float64).sum()))\n";
  const fs::path script_path = file.parent_path().parent_path() / "listing.py";
  std::ofstream(script_path) << script;
  FILE* pipe = popen((std::string(LIANDAN_PYTHON) + " " + script_path.string() + " " + file.string()).c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string out;
  char buf[512];
  while (pipe && fgets(buf, sizeof buf, pipe)) out += buf;
  if (pipe) {
    EXPECT_EQ(pclose(pipe), 0) << out;
  }
  return out;
}

std::string sum_str(const Tensor& t) {
  double s = 0;
  for (float v : t.contiguous().to_vector<float>()) s += v;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6f", s);
  return buf;
}

TEST(PeftIo, LoraRoundTripGpt2WithPeftNamesAndConfig) {
  TempDir tmp("peft_lora");
  auto lm = tiny_model(models::StackKind::gpt2);
  Generator gen(1);
  LoraModel lora = apply_lora(*lm, {.r = 2, .alpha = 4.0, .dropout = 0.05, .use_rslora = true}, gen, "gpt2");
  for (size_t i = 0; i < lora.targets.size(); ++i) randomize(lora.targets[i].lora->lora_B->weight, 30 + i);
  Tensor ids = test::ids_of({1, 2, 3, 4, 5}, 1);
  Tensor want = lm->forward(ids);
  save_lora(lora, tmp / "adapter", {.base_model_name_or_path = "tiny-gpt2"});

  const nlohmann::json config = read_json(tmp / "adapter" / "adapter_config.json");
  EXPECT_EQ(config["peft_type"], "LORA");
  EXPECT_EQ(config["task_type"], "CAUSAL_LM");
  EXPECT_EQ(config["r"], 2);
  EXPECT_TRUE(config["lora_alpha"].is_number_integer());
  EXPECT_EQ(config["lora_alpha"], 4);
  EXPECT_EQ(config["lora_dropout"], 0.05);
  EXPECT_EQ(config["target_modules"], nlohmann::json::array({"c_attn"}));
  EXPECT_EQ(config["use_rslora"], true);
  EXPECT_EQ(config["fan_in_fan_out"], true);
  EXPECT_EQ(config["bias"], "none");
  EXPECT_EQ(config["base_model_name_or_path"], "tiny-gpt2");
  EXPECT_EQ(config["inference_mode"], true);

  const fs::path weights = tmp / "adapter" / "adapter_model.safetensors";
  EXPECT_EQ(keys_of(weights), (std::set<std::string>{"base_model.model.transformer.h.0.attn.c_attn.lora_A.weight",
                                                      "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight",
                                                      "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight",
                                                      "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight"}));
  const LoraTarget& t0 = lora.targets[0];
  const std::string listing = python_listing(weights);
  EXPECT_NE(listing.find("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight [2, 16] " +
                         sum_str(t0.lora->lora_A->weight)),
            std::string::npos)
      << listing;
  EXPECT_NE(listing.find("base_model.model.transformer.h.0.attn.c_attn.lora_B.weight [48, 2] " +
                         sum_str(t0.lora->lora_B->weight)),
            std::string::npos)
      << listing;

  auto fresh = tiny_model(models::StackKind::gpt2);
  LoadedAdapter loaded = load_adapter(*fresh, tmp / "adapter");
  EXPECT_EQ(loaded.peft_type, "LORA");
  EXPECT_EQ(loaded.lora.targets.size(), 2u);
  EXPECT_TRUE(loaded.lora.config.use_rslora);
  EXPECT_EQ(max_abs_diff(fresh->forward(ids), want), 0.0f);
  EXPECT_EQ(trainable_parameter_count(*fresh), loaded.lora.trainable_parameter_count());
}

TEST(PeftIo, LoraRoundTripLlamaAllLinear) {
  TempDir tmp("peft_lora_llama");
  auto lm = tiny_model(models::StackKind::llama);
  Generator gen(2);
  LoraModel lora = apply_lora(*lm, {.r = 3, .alpha = 16.0, .target_modules = {"all-linear"}}, gen);
  for (size_t i = 0; i < lora.targets.size(); ++i) randomize(lora.targets[i].lora->lora_B->weight, 40 + i);
  Tensor ids = test::ids_of({7, 8, 9, 10}, 2);
  Tensor want = lm->forward(ids);
  save_lora(lora, tmp / "a");
  const std::set<std::string> keys = keys_of(tmp / "a" / "adapter_model.safetensors");
  EXPECT_EQ(keys.size(), 2 * 7 * 2u);
  EXPECT_TRUE(keys.count("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"));
  EXPECT_FALSE(read_json(tmp / "a" / "adapter_config.json")["fan_in_fan_out"].get<bool>());
  auto fresh = tiny_model(models::StackKind::llama);
  load_adapter(*fresh, tmp / "a");
  EXPECT_EQ(max_abs_diff(fresh->forward(ids), want), 0.0f);
}

TEST(PeftIo, PromptTuningRoundTrip) {
  TempDir tmp("peft_prompt");
  auto lm = tiny_model(models::StackKind::llama);
  Generator gen(3);
  PromptTuning pt = apply_prompt_tuning(
      *lm, {.num_virtual_tokens = 4, .init = PromptTuningConfig::Init::text, .init_text = "hi"}, gen, {3, 4});
  randomize(pt.prompt->weight, 5);
  Tensor ids = test::ids_of({7, 8, 9}, 1);
  Tensor want = lm->forward(ids);
  save_prompt_tuning(pt, tmp / "p");
  const nlohmann::json config = read_json(tmp / "p" / "adapter_config.json");
  EXPECT_EQ(config["peft_type"], "PROMPT_TUNING");
  EXPECT_EQ(config["num_virtual_tokens"], 4);
  EXPECT_EQ(config["token_dim"], 16);
  EXPECT_EQ(config["num_transformer_submodules"], 1);
  EXPECT_EQ(config["num_attention_heads"], 4);
  EXPECT_EQ(config["num_layers"], 2);
  EXPECT_EQ(config["prompt_tuning_init"], "TEXT");
  EXPECT_EQ(config["prompt_tuning_init_text"], "hi");
  const std::string listing = python_listing(tmp / "p" / "adapter_model.safetensors");
  EXPECT_EQ(listing, "prompt_embeddings [4, 16] " + sum_str(pt.prompt->weight) + "\n");
  auto fresh = tiny_model(models::StackKind::llama);
  LoadedAdapter loaded = load_adapter(*fresh, tmp / "p");
  EXPECT_EQ(loaded.peft_type, "PROMPT_TUNING");
  EXPECT_EQ(loaded.prompt.config.init_text, "hi");
  EXPECT_EQ(max_abs_diff(fresh->forward(ids), want), 0.0f);
}

TEST(PeftIo, HoulsbyAdapterRoundTrip) {
  TempDir tmp("peft_houlsby");
  auto lm = tiny_model(models::StackKind::gpt2);
  Generator gen(4);
  AdapterModel a = apply_houlsby(*lm, {.width = 3, .nonlinearity = "relu"}, gen);
  for (size_t i = 0; i < a.targets.size(); ++i) randomize(a.targets[i].adapter->adapter_up->weight, 50 + i);
  Tensor ids = test::ids_of({1, 5, 2}, 1);
  Tensor want = lm->forward(ids);
  save_houlsby(a, tmp / "h");
  const nlohmann::json config = read_json(tmp / "h" / "adapter_config.json");
  EXPECT_EQ(config["peft_type"], "LIANDAN_ADAPTER");
  EXPECT_EQ(config["width"], 3);
  EXPECT_EQ(config["nonlinearity"], "relu");
  EXPECT_TRUE(keys_of(tmp / "h" / "adapter_model.safetensors")
                  .count("base_model.model.transformer.h.1.mlp.c_proj.adapter_up.bias"));
  auto fresh = tiny_model(models::StackKind::gpt2);
  LoadedAdapter loaded = load_adapter(*fresh, tmp / "h");
  EXPECT_EQ(loaded.adapter.targets.size(), 4u);
  EXPECT_EQ(max_abs_diff(fresh->forward(ids), want), 0.0f);
}

TEST(PeftIo, MergedModelLoadsAsAPlainCheckpoint) {
  TempDir tmp("peft_merged");
  auto lm = tiny_model(models::StackKind::gpt2);
  const size_t base_tensors = lm->named_parameters().size();
  Generator gen(6);
  LoraModel lora = apply_lora(*lm, {.r = 2, .target_modules = {"all-linear"}}, gen);
  for (size_t i = 0; i < lora.targets.size(); ++i) randomize(lora.targets[i].lora->lora_B->weight, 70 + i);
  Tensor ids = test::ids_of({3, 4, 5, 6}, 1);
  Tensor want = lm->forward(ids).contiguous().clone();
  save_merged_model(*lm, lora, tmp / "merged");
  EXPECT_EQ(keys_of(tmp / "merged" / "model.safetensors").size(), base_tensors);
  auto merged = models::load_causal_lm(tmp / "merged");
  EXPECT_LT(max_abs_diff(merged->forward(ids), want), 1e-5f);

  AdapterModel houlsby = apply_houlsby(*merged, {.width = 2}, gen);
  LoraModel none;
  expect_mentions(error_message([&] { save_merged_model(*merged, none, tmp / "other"); }),
                  {"transformer.h.0.attn.c_proj", "carries a 'adapter' adapter, which cannot be merged"});
}

TEST(PeftIo, BadFoldersGiveOneClearError) {
  TempDir tmp("peft_bad");
  auto lm = tiny_model(models::StackKind::llama);
  Generator gen(5);
  LoraModel lora = apply_lora(*lm, {.r = 2}, gen, "llama");
  save_lora(lora, tmp / "llama_lora");

  // Another model's shapes: n_embd 32 instead of 16.
  auto wide = tiny_model(models::StackKind::llama, 7, true, /*n_embd=*/32);
  const std::string shape = error_message([&] { load_adapter(*wide, tmp / "llama_lora"); });
  expect_mentions(shape,
                  {"adapter_model.safetensors", "base_model.model.model.layers.0.self_attn", "[2, 16]", "[2, 32]"});
  EXPECT_EQ(trainable_parameter_count(*wide), wide->parameter_count()) << "nothing attached or frozen";

  // Keys naming modules a GPT-2 lacks.
  auto gpt2 = tiny_model(models::StackKind::gpt2);
  expect_mentions(error_message([&] { load_adapter(*gpt2, tmp / "llama_lora"); }),
                  {"adapter_model.safetensors", "key 'base_model.model.model.layers.0.self_attn.",
                   "no Linear/Conv1D module 'model.layers.0.self_attn.", "transformer.h.0.attn.c_attn"});

  fs::create_directories(tmp / "empty");
  expect_mentions(error_message([&] { load_adapter(*gpt2, tmp / "empty"); }), {"adapter_config.json", "not found"});

  fs::create_directories(tmp / "odd");
  std::ofstream(tmp / "odd" / "adapter_config.json") << R"({"peft_type": "IA3", "task_type": "CAUSAL_LM"})";
  fs::copy_file(tmp / "llama_lora" / "adapter_model.safetensors", tmp / "odd" / "adapter_model.safetensors");
  expect_mentions(error_message([&] { load_adapter(*gpt2, tmp / "odd"); }), {"peft_type \"IA3\"", "LORA"});

  // Saving over a folder refuses unless forced.
  expect_mentions(error_message([&] { save_lora(lora, tmp / "llama_lora"); }), {"llama_lora"});
  save_lora(lora, tmp / "llama_lora", {.force = true});
}

}  // namespace
}  // namespace ld::peft
