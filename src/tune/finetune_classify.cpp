#include "tune/finetune_classify.hpp"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>

#include "autograd/grad_mode.hpp"
#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "core/rng.hpp"
#include "io/hf_config.hpp"
#include "io/safetensors.hpp"
#include "models/causal_lm.hpp"
#include "peft/peft_io.hpp"
#include "peft/projections.hpp"

namespace ld::tune {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json(const fs::path& file) {
  std::ifstream in(file);
  LD_CHECK(in.good(), file.string(), ": cannot read");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    LD_FAIL(file.string(), ": not valid JSON (", e.what(), ")");
  }
}

// The base classifier: model.from's own head and labels when it is a classifier folder, else its LM
// with a new head (N(0, 0.02) from `gen`) named by the label set.
std::unique_ptr<SequenceClassifier> base_classifier(const fs::path& from, const std::vector<std::string>& label_set,
                                                    Generator& gen) {
  if (is_classifier_folder(from)) {
    std::unique_ptr<SequenceClassifier> c = load_sequence_classifier(from);
    c->check_label_set(label_set);
    return c;
  }
  return std::make_unique<SequenceClassifier>(models::load_causal_lm(from), int64_t(label_set.size()), gen,
                                              label_set);
}

// Writes the head into a LoRA folder save_lora wrote, as PEFT saves a SEQ_CLS model's modules_to_save.
void add_head_to_adapter(const SequenceClassifier& classifier, const fs::path& dir) {
  const fs::path weights = dir / "adapter_model.safetensors";
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;
  {
    const io::SafetensorsFile file = io::SafetensorsFile::open(weights);
    for (const io::TensorInfo& info : file.tensors()) tensors.emplace_back(info.name, file.get(info.name).contiguous());
    metadata = file.metadata();
  }
  tensors.emplace_back(kPeftScoreKey, classifier.score->weight.detach());
  io::save_safetensors(weights, tensors, metadata);
  json config = read_json(dir / "adapter_config.json");
  config["task_type"] = "SEQ_CLS";
  config["modules_to_save"] = json::array({"score"});
  write_file_atomically(dir / "adapter_config.json", config.dump(2) + "\n");
}

fs::path scratch_folder() {
  static std::atomic<int> counter{0};
  return fs::temp_directory_path() /
         ("liandan-classify-adapter-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
}

// The LoRA part of a classify adapter folder, attached to the classifier's body (peft::load_adapter
// reads causal-LM adapters: it gets a copy without the head), then the head's weight.
peft::LoraModel load_adapter_with_head(SequenceClassifier& classifier, const fs::path& dir) {
  json config = read_json(dir / "adapter_config.json");
  LD_CHECK(config.value("task_type", "") == "SEQ_CLS", (dir / "adapter_config.json").string(),
           ": not a classification adapter (task_type must be SEQ_CLS)");
  const io::SafetensorsFile file = io::SafetensorsFile::open(dir / "adapter_model.safetensors");
  LD_CHECK(file.contains(kPeftScoreKey), file.path().string(), ": no ", kPeftScoreKey, " (the classification head)");
  const fs::path scratch = scratch_folder();
  fs::create_directories(scratch);
  config["task_type"] = "CAUSAL_LM";
  config["modules_to_save"] = nullptr;
  write_file_atomically(scratch / "adapter_config.json", config.dump(2));
  std::vector<std::pair<std::string, Tensor>> lora_tensors;
  for (const io::TensorInfo& info : file.tensors())
    if (info.name != kPeftScoreKey) lora_tensors.emplace_back(info.name, file.get(info.name));
  io::save_safetensors(scratch / "adapter_model.safetensors", lora_tensors);
  peft::LoadedAdapter loaded;
  try {
    loaded = peft::load_adapter(classifier.lm(), scratch);
  } catch (...) {
    fs::remove_all(scratch);
    throw;
  }
  fs::remove_all(scratch);
  LD_CHECK(loaded.peft_type == "LORA", dir.string(), ": holds a ", loaded.peft_type,
           " adapter, but finetune.method=lora");
  const Tensor head = file.get(kPeftScoreKey, DType::f32);
  LD_CHECK(head.shape() == classifier.score->weight.shape(), file.path().string(), ": ", kPeftScoreKey, " is ",
           shape_str(head.shape()), ", the head is ", shape_str(classifier.score->weight.shape()));
  autograd::NoGradGuard no_grad;
  classifier.score->weight.copy_(head);
  return std::move(loaded.lora);
}

peft::LoraConfig lora_config(const train::LoraSection& s) {
  return {.r = s.r, .alpha = s.alpha, .dropout = s.dropout, .target_modules = s.target_modules,
          .use_rslora = s.use_rslora};
}

}  // namespace

bool is_classifier_folder(const fs::path& dir) {
  // io::read_hf_config keeps only bert's architectures (it builds causal LMs whatever they name).
  const json config = read_json(dir / "config.json");
  const auto archs = config.find("architectures");
  if (archs == config.end() || !archs->is_array() || archs->empty() || !archs->front().is_string()) return false;
  const std::string arch = archs->front().get<std::string>();
  const std::string suffix = "ForSequenceClassification";
  return arch.size() >= suffix.size() && arch.compare(arch.size() - suffix.size(), suffix.size(), suffix) == 0;
}

ClassifierModel load_classifier_model(const train::RunConfig& c, const fs::path& checkpoint,
                                      const std::vector<std::string>& label_set) {
  ClassifierModel m;
  m.method = c.finetune.method;
  m.base = c.model.from;
  Generator gen(uint64_t(c.train.seed));
  if (m.method == "full") {
    if (checkpoint.empty()) {
      m.classifier = base_classifier(m.base, label_set, gen);
    } else {
      m.classifier = load_sequence_classifier(checkpoint);
      m.classifier->check_label_set(label_set);
    }
    return m;
  }
  m.classifier = base_classifier(m.base, label_set, gen);
  if (checkpoint.empty()) {
    m.lora = peft::apply_lora(*m.classifier, lora_config(c.lora), gen, m.classifier->lm().hf_config().model_type);
    m.classifier->score->weight.set_requires_grad(true);  // trained whole, as PEFT's modules_to_save
  } else {
    m.lora = load_adapter_with_head(*m.classifier, checkpoint);
  }
  return m;
}

std::vector<std::pair<std::string, Tensor>> ClassifierModel::trainable_parameters() const {
  return classifier->named_parameters();
}

int64_t ClassifierModel::trainable_count() const { return peft::trainable_parameter_count(*classifier); }

int64_t ClassifierModel::total_count() const { return classifier->parameter_count(); }

void ClassifierModel::save(const fs::path& dir, bool force) const {
  if (method == "full") {
    save_sequence_classifier(*classifier, dir, force, base);
    return;
  }
  peft::save_lora(lora, dir, {.base_model_name_or_path = base.string(), .force = force});
  add_head_to_adapter(*classifier, dir);
}

}  // namespace ld::tune
