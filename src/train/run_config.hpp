#pragma once
// The run configuration of `liandan pretrain` (and later finetune) and `liandan plan`: a YAML file
// plus `--section.key=value` overrides on the command line, into one typed RunConfig.
//
// One table of keys (run_config_keys(): name, type, default, allowed values, documentation) drives
// the parsing, the validation, docs/config.md and the suggestion for an unknown key. The model
// section is the exception in shape, not in treatment: its keys are Hugging Face's config.json names
// for the model type (n_layer for gpt2, num_hidden_layers for llama, ...), listed per type in
// model_config_keys(); the given keys become a config.json object that io::parse_hf_config
// validates, so a YAML model and a model folder are checked by the same code.
//
// Precedence: defaults < the YAML file < overrides, later overrides winning over earlier ones.
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/hf_config.hpp"

namespace ld::train {

struct ModelSection {
  std::string type;  // gpt2 | llama | mistral | qwen2 | mixtral | bert (from `type`, or config.json's model_type)
  std::string from;  // a Hugging Face folder whose config.json is the base; "" = built from the keys
  nlohmann::json keys = nlohmann::json::object();  // the model keys given, Hugging Face names
  io::HfModelConfig hf;                            // the resolved model
};

struct DataSection {
  std::string path;       // a prepared dataset folder (index.json, from `liandan data prepare`)
  std::string tokenizer;  // tokenizer.json or a folder holding one; "" = the dataset's own
  // Fine-tuning (task sft): instruction JSONL files, the chat template, packing.
  std::string train;                // Alpaca or chat JSONL
  std::string val;                  // the same, held out; "" = no evaluation
  std::string chat_template = "chatml";  // chatml | tokenizer (tokenizer_config.json's chat_template)
  bool packing = false;
  std::vector<std::string> labels;  // task classify: the label set, label i = class i; [] = the training file's
};

// `liandan finetune`: what is trained and on what.
struct FinetuneSection {
  std::string method = "lora";  // full | lora | adapter | prompt
  std::string task = "sft";     // sft | clm | classify | multitask
};

// finetune.task multitask: several sft datasets, dataset i = train[i] (val[i], names[i], weights[i]).
struct MultitaskSection {
  std::vector<std::string> train;    // instruction JSONL files
  std::vector<std::string> val;      // [] or one per dataset ("" = none)
  std::vector<std::string> names;    // [] = the train files' stems
  std::vector<std::string> weights;  // numbers; [] = equal (sampling weights)
  std::string sampling = "weights";  // weights | temperature
  double temperature = 1.0;          // sampling temperature: p_i ∝ n_i^(1/T)
};

// Continual fine-tuning: the earlier task's data for replay and EWC, and forgetting measured on it.
struct ContinualSection {
  std::string replay_from;      // the earlier task's training JSONL, or its finetune run folder
  double replay_fraction = 0;   // of the micro-batches drawn from replay_from
  double ewc_lambda = 0;        // 0 = no EWC
  int64_t fisher_batches = 20;  // batches of replay_from for the diagonal Fisher
  std::string earlier_val;      // the earlier task's held-out data: forgetting at each evaluation
};

struct LoraSection {
  int64_t r = 8;
  double alpha = 16;
  double dropout = 0.05;
  std::vector<std::string> target_modules;  // [] = the model type's default; [all-linear]
  bool use_rslora = false;
};

struct AdapterSection {
  int64_t width = 64;
  std::string nonlinearity = "gelu";  // gelu | relu
};

struct PromptTuningSection {
  int64_t num_virtual_tokens = 20;
  std::string init = "random";  // random | text
  std::string init_text;
};

struct TrainSection {
  int64_t batch_size = 8;  // sequences per micro-batch
  int64_t seq_len = 0;     // 0 = the model's context length
  int64_t grad_accum = 1;
  int64_t max_steps = 1000;
  double lr = 3e-4;
  int64_t warmup_steps = 100;
  std::string schedule = "cosine";  // cosine | linear | constant
  double min_lr_ratio = 0.1;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  std::string optimizer = "adamw";  // adamw | sgd
  double momentum = 0.9;            // sgd
  double grad_clip = 1.0;           // 0 = no clipping
  std::string precision = "fp32";   // fp32 | bf16 | fp16
  bool bf16_weights = true;         // bf16: products read bf16 working copies of the fp32 master weights
  bool stochastic_rounding = false; // bf16: those copies rounded stochastically
  std::string checkpointing = "none";  // none | all | every_k
  int64_t checkpoint_every_k = 2;
  int64_t seed = 1234;
  int64_t threads = 0;              // 0 = all cores
  std::string device = "cpu";       // cpu | cuda | cuda:N: where the model, optimizer state and batches live
  std::string objective = "auto";   // auto | clm | mlm; resolved: clm for causal models, mlm for bert
  double mlm_probability = 0.15;
  int64_t mask_token_id = -1;       // mlm; -1 = the tokenizer's [MASK] or <mask>
};

struct EvalSection {
  int64_t every = 500;  // steps; 0 = never
  int64_t batches = 20;
  std::vector<std::string> samples;  // prompts to continue at each evaluation
  int64_t sample_tokens = 64;
};

struct CheckpointSection {
  int64_t every = 1000;  // steps; 0 = only at the end
  int64_t keep_last = 3;  // 0 = keep all
};

struct LogSection {
  int64_t every = 10;  // steps
};

// Multi-process training (run under mpirun/srun; see dist/): the ranks form a grid of
// dp x tp x pp processes, dp being what tp and pp leave of the world.
struct DistSection {
  int64_t zero = 0;          // data parallel: 0 all-reduce, 1 shard optimizer state, 2 also gradients
  double bucket_mb = 25;     // gradient all-reduce bucket size (MiB)
  int64_t tp = 1;            // tensor-parallel ranks
  int64_t pp = 1;            // pipeline stages
  std::string schedule = "1f1b";  // gpipe | 1f1b
};

struct RunConfig {
  ModelSection model;
  DataSection data;
  TrainSection train;
  EvalSection eval;
  CheckpointSection checkpoint;
  LogSection log;
  DistSection dist;
  FinetuneSection finetune;
  MultitaskSection multitask;
  ContinualSection continual;
  LoraSection lora;
  AdapterSection adapter;
  PromptTuningSection prompt_tuning;
  std::string output_dir = "runs/run";
  // The dotted keys the file and the overrides set (model keys too), in order: lets a command
  // refuse keys that mean nothing to it instead of silently ignoring them.
  std::vector<std::string> given;

