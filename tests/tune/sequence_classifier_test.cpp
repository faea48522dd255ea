// The causal-LM sequence classifier: which token it reads, its logits against a float64 formula on
// the hidden states, hidden states that are lm_head's input, transformers' names in a saved folder,
// errors, and a tiny GPT-2 learning the separable synthetic task.
#include "tune/sequence_classifier.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "autograd/grad_mode.hpp"
#include "core/rng.hpp"
#include "io/safetensors.hpp"
#include "models/bert.hpp"
#include "models/gpt2.hpp"
#include "models/llama.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"
#include "train/adamw.hpp"
#include "tune/classify_batches.hpp"
#include "tune/synthetic_tasks.hpp"
#include "tune_test_util.hpp"

namespace ld::tune {
namespace {

using ld::test::error_message;
using ld::test::expect_mentions;
using ld::test::max_abs_diff;
using ld::test::TempDir;

std::unique_ptr<models::CausalLM> tiny_lm(models::StackKind kind, bool tied, uint64_t seed = 3, int64_t vocab = 37) {
  models::StackConfig c;
  c.kind = kind;
  c.n_layer = 2;
  c.n_head = 4;
  c.n_kv_head = kind == models::StackKind::llama ? 2 : 4;
  c.n_embd = 16;
  c.vocab_size = vocab;
  c.n_positions = 40;
  c.intermediate_size = 24;
  Generator gen(seed);
  auto lm = models::make_causal_lm(io::make_hf_config(c, tied), gen);
  // Larger than the 0.02 init, so that positions and tokens give clearly different states.
  autograd::NoGradGuard no_grad;
  Generator jitter(seed + 100);
  for (auto& [name, t] : lm->named_parameters())
    if (t.dim() == 2) t.copy_(normal(t.shape(), 0.0f, 0.3f, &jitter));
  return lm;
}

std::unique_ptr<SequenceClassifier> tiny_classifier(models::StackKind kind, int64_t labels, bool tied = true) {
  Generator gen(11);
  auto model = std::make_unique<SequenceClassifier>(tiny_lm(kind, tied), labels, gen);
  autograd::NoGradGuard no_grad;
  model->score->weight.copy_(normal(model->score->weight.shape(), 0.0f, 0.5f, &gen));
  return model;
}

Tensor i64(const std::vector<int64_t>& v, const Shape& shape) { return from_vector(v, shape); }

TEST(SequenceClassifier, PooledPositionIsTheLastRealToken) {
  // right padding: the last 1; no padding: T-1
  EXPECT_EQ(pooled_positions(i64({1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0}, {3, 5}), 3, 5),
            (std::vector<int64_t>{2, 4, 0}));
  // left padding: always T-1
  EXPECT_EQ(pooled_positions(i64({0, 0, 1, 1, 1, 1, 1, 1}, {2, 4}), 2, 4), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(pooled_positions(Tensor(), 2, 6), (std::vector<int64_t>{5, 5}));
  EXPECT_EQ(pooled_positions(from_vector(std::vector<uint8_t>{1, 1, 0}, {1, 3}), 1, 3), (std::vector<int64_t>{1}));
  expect_mentions(error_message([] { pooled_positions(i64({1, 1, 1, 0, 0, 0}, {2, 3}), 2, 3); }),
                  {"row 1", "no real token"});
  expect_mentions(error_message([] { pooled_positions(i64({1, 1}, {1, 2}), 1, 3); }), {"attention_mask", "[1, 2]"});
}

// The hidden states are exactly what lm_head reads: lm_head(hidden) equals the full forward's logits,
// and hidden_only computes no logits.
TEST(SequenceClassifier, HiddenStatesAreTheLmHeadInput) {
  for (const auto kind : {models::StackKind::gpt2, models::StackKind::llama}) {
    auto lm = tiny_lm(kind, /*tied=*/kind == models::StackKind::gpt2);
    const Tensor ids = i64({3, 7, 1, 9, 4, 2, 5, 8, 0, 6}, {2, 5});
    const Tensor mask = i64({0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 5});
    for (const bool last : {false, true}) {
      const models::LmOutput full = lm->run({.ids = ids, .attention_mask = mask, .last_position_only = last});
      const models::LmOutput hidden =
          lm->run({.ids = ids, .attention_mask = mask, .last_position_only = last, .hidden_only = true});
      EXPECT_FALSE(hidden.logits.defined());
      ASSERT_EQ(hidden.hidden.shape(), (Shape{2, last ? 1 : 5, 16}));
      EXPECT_EQ(max_abs_diff(hidden.hidden, full.hidden), 0.0f);
      const nn::Linear& lm_head = kind == models::StackKind::gpt2
                                      ? *dynamic_cast<models::Gpt2LMHeadModel&>(*lm).lm_head
                                      : *dynamic_cast<models::LlamaForCausalLM&>(*lm).lm_head;
      EXPECT_LT(max_abs_diff(lm_head.forward(hidden.hidden), full.logits), 1e-6f);
    }
  }
}

// logits[b] = score.weight @ hidden[b, pos_b] in float64, with pos_b counted by hand; and a padded
// row classifies as the same row unpadded (right and left padding).
TEST(SequenceClassifier, LogitsMatchTheScoreOfTheLastRealToken) {
  for (const auto kind : {models::StackKind::gpt2, models::StackKind::llama}) {
    auto model = tiny_classifier(kind, 3);
    const Tensor ids = i64({3, 7, 1, 0, 0, 0, 9, 4, 2, 5}, {2, 5});
    const Tensor mask = i64({1, 1, 1, 0, 0, 0, 1, 1, 1, 1}, {2, 5});  // row 0 right-, row 1 left-padded
    const std::vector<int64_t> pos = {2, 4};
    const Tensor logits = model->forward(ids, mask).logits;
    ASSERT_EQ(logits.shape(), (Shape{2, 3}));
    const models::LmOutput out = model->lm().run({.ids = ids, .attention_mask = mask, .hidden_only = true});
    const std::vector<float> h = out.hidden.contiguous().to_vector<float>();
    const std::vector<float> w = model->score->weight.to_vector<float>();
    const std::vector<float> got = logits.to_vector<float>();
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t l = 0; l < 3; ++l) {
        double ref = 0;
        for (int64_t c = 0; c < 16; ++c) ref += double(w[size_t(l * 16 + c)]) * double(h[size_t((b * 5 + pos[b]) * 16 + c)]);
        EXPECT_NEAR(got[size_t(b * 3 + l)], ref, 1e-5) << "row " << b << " label " << l;
      }
    const Tensor alone0 = model->forward(i64({3, 7, 1}, {1, 3})).logits;
    const Tensor alone1 = model->forward(i64({9, 4, 2, 5}, {1, 4})).logits;
    EXPECT_LT(max_abs_diff(logits.narrow(0, 0, 1), alone0), 1e-5f);
    EXPECT_LT(max_abs_diff(logits.narrow(0, 1, 1), alone1), 1e-5f);
    EXPECT_EQ(SequenceClassifier::predictions(logits), ops::argmax(logits, -1).to_vector<int64_t>());
  }
}

// The loss's gradient reaches the body through the pooled rows: backward against central differences.
TEST(SequenceClassifier, LossGradientMatchesFiniteDifferences) {
  auto model = tiny_classifier(models::StackKind::gpt2, 3);
  const Tensor ids = i64({3, 7, 1, 0, 9, 4, 2, 5}, {2, 4});
  const Tensor mask = i64({1, 1, 1, 0, 1, 1, 1, 1}, {2, 4});
  const Tensor labels = i64({2, 0}, {2});
  model->loss(model->forward(ids, mask).logits, labels).backward();
  Tensor ln_f_bias = dynamic_cast<models::Gpt2LMHeadModel&>(model->lm()).transformer->ln_f->bias;
  for (const Tensor& p : {model->score->weight, ln_f_bias}) {
    ASSERT_TRUE(p.grad().defined());
    const std::vector<float> analytic = p.grad().to_vector<float>();
    autograd::NoGradGuard no_grad;
    for (const int64_t i : {int64_t(0), p.numel() / 2, p.numel() - 1}) {
      const double eps = 1e-2;
      Tensor flat = p.reshape({p.numel()});
      const float original = flat.narrow(0, i, 1).item();
      auto loss_at = [&](double value) {
        flat.narrow(0, i, 1).fill_(value);
        return model->loss(model->forward(ids, mask).logits, labels).item();
      };
      const double numeric = (loss_at(original + eps) - loss_at(original - eps)) / (2 * eps);
      flat.narrow(0, i, 1).fill_(original);
      EXPECT_NEAR(analytic[size_t(i)], numeric, 2e-3 + 1e-2 * std::abs(numeric)) << "element " << i;
    }
  }
}

TEST(SequenceClassifier, ParameterNamesAreTransformers) {
  auto gpt2 = tiny_classifier(models::StackKind::gpt2, 2);
  auto llama = tiny_classifier(models::StackKind::llama, 2, /*tied=*/false);
  for (const auto& [model, body] : {std::pair{gpt2.get(), "transformer."}, std::pair{llama.get(), "model."}}) {
    const auto params = model->named_parameters();
    EXPECT_EQ(params.back().first, "score.weight");
    EXPECT_EQ(params.back().second.shape(), (Shape{2, 16}));
    for (const auto& [name, t] : params)
      EXPECT_TRUE(name.rfind(body, 0) == 0 || name == "score.weight") << name;  // no lm_head
  }
  EXPECT_EQ(gpt2->hf_config().architecture, "GPT2ForSequenceClassification");
  EXPECT_EQ(llama->hf_config().architecture, "LlamaForSequenceClassification");
}

TEST(SequenceClassifier, SavedFolderReloadsWithLabels) {
  TempDir dir;
  Generator gen(5);
  SequenceClassifier model(tiny_lm(models::StackKind::llama, false), 3, gen, {"neg", "neutral", "pos"});
  save_sequence_classifier(model, dir / "clf");
  std::ifstream in(dir / "clf" / "config.json");
  const nlohmann::json config = nlohmann::json::parse(in);
  EXPECT_EQ(config["architectures"][0], "LlamaForSequenceClassification");
  EXPECT_EQ(config["num_labels"], 3);
  EXPECT_EQ(config["id2label"]["2"], "pos");
  EXPECT_EQ(config["label2id"]["neutral"], 1);
  const io::SafetensorsFile weights = io::SafetensorsFile::open(dir / "clf" / "model.safetensors");
  EXPECT_TRUE(weights.contains("score.weight"));
  EXPECT_TRUE(weights.contains("model.norm.weight"));
  EXPECT_FALSE(weights.contains("lm_head.weight"));

  const auto loaded = load_sequence_classifier(dir / "clf");
  EXPECT_EQ(loaded->label_names(), (std::vector<std::string>{"neg", "neutral", "pos"}));
  const Tensor ids = i64({3, 7, 1, 9}, {2, 2});
  EXPECT_EQ(max_abs_diff(loaded->forward(ids).logits, model.forward(ids).logits), 0.0f);
  loaded->check_label_set({"neg", "neutral", "pos"});
  expect_mentions(error_message([&] { loaded->check_label_set({"neg", "pos"}); }), {"2 labels", "num_labels=3"});
  expect_mentions(error_message([&] { loaded->check_label_set({"a", "neutral", "pos"}); }), {"\"a\"", "\"neg\""});
}

TEST(SequenceClassifier, BadInputErrors) {
  auto model = tiny_classifier(models::StackKind::gpt2, 3);
  const Tensor logits = model->forward(i64({1, 2, 3, 4}, {2, 2})).logits;
  expect_mentions(error_message([&] { model->loss(logits, i64({0, 5}, {2})); }), {"row 1", "label 5", "num_labels=3"});
  expect_mentions(error_message([&] { model->loss(logits, i64({0}, {1})); }), {"labels", "[1]"});
  expect_mentions(error_message([] { sequence_classification_architecture("bert"); }),
                  {"bert", "BertForSequenceClassification"});
  Generator gen(1);
  expect_mentions(error_message([&] { SequenceClassifier(tiny_lm(models::StackKind::gpt2, true), 2, gen, {"x"}); }),
                  {"num_labels=2", "1 label names"});
}

// BERT classifies through the same evaluation: logits_fn is its forward on the batch's ids and mask.
TEST(SequenceClassifier, BertLogitsFnFeedsTheEvaluation) {
  const io::HfModelConfig config = io::parse_hf_config(nlohmann::json{{"model_type", "bert"},
                                                                      {"architectures", {"BertForSequenceClassification"}},
                                                                      {"vocab_size", 13},
                                                                      {"hidden_size", 8},
                                                                      {"num_hidden_layers", 1},
                                                                      {"num_attention_heads", 2},
                                                                      {"intermediate_size", 12},
                                                                      {"max_position_embeddings", 8},
                                                                      {"num_labels", 3}},
                                                       "tiny bert");
  Generator gen(2);
  models::BertForSequenceClassification bert(config, gen);
  const std::vector<TokenizedExample> examples = {{{1, 2, 3}, 0}, {{4}, 1}, {{5, 6}, 2}, {{7, 8, 9, 10}, 1}};
  std::vector<const TokenizedExample*> rows;
  for (const TokenizedExample& e : examples) rows.push_back(&e);
  const ClassifyBatch batch = pad_classify_examples(rows, 0);
  const Tensor logits = logits_fn(bert)(batch);
  EXPECT_EQ(max_abs_diff(logits, bert.forward({.ids = batch.input_ids, .attention_mask = batch.attention_mask,
                                               .token_type_ids = {}})),
            0.0f);
  const std::vector<int64_t> predicted = SequenceClassifier::predictions(logits);
  int64_t correct = 0;
  for (size_t i = 0; i < examples.size(); ++i) correct += predicted[i] == examples[i].label;
  const ClassifyMetrics m = evaluate_classification(examples, {"x", "y", "z"}, logits_fn(bert), 2, 0);
  EXPECT_DOUBLE_EQ(m.accuracy, double(correct) / 4);
}

// A 1-layer GPT-2 with a score head learns the separable task (words from vocabulary A or B) to at
// least 95% held-out accuracy.
TEST(SequenceClassifier, TinyGpt2LearnsTheSeparableTask) {
  const tok::Tokenizer& tokenizer = test::small_bpe();
  auto to_examples = [](const std::vector<LabeledText>& items) {
    std::vector<ClassifyExample> out;
    for (size_t i = 0; i < items.size(); ++i) out.push_back({items[i].text, items[i].label == "a" ? 0 : 1, "gen:" + std::to_string(i)});
    return out;
  };
  const int64_t seq_len = 48;
  std::vector<TokenizedExample> train =
      tokenize_classify_examples(to_examples(separable_classification_task(512, 1)), tokenizer, seq_len);
  const std::vector<TokenizedExample> held_out =
      tokenize_classify_examples(to_examples(separable_classification_task(200, 2)), tokenizer, seq_len);

  models::StackConfig c;
  c.kind = models::StackKind::gpt2;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_kv_head = 2;
  c.n_embd = 32;
  c.vocab_size = tokenizer.vocab_size();
  c.n_positions = seq_len;
  Generator gen(4);
  SequenceClassifier model(models::make_causal_lm(io::make_hf_config(c, true), gen), 2, gen, {"a", "b"});
  const std::vector<std::string> labels = {"a", "b"};
  const ClassifyMetrics before = evaluate_classification(held_out, labels, logits_fn(model), 64, 0);

  train::AdamW optimizer({{model.parameters(), 0.0f}}, {.lr = 3e-3f});
  ClassifyLoader loader(std::move(train), {.batch_size = 16, .shuffle = true, .seed = 9, .pad_id = 0});
  for (int step = 0; step < 120; ++step) {
    const ClassifyBatch batch = loader.next();
    optimizer.zero_grad();
    model.loss(model.forward(batch.input_ids, batch.attention_mask).logits, batch.labels).backward();
    optimizer.step();
  }
  const ClassifyMetrics after = evaluate_classification(held_out, labels, logits_fn(model), 64, 0);
  std::cout << "separable task, held-out accuracy " << before.accuracy << " -> " << after.accuracy << ", macro F1 "
            << after.macro_f1 << "\n";
  EXPECT_GE(after.accuracy, 0.95);
  EXPECT_GE(after.macro_f1, 0.95);
  EXPECT_EQ(after.examples, 200);
}

}  // namespace
}  // namespace ld::tune
