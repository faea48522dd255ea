// EWC: the empirical Fisher against squared gradients computed by hand, the penalty and its gradient
// against the formula and central differences, save/load, errors, and a continual mini-experiment
// (task A then task B on a tiny classifier: EWC forgets A less).
#include "tune/ewc.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cmath>

#include "autograd/grad_mode.hpp"
#include "core/rng.hpp"
#include "io/safetensors.hpp"
#include "ops/ops.hpp"
#include "test_util.hpp"
#include "train/adamw.hpp"
#include "tune/classify_batches.hpp"
#include "tune/sequence_classifier.hpp"
#include "tune/synthetic_tasks.hpp"
#include "tune_test_util.hpp"

namespace ld::tune {
namespace {

using ld::test::error_message;
using ld::test::expect_mentions;
using ld::test::max_abs_diff;
using ld::test::TempDir;

Tensor leaf(const std::vector<float>& v, const Shape& shape) { return from_vector(v, shape).set_requires_grad(); }

std::vector<double> as_double(const Tensor& t) {
  const std::vector<float> f = t.contiguous().to_vector<float>();
  return {f.begin(), f.end()};
}

// loss_k = Σ w ⊙ x_k + ½ Σ w², so dL/dw = x_k + w and F = mean_k (x_k + w)².
struct ToyProblem {
  Tensor w = leaf({0.5f, -1.0f, 2.0f}, {3});
  Tensor frozen = from_vector(std::vector<float>{7.0f}, {1});
  std::vector<std::vector<float>> xs = {{1.0f, 2.0f, -3.0f}, {0.5f, -0.5f, 1.0f}, {-2.0f, 0.0f, 4.0f}};
  NamedParams params() const { return {{"w", w}, {"frozen", frozen}}; }
  Tensor loss(int64_t k) const {
    const Tensor x = from_vector(xs[size_t(k)], {3});
    return ops::add(ops::sum(ops::mul(w, x)), ops::scale(ops::sum(ops::mul(w, w)), 0.5));
  }
};

TEST(Ewc, FisherIsTheMeanOfSquaredBatchGradients) {
  ToyProblem toy;
  const Ewc ewc = Ewc::estimate(toy.params(), [&](int64_t k) { return toy.loss(k); }, 3);
  ASSERT_EQ(ewc.entries().size(), 1u);  // "frozen" does not require grad
  const Ewc::Entry& e = ewc.entries().at("w");
  const std::vector<double> w = as_double(toy.w), fisher = as_double(e.fisher);
  for (size_t i = 0; i < 3; ++i) {
    double ref = 0;
    for (const auto& x : toy.xs) ref += (x[i] + w[i]) * (x[i] + w[i]) / 3.0;
    EXPECT_NEAR(fisher[i], ref, 1e-5 * (1 + ref)) << i;
  }
  EXPECT_EQ(max_abs_diff(e.anchor, toy.w), 0.0f);
  EXPECT_FALSE(toy.w.grad().defined()) << "estimate leaves no gradient behind";
  EXPECT_EQ(ewc.batches(), 3);
}

TEST(Ewc, PenaltyAndGradientMatchTheFormula) {
  ToyProblem toy;
  const Ewc ewc = Ewc::estimate(toy.params(), [&](int64_t k) { return toy.loss(k); }, 3);
  {
    autograd::NoGradGuard no_grad;
    toy.w.copy_(from_vector(std::vector<float>{0.2f, -0.4f, 2.5f}, {3}));
  }
  const double lambda = 3.0;
  const Tensor penalty = ewc.penalty(toy.params(), lambda);
  const std::vector<double> f = as_double(ewc.entries().at("w").fisher), anchor = as_double(ewc.entries().at("w").anchor),
                            w = as_double(toy.w);
  double ref = 0;
  for (size_t i = 0; i < 3; ++i) ref += lambda / 2 * f[i] * (w[i] - anchor[i]) * (w[i] - anchor[i]);
  EXPECT_NEAR(penalty.item(), ref, 1e-5 * ref);
  penalty.backward();
  const std::vector<double> grad = as_double(toy.w.grad());
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NEAR(grad[i], lambda * f[i] * (w[i] - anchor[i]), 1e-4) << i;
    // central differences of the penalty's value
    autograd::NoGradGuard no_grad;
    const double eps = 1e-2;
    auto at = [&](double value) {
      std::vector<float> moved(w.begin(), w.end());
      moved[i] = float(value);
      Tensor(toy.w).copy_(from_vector(moved, {3}));
      return ewc.penalty(toy.params(), lambda).item();
    };
    const double numeric = (at(w[i] + eps) - at(w[i] - eps)) / (2 * eps);
    at(w[i]);
    EXPECT_NEAR(grad[i], numeric, 1e-3 * (1 + std::abs(numeric))) << i;
  }
  EXPECT_NEAR(ewc.penalty(toy.params(), 0.0).item(), 0.0, 0.0);
}

TEST(Ewc, SaveAndLoadRoundTrip) {
  TempDir dir;
  ToyProblem toy;
  const Ewc ewc = Ewc::estimate(toy.params(), [&](int64_t k) { return toy.loss(k); }, 2);
  ewc.save(dir / "ewc.safetensors");
  const Ewc loaded = Ewc::load(dir / "ewc.safetensors");
  ASSERT_EQ(loaded.entries().size(), 1u);
  EXPECT_EQ(max_abs_diff(loaded.entries().at("w").fisher, ewc.entries().at("w").fisher), 0.0f);
  EXPECT_EQ(max_abs_diff(loaded.entries().at("w").anchor, ewc.entries().at("w").anchor), 0.0f);
  EXPECT_EQ(loaded.batches(), 2);
  EXPECT_EQ(loaded.penalty(toy.params(), 1.0).item(), ewc.penalty(toy.params(), 1.0).item());
}

TEST(Ewc, Errors) {
  TempDir dir;
  ToyProblem toy;
  const Ewc ewc = Ewc::estimate(toy.params(), [&](int64_t k) { return toy.loss(k); }, 1);
  expect_mentions(error_message([&] { ewc.penalty({{"v", toy.w}}, 1.0); }), {"\"w\"", "does not have"});
  expect_mentions(error_message([&] { ewc.penalty({{"w", leaf({1, 2}, {2})}}, 1.0); }), {"\"w\"", "[2]", "[3]"});
  expect_mentions(error_message([&] { ewc.penalty(toy.params(), -1.0); }), {"lambda"});
  expect_mentions(error_message([&] { Ewc::estimate(toy.params(), [&](int64_t k) { return toy.loss(k); }, 0); }),
                  {"at least one batch"});
  io::save_safetensors(dir / "other.safetensors", {{"w", toy.w}});
  expect_mentions(error_message([&] { Ewc::load(dir / "other.safetensors"); }), {"other.safetensors", "not an EWC"});
  io::save_safetensors(dir / "half.safetensors", {{"w.fisher", toy.w}}, {{"format", "liandan-ewc"}});
  expect_mentions(error_message([&] { Ewc::load(dir / "half.safetensors"); }), {"half.safetensors", "w.anchor"});
}

// --- continual mini-experiment
//
// Task A: the separable task (fruit words -> "a", landscape words -> "b"). Task B: the same kind of
// texts in capitals with the classes swapped (FRUIT WORDS -> "b"). The tokens of B are not A's (the
// tokenizer saw no capitals), so one model can solve both; training on B alone still moves the
// shared weights and A is forgotten. Forgetting = A's held-out accuracy before B minus after B.

std::vector<TokenizedExample> task_examples(const std::vector<LabeledText>& items, bool task_b) {
  std::vector<ClassifyExample> out;
  for (const LabeledText& item : items) {
    std::string text = item.text;
    if (task_b)
      for (char& ch : text) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    out.push_back({text, (item.label == "a") != task_b ? 0 : 1, ""});
  }
  return tokenize_classify_examples(out, test::small_bpe(), 48);
}

void train_steps(SequenceClassifier& model, std::vector<TokenizedExample> data, int steps, float lr, const Ewc* ewc,
                 double lambda) {
  train::AdamW optimizer({{model.parameters(), 0.0f}}, {.lr = lr});
  ClassifyLoader loader(std::move(data), {.batch_size = 16, .shuffle = true, .seed = 5});
  for (int step = 0; step < steps; ++step) {
    const ClassifyBatch b = loader.next();
    optimizer.zero_grad();
    Tensor loss = model.loss(model.forward(b.input_ids, b.attention_mask).logits, b.labels);
    if (ewc != nullptr) loss = ops::add(loss, ewc->penalty(model.named_parameters(), lambda));
    loss.backward();
    optimizer.step();
  }
}

struct Continual {
  double a_before, a_after, b_after;
  double forgetting() const { return a_before - a_after; }
};

// B is trained with the EWC penalty (lambda > 0) and/or with `replay` examples of A mixed into B's data.
Continual continual_run(double lambda, size_t replay) {
  const std::vector<TokenizedExample> a_train = task_examples(separable_classification_task(256, 1), false);
  const std::vector<TokenizedExample> a_test = task_examples(separable_classification_task(100, 2), false);
  std::vector<TokenizedExample> b_train = task_examples(separable_classification_task(256, 3), true);
  const std::vector<TokenizedExample> b_test = task_examples(separable_classification_task(100, 4), true);
  models::StackConfig c;
  c.kind = models::StackKind::gpt2;
  c.n_layer = 1;
  c.n_head = 2;
  c.n_kv_head = 2;
  c.n_embd = 16;
  c.vocab_size = test::small_bpe().vocab_size();
  c.n_positions = 48;
  Generator gen(4);
  SequenceClassifier model(models::make_causal_lm(io::make_hf_config(c, true), gen), 2, gen);
  const std::vector<std::string> labels = {"a", "b"};
  auto accuracy = [&](const std::vector<TokenizedExample>& test) {
    return evaluate_classification(test, labels, logits_fn(model), 100, 0).accuracy;
  };
  train_steps(model, a_train, 20, 3e-3f, nullptr, 0);
  const double a_before = accuracy(a_test);
  ClassifyLoader fisher_data(a_train, {.batch_size = 16, .shuffle = false});
  const Ewc ewc = Ewc::estimate(model.named_parameters(), [&](int64_t) {
    const ClassifyBatch b = fisher_data.next();
    return model.loss(model.forward(b.input_ids, b.attention_mask).logits, b.labels);
  }, 8);
  b_train.insert(b_train.end(), a_train.begin(), a_train.begin() + std::ptrdiff_t(replay));
  train_steps(model, b_train, 100, 1e-2f, lambda > 0 ? &ewc : nullptr, lambda);
  return {a_before, accuracy(a_test), accuracy(b_test)};
}

TEST(Ewc, ContinualEwcAndReplayForgetLess) {
  const Continual plain = continual_run(0.0, 0), ewc = continual_run(1e7, 0), replay = continual_run(0.0, 64);
  std::cout << "task A held-out accuracy before B " << plain.a_before << "; after B (task B accuracy): plain "
            << plain.a_after << " (" << plain.b_after << "), EWC lambda 1e7 " << ewc.a_after << " (" << ewc.b_after
            << "), replay 20% " << replay.a_after << " (" << replay.b_after << ")\n";
  EXPECT_GE(plain.a_before, 0.95);
  EXPECT_GT(plain.forgetting(), 0.2);
  EXPECT_LT(ewc.forgetting(), plain.forgetting() - 0.2);
  EXPECT_LT(replay.forgetting(), plain.forgetting() - 0.2);
  EXPECT_GE(ewc.b_after, 0.9);
  EXPECT_GE(replay.b_after, 0.9);
}

}  // namespace
}  // namespace ld::tune