  bool was_given(const std::string& key) const;
  // The given keys of a section ("lora" -> lora.r, ...).
  std::vector<std::string> given_in(const std::string& section) const;
  // Given with a value other than the default: what a command that does not read the key refuses
  // (a resolved.yaml lists every key, at its default when unused, and must load back).
  bool set_away_from_default(const std::string& key) const;
};

// --- the key table

enum class KeyType { integer, number, boolean, string, list };
const char* key_type_name(KeyType type);  // "an integer", "a number", ...

struct KeySpec {
  std::string name;     // dotted: "train.lr", "output_dir"
  KeyType type;
  std::string choices;  // "cosine|linear|constant"; "" = any value of the type
  std::string doc;
  std::vector<std::string> aliases;  // names other tools use (learning_rate), for suggestions only
};
const std::vector<KeySpec>& run_config_keys();

// A model key: its Hugging Face name, the model types that read it and the default they apply.
struct ModelKeySpec {
  std::string name;
  KeyType type;
  bool nullable;        // null is a value (n_inner, sliding_window)
  std::string types;    // "gpt2,bert" ...
  std::string default_text;
  std::string doc;
  std::vector<std::string> aliases;  // the same size under another model type's name
};
const std::vector<ModelKeySpec>& model_config_keys();
bool model_key_applies(const ModelKeySpec& key, const std::string& model_type);

// The default of a table key as written in YAML ("3e-4", "cosine", "[]").
std::string default_text(const KeySpec& key);

// --- loading

// Splits "--train.lr=3e-4" (or "train.lr=3e-4") into key and value; an argument without '=' is an
// error naming it.
struct Override {
  std::string key, value;
};
Override parse_override(const std::string& arg);
// Command-line leftovers into overrides: "--k=v" or "--k v".
std::vector<Override> parse_overrides(const std::vector<std::string>& args);

// Reads the YAML file, applies the overrides, checks every key and value, resolves the model and
// the derived defaults (seq_len, objective). Errors name the file (or the override) and the key.
RunConfig load_run_config(const std::filesystem::path& yaml_file, const std::vector<Override>& overrides = {});
// The same from YAML text; `source` names it in errors.
RunConfig parse_run_config(const std::string& yaml_text, const std::string& source,
                           const std::vector<Override>& overrides = {});

// The resolved configuration as YAML: every key with its value, the model with all its keys, so that
// parsing it gives the same RunConfig.
std::string to_yaml(const RunConfig& config);
// Writes `dir`/resolved.yaml (atomically); returns its path.
std::filesystem::path save_resolved(const RunConfig& config, const std::filesystem::path& dir);

// docs/config.md, generated from the tables.
std::string config_reference_markdown();

// Edit distance (insertions, deletions, substitutions), for "did you mean".
// train.device as a Device, checked usable here (a build with CUDA and a device to run on); every
// error names train.device.
Device training_device(const TrainSection& train);
// The same for any option naming a device (cpu, cuda, cuda:N), e.g. a command's --device: every
// error names `option`.
Device usable_device(const std::string& name, const std::string& option);

size_t levenshtein(const std::string& a, const std::string& b);

}  // namespace ld::train
