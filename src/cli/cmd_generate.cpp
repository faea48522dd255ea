// `liandan generate --model DIR (--prompt TEXT | --prompt-ids "1 2 3")`: sample a continuation from a
// Hugging Face causal LM folder (config.json + safetensors). Sampling defaults are Hugging Face's (temperature 1,
// top-k 50, top-p 1, min-p off, no repetition penalty); --temperature 0 is greedy. Generation stops
// at an eos_token_id of generation_config.json or config.json (included in the output, as Hugging Face does) or after
// --max-new-tokens. --adapter DIR attaches a saved adapter (LoRA, prompt tuning, Houlsby; peft/peft_io.hpp)
// to the model first; the tokenizer is still the model folder's. --device cuda loads the weights on the
// host, then moves the model there (nn::Module::to) and decodes on it; the output is the same.
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "cli/progress.hpp"
#include "core/error.hpp"
#include "infer/generate.hpp"
#include "io/hf_config.hpp"
#include "models/causal_lm.hpp"
#include "peft/peft_io.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/run_config.hpp"

namespace ld::cli {

namespace {

struct GenerateArgs {
  std::string model;
  std::string adapter;
  std::string prompt;
  std::string prompt_ids;
  bool has_prompt = false;  // given, even if empty
  bool has_prompt_ids = false;
  int64_t max_new_tokens = 64;
  infer::SamplingOptions sampling{.temperature = 1.0f, .top_k = 50};
  uint64_t seed = 0;
  std::string output = "text";
  std::string device = "cpu";
};

std::vector<int64_t> parse_ids(const std::string& text) {
  std::vector<int64_t> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    try {
      size_t used = 0;
      const long long v = std::stoll(word, &used);
      LD_CHECK(used == word.size(), "");
      ids.push_back(v);
    } catch (const std::exception&) {
      LD_FAIL("--prompt-ids '", text, "': expected token ids separated by spaces, like \"1 2 3\"");
    }
  }
  LD_CHECK(!ids.empty(), "--prompt-ids is empty: give at least one token id");
  return ids;
}

void write_stdout(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

void run_generate(const GenerateArgs& a) {
  LD_CHECK(a.has_prompt != a.has_prompt_ids, "generate: give exactly one of --prompt and --prompt-ids");
  infer::validate(a.sampling);  // before loading what may be gigabytes of weights
  const Device device = train::usable_device(a.device, "--device");  // so is an unusable device
  const io::HfModelConfig config = io::read_hf_config(a.model);
  std::unique_ptr<tok::Tokenizer> tokenizer;
  if (a.has_prompt || a.output == "text") {
    try {
      tokenizer = tok::load_tokenizer(a.model);
    } catch (const Error& e) {
      LD_FAIL(a.model, ": ", (a.has_prompt ? "--prompt" : "--output text"),
              " needs a tokenizer in the model folder; without one use --prompt-ids and --output ids (",
              e.what(), ")");
    }
  }
  // With text, the tokenizer's special tokens (BOS) are added, as Hugging Face does by default.
  const std::vector<int64_t> prompt = !a.has_prompt ? parse_ids(a.prompt_ids) : [&] {
    std::vector<int32_t> ids = tokenizer->encode(a.prompt, /*add_special=*/true);
    return std::vector<int64_t>(ids.begin(), ids.end());
  }();
  auto model = models::load_causal_lm(a.model);
  if (!a.adapter.empty()) peft::load_adapter(*model, a.adapter);
  model->to(device);  // the adapter's weights too

  infer::GenerateOptions options;
  options.max_new_tokens = a.max_new_tokens;
  options.sampling = a.sampling;
  options.seed = a.seed;
  for (int64_t id : config.eos_token_ids) options.eos_ids.push_back(static_cast<int32_t>(id));

  // Tokens per second; while text streams to the same terminal, only the final figure.
  Progress progress("tokens", 0, !(a.output == "text" && isatty(fileno(stdout)) != 0));
  std::unique_ptr<tok::StreamDecoder> stream;
  if (a.output == "text") stream = std::make_unique<tok::StreamDecoder>(*tokenizer);
  size_t count = 0;
  const std::vector<int32_t> ids = infer::generate(*model, prompt, options, [&](int32_t id) {
    if (stream) write_stdout(stream->push(id));
    progress.tick(++count);
  });
  if (stream) {
    write_stdout(stream->flush() + "\n");
    progress.done();
    return;
  }
  progress.done();
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
  write_stdout(line + "\n");
}

}  // namespace

void add_generate_command(CLI::App& app, std::function<void()>& run) {
  auto* cmd = app.add_subcommand("generate", "Generate text from a causal LM folder (GPT-2, LLaMA, Mistral, Qwen2, Mixtral)");
  auto a = std::make_shared<GenerateArgs>();
  cmd->add_option("--model", a->model, "model folder (config.json, model.safetensors, tokenizer)")->required();
  cmd->add_option("--adapter", a->adapter, "adapter folder to attach (LoRA, prompt tuning, Houlsby; PEFT layout)");
  auto* prompt = cmd->add_option("--prompt", a->prompt, "prompt text (needs a tokenizer in the folder; BOS is added)");
  auto* prompt_ids = cmd->add_option("--prompt-ids", a->prompt_ids, "prompt token ids separated by spaces, e.g. \"1 2 3\"");
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "tokens to generate at most (default 64)");
  cmd->add_option("--temperature", a->sampling.temperature, "sampling temperature; 0 = greedy (default 1.0)");
  cmd->add_option("--top-k", a->sampling.top_k, "keep the k most probable tokens; 0 = off (default 50)");
  cmd->add_option("--top-p", a->sampling.top_p, "nucleus sampling mass; 1 = off (default 1.0)");
  cmd->add_option("--min-p", a->sampling.min_p, "drop tokens with p < min_p * p_max; 0 = off (default 0)");
  cmd->add_option("--repetition-penalty", a->sampling.repetition_penalty, "CTRL repetition penalty; 1 = off (default 1.0)");
  cmd->add_option("--seed", a->seed, "sampling seed (default 0)");
  cmd->add_option("--output", a->output, "text: stream the decoded text; ids: one line of generated ids (default text)")
      ->check(CLI::IsMember({"text", "ids"}));
  cmd->add_option("--device", a->device, "where the model runs: cpu, cuda (device 0) or cuda:N (default cpu)");
  run = [a, prompt, prompt_ids] {
    a->has_prompt = prompt->count() > 0;
    a->has_prompt_ids = prompt_ids->count() > 0;
    run_generate(*a);
  };
}

}  // namespace ld::cli
