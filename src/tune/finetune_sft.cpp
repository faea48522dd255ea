#include "tune/finetune_sft.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "infer/generate.hpp"
#include "ops/ops.hpp"
#include "tokenizer/tokenizer.hpp"

namespace ld::tune {

namespace {

std::string trimmed(const std::string& s) {
  const char* space = " \t\r\n";
  const size_t begin = s.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(space) - begin + 1);
}

int64_t trained_tokens(const Tensor& targets) {
  int64_t n = 0;
  for (int64_t t : targets.to_vector<int64_t>()) n += t != train::kIgnoreLabel;
  return n;
}

// The index of the conversation's last assistant message (read_sft_jsonl guarantees one).
size_t last_assistant(const Conversation& c) {
  for (size_t i = c.messages.size(); i-- > 0;)
    if (c.messages[i].role == "assistant") return i;
  LD_FAIL(c.source, ": no assistant message");
}

}  // namespace

train::LossParts sft_loss(const models::CausalLM& model, const SftBatch& batch) {
  // Batches are built on the host; they go where the model's weights are (train.device).
  const Device device = model.device();
  const Tensor mask = batch.attention_mask.defined() ? batch.attention_mask.to(device) : Tensor();
  const models::LmLoss out = model.loss({.ids = batch.input_ids.to(device), .attention_mask = mask},
                                        batch.targets.to(device));
  train::LossParts parts;
  parts.lm_loss = out.lm_loss;
  parts.aux_loss = out.aux_loss;
  parts.loss = out.aux_loss.defined() ? ops::add(parts.lm_loss, out.aux_loss) : parts.lm_loss;
  parts.tokens = trained_tokens(batch.targets);
  return parts;
}

std::string greedy_reply(const models::CausalLM& model, const tok::Tokenizer& tokenizer,
                         const std::vector<int32_t>& prompt_ids, int64_t max_new_tokens,
                         const std::vector<int32_t>& eos_ids, const std::string& end_of_turn) {
  infer::GenerateOptions g;
  g.max_new_tokens = max_new_tokens;
  g.sampling.temperature = 0.0f;
  g.eos_ids = eos_ids;
  if (!end_of_turn.empty()) {
    g.stop_strings = {end_of_turn};
    g.tokenizer = &tokenizer;
  }
  const std::vector<int32_t> out =
      infer::generate(model, std::vector<int64_t>(prompt_ids.begin(), prompt_ids.end()), g);
  std::string text = tokenizer.decode(out);
  if (!end_of_turn.empty()) text = text.substr(0, text.find(end_of_turn));
  return trimmed(text);
}

SftData::SftData(const train::RunConfig& config, const tok::Tokenizer& tokenizer, ChatTemplate chat_template,
                 int64_t prefix_tokens, bool print)
    : config_(config), tokenizer_(tokenizer), template_(std::move(chat_template)), prefix_tokens_(prefix_tokens) {
  const int64_t seq_len = config.train.seq_len;
  SftDataset train = build_sft_dataset(read_sft_jsonl(config.data.train), template_, tokenizer, seq_len);
  if (print && !train.warning().empty())
    std::printf("warning: %s: %s\n", config.data.train.c_str(), train.warning().c_str());
  LD_CHECK(!train.examples.empty(), config.data.train, ": no example has a trained token within train.seq_len=",
           seq_len);
  train_examples_ = std::move(train.examples);
  if (config.data.val.empty()) return;
  val_ = read_sft_jsonl(config.data.val);
  SftDataset val = build_sft_dataset(val_, template_, tokenizer, seq_len);
  if (print && !val.warning().empty()) std::printf("warning: %s: %s\n", config.data.val.c_str(), val.warning().c_str());
  val_examples_ = std::move(val.examples);
}

void SftData::start(const train::TrainerState& state) {
  const SftLoaderOptions options{.batch_size = config_.train.batch_size * ranks_,
                                 .seq_len = config_.train.seq_len,
                                 .packing = config_.data.packing,
                                 .shuffle = true,
                                 .seed = state.seed,
                                 .pad_id = 0};
  loader_ = std::make_unique<SftLoader>(train_examples_, options,
                                        SftCursor{.epoch = state.cursor.epoch, .position = state.cursor.position});
}

