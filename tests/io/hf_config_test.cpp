// config.json for the six model types: what transformers writes parses to the right sizes and
// switches, what liandan writes parses back to the same config, the implied parameter count, and
// one clear error (file and field) for each thing liandan cannot run.
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "io/hf_config.hpp"
#include "test_util.hpp"

namespace ld::io {
namespace {

using nlohmann::json;

HfModelConfig parse(const json& j) { return parse_hf_config(j, "x/config.json"); }

void expect_error(const json& j, std::initializer_list<const char*> parts) {
  const std::string message = test::error_message([&] { parse(j); });
  test::expect_mentions(message, {"x/config.json"});
  test::expect_mentions(message, parts);
}

// Abridged from the config.json files on the Hugging Face Hub (sizes shrunk), as transformers writes them.
json gpt2_json() {
  return {{"activation_function", "gelu_new"}, {"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"},
          {"n_embd", 64}, {"n_head", 4}, {"n_layer", 2}, {"n_positions", 32}, {"n_inner", nullptr},
          {"vocab_size", 100}, {"layer_norm_epsilon", 1e-5}, {"bos_token_id", 99}, {"eos_token_id", 99}};
}
json llama_json() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", 48},
          {"intermediate_size", 80}, {"num_hidden_layers", 3}, {"num_attention_heads", 6},
          {"num_key_value_heads", 2}, {"vocab_size", 100}, {"max_position_embeddings", 64},
          {"rms_norm_eps", 1e-5}, {"tie_word_embeddings", true}};
}
json qwen2_json() {
  json j = llama_json();
  j["model_type"] = "qwen2";
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["use_sliding_window"] = false;
  j["sliding_window"] = 4096;
  return j;
}
json mistral_json() {
  json j = llama_json();
  j["model_type"] = "mistral";
  j["sliding_window"] = 16;
  return j;
}
json mixtral_json() {
  json j = llama_json();
  j["model_type"] = "mixtral";
  j["num_local_experts"] = 4;
  j["num_experts_per_tok"] = 2;
  j["router_aux_loss_coef"] = 0.02;
  j["sliding_window"] = nullptr;
  return j;
}
json bert_json() {
  return {{"architectures", {"BertForSequenceClassification"}}, {"model_type", "bert"}, {"hidden_size", 32},
          {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"intermediate_size", 64}, {"vocab_size", 90},
          {"max_position_embeddings", 40}, {"type_vocab_size", 2}, {"hidden_act", "gelu"},
          {"id2label", {{"0", "neg"}, {"1", "neu"}, {"2", "pos"}}}};
}

TEST(HfConfig, ReadsEachModelTypesFields) {
  const HfModelConfig g = parse(gpt2_json());
  EXPECT_EQ(g.stack.kind, models::StackKind::gpt2);
  EXPECT_EQ(g.stack.intermediate_size, 4 * 64);  // n_inner null
  EXPECT_TRUE(g.tie_word_embeddings);           // GPT2Config's default
  EXPECT_EQ(g.architecture, "GPT2LMHeadModel");
  EXPECT_EQ(g.eos_token_id, 99);

  const HfModelConfig q = parse(qwen2_json());
  EXPECT_TRUE(q.attention_bias);
  EXPECT_EQ(q.sliding_window, 0);  // use_sliding_window false
  const HfModelConfig m = parse(mistral_json());
  EXPECT_EQ(m.sliding_window, 16);
  EXPECT_FALSE(m.attention_bias);
  const HfModelConfig x = parse(mixtral_json());
  EXPECT_EQ(x.moe.num_experts, 4);
  EXPECT_EQ(x.moe.top_k, 2);
  EXPECT_DOUBLE_EQ(x.moe.aux_loss_coef, 0.02);
  EXPECT_EQ(x.sliding_window, 0);
  EXPECT_DOUBLE_EQ(x.stack.rope_theta, 1e6);  // MixtralConfig's default

  const HfModelConfig b = parse(bert_json());
  EXPECT_EQ(b.architecture, "BertForSequenceClassification");
  EXPECT_EQ(b.num_labels, 3);  // from id2label
  EXPECT_DOUBLE_EQ(b.stack.norm_eps, 1e-12);
  EXPECT_EQ(b.pad_token_id, 0);
  EXPECT_FALSE(b.is_causal_lm());
}

TEST(HfConfig, WhatLiandanWritesReadsBackTheSame) {
  for (const json& j : {gpt2_json(), llama_json(), qwen2_json(), mistral_json(), mixtral_json(), bert_json()}) {
    const HfModelConfig c = parse(j);
    const HfModelConfig back = parse(to_hf_config_json(c));
    SCOPED_TRACE(c.model_type);
    EXPECT_EQ(back.model_type, c.model_type);
    EXPECT_EQ(back.architecture, c.architecture);
    EXPECT_EQ(back.stack.n_embd, c.stack.n_embd);
    EXPECT_EQ(back.stack.n_kv_head, c.stack.n_kv_head);
    EXPECT_EQ(back.stack.intermediate_size, c.stack.intermediate_size);
    EXPECT_EQ(back.stack.n_positions, c.stack.n_positions);
    EXPECT_DOUBLE_EQ(back.stack.norm_eps, c.stack.norm_eps);
    EXPECT_DOUBLE_EQ(back.stack.rope_theta, c.stack.rope_theta);
    EXPECT_EQ(back.attention_bias, c.attention_bias);
    EXPECT_EQ(back.sliding_window, c.sliding_window);
    EXPECT_EQ(back.moe.num_experts, c.moe.num_experts);
    EXPECT_EQ(back.num_labels, c.num_labels);
    EXPECT_EQ(back.tie_word_embeddings, c.tie_word_embeddings);
    EXPECT_EQ(back.eos_token_id, c.eos_token_id);
    EXPECT_EQ(expected_parameter_count(back), expected_parameter_count(c));
  }
}

