// The run configuration: YAML + overrides into RunConfig, type and unknown-key errors, the model
// section for every model type, resolved.yaml round trips, docs/config.md in sync with the table.
#include "train/run_config.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "io/hf_config.hpp"
#include "test_util.hpp"

namespace ld::train {
namespace {

const char* kGpt2 = R"(
model:
  type: gpt2
  n_layer: 2
  n_head: 4
  n_embd: 64
  vocab_size: 97
  n_positions: 32
train:
  lr: 1e-3
  batch_size: 4
output_dir: runs/x
)";

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(RunConfig, LoadsYamlOverDefaults) {
  RunConfig c = parse_run_config(kGpt2, "cfg.yaml");
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_EQ(c.train.batch_size, 4);
  EXPECT_EQ(c.output_dir, "runs/x");
  EXPECT_EQ(c.train.grad_accum, RunConfig().train.grad_accum);  // a default
  EXPECT_EQ(c.train.schedule, "cosine");
  EXPECT_EQ(c.train.seq_len, 32);        // 0 resolves to n_positions
  EXPECT_EQ(c.train.objective, "clm");   // auto resolves for a causal model
  EXPECT_EQ(c.model.hf.stack.n_layer, 2);
  EXPECT_EQ(c.model.hf.stack.n_embd, 64);
  EXPECT_TRUE(c.model.hf.tie_word_embeddings);  // gpt2's default
}

TEST(RunConfig, OverridesWinOverTheFileAndLaterOverridesWin) {
  RunConfig c = parse_run_config(kGpt2, "cfg.yaml",
                                 parse_overrides({"--train.lr=3e-4", "--model.n_layer=3", "--train.seq_len", "16",
                                                  "--eval.samples=[Once upon, The]", "--train.lr=5e-4"}));
  EXPECT_DOUBLE_EQ(c.train.lr, 5e-4);
  EXPECT_EQ(c.model.hf.stack.n_layer, 3);
  EXPECT_EQ(c.train.seq_len, 16);
  EXPECT_EQ(c.eval.samples, (std::vector<std::string>{"Once upon", "The"}));
  // an override for a key the file lacks, and a top-level one
  c = parse_run_config(kGpt2, "cfg.yaml", {{"data.path", "d/x"}, {"output_dir", "runs/y"}});
  EXPECT_EQ(c.data.path, "d/x");
  EXPECT_EQ(c.output_dir, "runs/y");
  EXPECT_EQ(test::error_message([] { parse_run_config(kGpt2, "cfg.yaml", {{"model", "gpt2"}}); }),
            "override --model=gpt2: model is a section: set its keys, e.g. --model.type=...");
  EXPECT_EQ(test::error_message([] { parse_override("--train.lr"); }),
            "override --train.lr: expected --section.key=value");
}

TEST(RunConfig, BadValuesNameTheKeyAndTheType) {
  EXPECT_EQ(test::error_message([] { parse_run_config("train: {batch_size: abc}\nmodel: {type: gpt2}", "c.yaml"); }),
            "c.yaml: train.batch_size: expected an integer, got \"abc\"");
  EXPECT_EQ(test::error_message([] { parse_run_config("train: {batch_size: 2.5}\nmodel: {type: gpt2}", "c.yaml"); }),
            "c.yaml: train.batch_size: expected an integer, got \"2.5\"");
  EXPECT_EQ(test::error_message([] { parse_run_config(kGpt2, "c.yaml", {{"train.lr", "fast"}}); }),
            "override --train.lr=fast: train.lr: expected a number, got \"fast\"");
  EXPECT_EQ(test::error_message([] { parse_run_config("eval: {samples: hello}\nmodel: {type: gpt2}", "c.yaml"); }),
            "c.yaml: eval.samples: expected a list (e.g. [a, b]), got \"hello\"");
  EXPECT_EQ(test::error_message([] { parse_run_config("train: {schedule: cosin}\nmodel: {type: gpt2}", "c.yaml"); }),
            "c.yaml: train.schedule: expected one of cosine|linear|constant, got \"cosin\"");
  EXPECT_EQ(test::error_message([] { parse_run_config("train: {batch_size: 0}\nmodel: {type: gpt2}", "c.yaml"); }),
            "c.yaml: train.batch_size=\"0\" must be positive");
  EXPECT_EQ(test::error_message([] { parse_run_config("train: {lr: [1]}\nmodel: {type: gpt2}", "c.yaml"); }),
            "c.yaml: train.lr: expected a number, got [1]");
  EXPECT_EQ(test::error_message(
                [] { parse_run_config("model: {type: gpt2, tie_word_embeddings: maybe}", "c.yaml"); }),
            "c.yaml: model.tie_word_embeddings: expected a boolean (true or false), got \"maybe\"");
  EXPECT_EQ(test::error_message([] { parse_run_config("train: [1, 2]", "c.yaml"); }),
            "c.yaml: train: expected a mapping of keys, got [1, 2]");
  test::expect_mentions(test::error_message([] { parse_run_config("train: {lr: 1", "c.yaml"); }),
                        {"c.yaml: not valid YAML"});
}

TEST(RunConfig, UnknownKeysNameTheNearestValidKey) {
  auto err = [](const std::string& yaml) {
    return test::error_message([&] { parse_run_config(yaml + "\nmodel: {type: gpt2}", "run.yaml"); });
  };
  EXPECT_EQ(err("train: {lerning_rate: 1e-3}"), "run.yaml: unknown key train.lerning_rate (did you mean train.lr?)");
  EXPECT_EQ(err("train: {batch_sise: 2}"), "run.yaml: unknown key train.batch_sise (did you mean train.batch_size?)");
  EXPECT_EQ(err("trian: {lr: 1e-3}"), "run.yaml: unknown key trian (did you mean train?)");
  EXPECT_EQ(err("lr: 1e-3"), "run.yaml: unknown key lr (did you mean train.lr?)");  // right name, wrong place
  EXPECT_EQ(err("output_dri: x"), "run.yaml: unknown key output_dri (did you mean output_dir?)");
  EXPECT_EQ(err("eval: {evry: 2}"), "run.yaml: unknown key eval.evry (did you mean eval.every?)");
  EXPECT_EQ(err("train: {n_layer: 2}"), "run.yaml: unknown key train.n_layer (did you mean model.n_layer?)");
  EXPECT_EQ(test::error_message([] { parse_run_config(kGpt2, "run.yaml", {{"train.warmup", "5"}}); }),
            "override --train.warmup=5: unknown key train.warmup (did you mean train.warmup_steps?)");
}

TEST(RunConfig, UnknownModelKeysAreCheckedAgainstTheModelType) {
  auto err = [](const std::string& yaml) { return test::error_message([&] { parse_run_config(yaml, "m.yaml"); }); };
  EXPECT_EQ(err("model: {type: gpt2, n_layr: 2}"),
            "m.yaml: unknown key model.n_layr for model type gpt2 (did you mean model.n_layer?)");
  // the llama name for a gpt2 size: the gpt2 name is suggested
  EXPECT_EQ(err("model: {type: gpt2, num_hidden_layers: 2}"),
            "m.yaml: unknown key model.num_hidden_layers for model type gpt2 (did you mean model.n_layer?)");
  EXPECT_EQ(err("model: {type: llama, n_embd: 64, num_hidden_layers: 2, num_attention_heads: 4, "
                "intermediate_size: 8, vocab_size: 10}"),
            "m.yaml: unknown key model.n_embd for model type llama (did you mean model.hidden_size?)");
  EXPECT_EQ(err("model: {typ: gpt2}"), "m.yaml: unknown key model.typ (did you mean model.type?)");
  EXPECT_EQ(err("model: {type: gpt3}"), "m.yaml: model.type: expected one of " + io::supported_model_types() +
                                            ", got \"gpt3\"");
  EXPECT_EQ(err("train: {lr: 1}"),
            "m.yaml: model: needs type (" + io::supported_model_types() + ") or from: a Hugging Face model folder");
  // the model's own validation (shared with config.json) names the field
  EXPECT_EQ(err("model: {type: llama, hidden_size: 64}"), "m.yaml: model: missing field \"intermediate_size\"");
  EXPECT_EQ(err("model: {type: gpt2, n_embd: 64, n_head: 5}"), "m.yaml: model: n_head=5 does not divide n_embd=64");
}

TEST(RunConfig, ModelSectionBecomesTheHfConfigOfEachType) {
  RunConfig g = parse_run_config("model: {type: gpt2, n_layer: 3, n_head: 2, n_embd: 32, n_inner: 48, "
                                 "vocab_size: 50, n_positions: 40, num_local_experts: 4, num_experts_per_tok: 1}",
                                 "g.yaml");
  EXPECT_EQ(g.model.hf.model_type, "gpt2");
  EXPECT_EQ(g.model.hf.stack.intermediate_size, 48);
  EXPECT_EQ(g.model.hf.stack.n_positions, 40);
  EXPECT_EQ(g.model.hf.moe.num_experts, 4);
  EXPECT_EQ(g.model.hf.moe.top_k, 1);

  RunConfig l = parse_run_config("model: {type: llama, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4,"
                                 " num_key_value_heads: 2, intermediate_size: 96, vocab_size: 100, rope_theta: 5e5}",
                                 "l.yaml");
  EXPECT_EQ(l.model.hf.stack.kind, models::StackKind::llama);
  EXPECT_EQ(l.model.hf.stack.n_kv_head, 2);
  EXPECT_EQ(l.model.hf.stack.n_positions, 2048);  // LlamaConfig's default
  EXPECT_DOUBLE_EQ(l.model.hf.stack.rope_theta, 5e5);
  EXPECT_FALSE(l.model.hf.tie_word_embeddings);

  RunConfig m = parse_run_config("model: {type: mixtral, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4,"
                                 " intermediate_size: 96, vocab_size: 100, num_local_experts: 4, "
                                 "moe_capacity_factor: 1.5, sliding_window: null}",
                                 "m.yaml");
  EXPECT_EQ(m.model.hf.moe.num_experts, 4);
  EXPECT_EQ(m.model.hf.moe.top_k, 2);
  EXPECT_DOUBLE_EQ(m.model.hf.moe.capacity_factor, 1.5);
  EXPECT_EQ(m.model.hf.sliding_window, 0);

  RunConfig b = parse_run_config("model: {type: bert, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, "
                                 "intermediate_size: 96, vocab_size: 100, max_position_embeddings: 64}",
                                 "b.yaml");
  EXPECT_EQ(b.model.hf.architecture, "BertForMaskedLM");
  EXPECT_EQ(b.train.objective, "mlm");
  EXPECT_EQ(b.train.seq_len, 64);
  EXPECT_EQ(test::error_message([] {
              parse_run_config("model: {type: bert, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, "
                               "intermediate_size: 96, vocab_size: 100}\ntrain: {objective: clm}",
                               "b.yaml");
            }),
            "b.yaml: train.objective=clm does not fit model type bert (bidirectional: use mlm)");
  EXPECT_EQ(test::error_message([] { parse_run_config(kGpt2, "g.yaml", {{"train.seq_len", "64"}}); }),
            "g.yaml: train.seq_len=64 exceeds the model's n_positions=32");
}

TEST(RunConfig, ModelFromAFolderWithKeysOverIt) {
  test::TempDir dir;
  io::HfModelConfig folder = parse_run_config(kGpt2, "g.yaml").model.hf;
  io::write_hf_config(dir.path(), folder);
  const std::string yaml = "model: {from: " + dir.path().string() + "}";
  RunConfig c = parse_run_config(yaml, "f.yaml");
  EXPECT_EQ(c.model.type, "gpt2");
  EXPECT_EQ(io::to_hf_config_json(c.model.hf), io::to_hf_config_json(folder));
  c = parse_run_config(yaml, "f.yaml", {{"model.n_layer", "5"}});
  EXPECT_EQ(c.model.hf.stack.n_layer, 5);
  EXPECT_EQ(c.model.hf.stack.n_embd, 64);  // the rest from the folder
  EXPECT_EQ(test::error_message([&] { parse_run_config(yaml, "f.yaml", {{"model.type", "llama"}}); }),
            "override --model.type=llama: model.type=llama but " + dir.path().string() +
                "/config.json has model_type \"gpt2\"");
  test::expect_mentions(test::error_message([] { parse_run_config("model: {from: /nonexistent/x}", "f.yaml"); }),
                        {"/nonexistent/x/config.json: cannot open"});
}

TEST(RunConfig, ResolvedYamlReloadsToTheSameConfig) {
  test::TempDir dir;
  RunConfig c = parse_run_config(
      kGpt2, "g.yaml", {{"eval.samples", "[\"a: b\", '', \"x\"]"}, {"data.tokenizer", ""}, {"train.eps", "1e-7"}});
  const auto path = save_resolved(c, dir.path() / "run");
  EXPECT_EQ(path, dir.path() / "run" / "resolved.yaml");
  const std::string text = read_text(path);
  RunConfig back = load_run_config(path);
  EXPECT_EQ(to_yaml(back), text);
  EXPECT_EQ(back.eval.samples, (std::vector<std::string>{"a: b", "", "x"}));
  EXPECT_DOUBLE_EQ(back.train.eps, 1e-7);
  EXPECT_EQ(back.train.seq_len, 32);
  EXPECT_EQ(io::to_hf_config_json(back.model.hf), io::to_hf_config_json(c.model.hf));
  // every key of the table is written
  for (const KeySpec& k : run_config_keys()) {
    const std::string leaf = k.name.substr(k.name.rfind('.') + 1);
    EXPECT_NE(text.find(leaf + ":"), std::string::npos) << k.name;
  }
}

TEST(RunConfig, ExamplesLoadAndRoundTrip) {
  const std::filesystem::path examples = std::filesystem::path(LIANDAN_SOURCE_DIR) / "examples";
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(examples)) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    RunConfig c = load_run_config(entry.path());
    RunConfig back = parse_run_config(to_yaml(c), "resolved.yaml");
    EXPECT_EQ(to_yaml(back), to_yaml(c));
    EXPECT_EQ(io::to_hf_config_json(back.model.hf), io::to_hf_config_json(c.model.hf));
    ++n;
  }
  EXPECT_GE(n, 4);
}

TEST(RunConfig, DocsAreGeneratedFromTheTable) {
  const std::string doc = read_text(std::filesystem::path(LIANDAN_SOURCE_DIR) / "docs" / "config.md");
  for (const KeySpec& k : run_config_keys())
    EXPECT_NE(doc.find("| `" + k.name + "` |"), std::string::npos) << k.name << " is not in docs/config.md";
  for (const ModelKeySpec& k : model_config_keys())
    EXPECT_NE(doc.find("| `" + k.name + "` |"), std::string::npos) << k.name << " is not in docs/config.md";
  EXPECT_EQ(doc, config_reference_markdown())
      << "docs/config.md is stale: regenerate it with `liandan plan --print-config-docs > docs/config.md`";
}

TEST(RunConfig, Levenshtein) {
  EXPECT_EQ(levenshtein("", "abc"), 3u);
  EXPECT_EQ(levenshtein("kitten", "sitting"), 3u);
  EXPECT_EQ(levenshtein("lr", "lr"), 0u);
  EXPECT_EQ(levenshtein("flaw", "lawn"), 2u);
}

}  // namespace
}  // namespace ld::train