train::LossParts SftData::next_loss(const models::CausalLM& model, train::TrainerState& state) {
  const SftBatch global = loader_->next();
  state.cursor = {.epoch = global.cursor.epoch, .position = global.cursor.position};
  if (ranks_ == 1) {
    state.tokens_seen += global.input_ids.numel();
    return sft_loss(model, global);
  }
  const int64_t rows = config_.train.batch_size, first = rank_ * rows;
  const SftBatch mine{.input_ids = global.input_ids.narrow(0, first, rows).contiguous(),
                      .attention_mask = global.attention_mask.narrow(0, first, rows).contiguous(),
                      .targets = global.targets.narrow(0, first, rows).contiguous(),
                      .cursor = global.cursor};
  state.tokens_seen += mine.input_ids.numel();
  train::LossParts parts = sft_loss(model, mine);
  // Mean over this rank's tokens -> this rank's sum over the batch's tokens, times the ranks.
  const int64_t batch_tokens = trained_tokens(global.targets);
  const double weight = batch_tokens > 0 ? double(parts.tokens) * ranks_ / double(batch_tokens) : 0.0;
  parts.lm_loss = ops::scale(parts.lm_loss, weight);
  parts.loss = parts.aux_loss.defined() ? ops::add(parts.lm_loss, parts.aux_loss) : parts.lm_loss;
  return parts;
}

double SftData::validation_loss(const models::CausalLM& model, ops::ComputePrecision precision,
                                int64_t& tokens) const {
  const int64_t B = config_.train.batch_size;
  const int64_t n = std::min<int64_t>(int64_t(val_examples_.size()), config_.eval.batches * B);
  double sum = 0;
  tokens = 0;
  for (int64_t first = 0; first < n; first += B) {
    std::vector<const SftExample*> rows;
    for (int64_t i = first; i < std::min(n, first + B); ++i) rows.push_back(&val_examples_[size_t(i)]);
    ops::AutocastScope autocast(precision);  // evaluated as trained
    const train::LossParts parts = sft_loss(model, pad_examples(rows, /*pad_id=*/0));
    sum += parts.lm_loss.item() * double(parts.tokens);
    tokens += parts.tokens;
  }
  return tokens > 0 ? sum / double(tokens) : std::nan("");
}

int64_t SftData::exact_matches(const models::CausalLM& model, int64_t& asked) const {
  std::vector<int32_t> eos_ids;
  for (int64_t id : model.hf_config().eos_token_ids) eos_ids.push_back(int32_t(id));
  if (auto id = tokenizer_.token_to_id(template_.end_of_turn())) eos_ids.push_back(*id);
  const int64_t n = std::min<int64_t>(int64_t(val_.size()), config_.eval.batches * config_.train.batch_size);
  int64_t matches = 0;
  asked = n;
  for (int64_t i = 0; i < n; ++i) {
    const Conversation& c = val_[size_t(i)];
    const size_t answer = last_assistant(c);
    const std::span<const ChatMessage> before(c.messages.data(), answer);
    const std::vector<int32_t> prompt = tokenizer_.encode(template_.render(before, /*add_generation_prompt=*/true));
    const int64_t room = model.config().n_positions - prefix_tokens_ - int64_t(prompt.size());
    if (room <= 0) continue;  // a prompt that fills the context cannot be answered: a miss
    const std::string reply = greedy_reply(model, tokenizer_, prompt, std::min(config_.eval.sample_tokens, room),
                                           eos_ids, template_.end_of_turn());
    matches += reply == trimmed(c.messages[answer].content);
  }
  return matches;
}

train::EvalReport SftData::evaluate(const models::CausalLM& model, int64_t step, ops::ComputePrecision precision,
                                    train::MetricsLog& log, bool print) const {
  autograd::NoGradGuard no_grad;
  train::EvalReport r;
  r.step = step;
  r.val_loss = validation_loss(model, precision, r.tokens);
  r.val_ppl = std::exp(r.val_loss);
  int64_t asked = 0;
  const int64_t matches = exact_matches(model, asked);
  r.exact_match = asked > 0 ? double(matches) / double(asked) : std::nan("");
  log.write({{"type", "eval"},        {"step", r.step},       {"val_loss", r.val_loss}, {"val_ppl", r.val_ppl},
             {"tokens", r.tokens},    {"exact_match", r.exact_match}, {"exact_match_of", asked}});
  if (print)
    std::printf("eval step %lld | val loss %.4f | val ppl %.2f | exact match %lld/%lld (%.1f%%)\n", (long long)step,
                r.val_loss, r.val_ppl, (long long)matches, (long long)asked, 100.0 * r.exact_match);
  std::fflush(stdout);
  return r;
}

}  // namespace ld::tune