TEST(HfConfig, ParameterCountsByHand) {
  // LLaMA: embed + 3 layers (2 norms, q/o 48x48, k/v 48x16, 3 MLP 48x80) + final norm; tied.
  EXPECT_EQ(expected_parameter_count(parse(llama_json())),
            100 * 48 + 3 * (2 * 48 + 2 * 48 * 48 + 2 * 48 * 16 + 3 * 48 * 80) + 48);
  // Qwen2 adds q, k and v biases: 48 + 16 + 16 per layer.
  EXPECT_EQ(expected_parameter_count(parse(qwen2_json())) - expected_parameter_count(parse(llama_json())),
            3 * (48 + 16 + 16));
  // Mixtral: 4 experts instead of one MLP, plus a 48x4 router per layer.
  EXPECT_EQ(expected_parameter_count(parse(mixtral_json())) - expected_parameter_count(parse(llama_json())),
            3 * (3 * 3 * 48 * 80 + 48 * 4));
  // GPT-2 124M, the published figure (wte + wpe + 12 blocks + ln_f; lm_head tied).
  json gpt2_124m = {{"model_type", "gpt2"}};
  EXPECT_EQ(expected_parameter_count(parse(gpt2_124m)), 124439808);
  // bert-base-uncased as BertForMaskedLM: 109,514,298 (transformers' num_parameters(), tied decoder).
  json bert_base = {{"model_type", "bert"}, {"architectures", {"BertForMaskedLM"}}};
  EXPECT_EQ(expected_parameter_count(parse(bert_base)), 109514298);
}

TEST(HfConfig, EveryEosIdStopsAndGenerationConfigDecides) {
  json j = llama_json();
  j["eos_token_id"] = {128001, 128009};
  HfModelConfig c = parse(j);
  EXPECT_EQ(c.eos_token_id, 128001);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128009}));
  EXPECT_EQ(parse(to_hf_config_json(c)).eos_token_ids, c.eos_token_ids);

  // generation_config.json is what transformers' generate() stops on
  test::TempDir dir;
  write_hf_config(dir.path(), parse(llama_json()));
  std::ofstream(dir / "generation_config.json") << R"({"bos_token_id": 1, "eos_token_id": [7, 9]})";
  c = read_hf_config(dir.path());
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{7, 9}));
  EXPECT_EQ(c.eos_token_id, 7);
  std::ofstream(dir / "generation_config.json") << R"({"eos_token_id": "x"})";
  test::expect_mentions(test::error_message([&] { read_hf_config(dir.path()); }),
                        {"generation_config.json", "eos_token_id"});
}

TEST(HfConfig, RefusesWhatItCannotRunNamingTheField) {
  json j = llama_json();
  j["model_type"] = "gpt_neox";
  expect_error(j, {"gpt_neox", "supported: gpt2, llama, mistral, qwen2, mixtral, bert"});
  j = llama_json();
  j["num_key_value_heads"] = 4;
  expect_error(j, {"num_key_value_heads=4 does not divide num_attention_heads=6"});
  j = llama_json();
  j.erase("hidden_size");
  expect_error(j, {"missing field \"hidden_size\""});
  j = llama_json();
  j["hidden_size"] = "48";
  expect_error(j, {"\"hidden_size\" must be an integer"});
  j = llama_json();
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  expect_error(j, {"rope_scaling is not supported"});
  j = qwen2_json();
  j["use_sliding_window"] = true;
  expect_error(j, {"use_sliding_window=true is not supported"});
  j = mixtral_json();
  j["num_experts_per_tok"] = 5;
  expect_error(j, {"num_experts_per_tok", "5"});
  j = llama_json();
  j["num_local_experts"] = 4;
  expect_error(j, {"num_local_experts", "llama is dense"});
  j = gpt2_json();
  j["n_head"] = 5;
  expect_error(j, {"n_head=5 does not divide n_embd=64"});
  j = gpt2_json();
  j["activation_function"] = "relu";
  expect_error(j, {"activation_function \"relu\" is not supported"});
  j = gpt2_json();
  j["scale_attn_by_inverse_layer_idx"] = true;
  expect_error(j, {"scale_attn_by_inverse_layer_idx=true is not supported"});
  j = bert_json();
  j["position_embedding_type"] = "relative_key";
  expect_error(j, {"position_embedding_type \"relative_key\" is not supported"});
  j = bert_json();
  j["architectures"] = {"BertForQuestionAnswering"};
  expect_error(j, {"BertForQuestionAnswering", "BertForMaskedLM"});
}

}  // namespace
}  // namespace ld::io
