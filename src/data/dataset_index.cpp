// index.json of a prepared dataset: parse, check, write. See dataset_index.hpp.
#include "data/dataset_index.hpp"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/atomic_file.hpp"
#include "core/error.hpp"
#include "data/token_shard.hpp"

namespace ld::data {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const json& field(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  LD_CHECK(it != j.end(), where, ": missing \"", key, "\"");
  return *it;
}

int64_t int_field(const json& j, const char* key, const std::string& where) {
  const json& v = field(j, key, where);
  LD_CHECK(v.is_number_integer(), where, ": \"", key, "\" must be an integer, got ", v.dump());
  return v.get<int64_t>();
}

// A shard file must stay inside the dataset folder: no absolute paths, no "..".
void check_file_name(const std::string& file, const std::string& where) {
  LD_CHECK(!file.empty(), where, ": empty shard file name");
  const fs::path p(file);
  LD_CHECK(p.is_relative(), where, ": shard file '", file, "' must be relative to the dataset folder");
  for (const fs::path& part : p)
    LD_CHECK(part != "..", where, ": shard file '", file, "' must stay inside the dataset folder");
}

void check_index(const DatasetIndex& idx, const std::string& where) {
  LD_CHECK(idx.version == kDatasetIndexVersion, where, ": unsupported version ", idx.version,
           " (this build reads version ", kDatasetIndexVersion, ")");
  LD_CHECK(idx.vocab_size > 0, where, ": vocab_size must be positive, got ", idx.vocab_size);
  LD_CHECK(idx.eos_id >= 0 && idx.eos_id < idx.vocab_size, where, ": eos_id ", idx.eos_id,
           " is outside the vocabulary of ", idx.vocab_size);
  LD_CHECK(idx.token_width == 2 || idx.token_width == 4, where, ": token_width must be 2 or 4, got ", idx.token_width);
  LD_CHECK(idx.token_width >= token_width_for(idx.vocab_size), where, ": token_width ", idx.token_width,
           " cannot hold ids of a vocabulary of ", idx.vocab_size);
  for (const auto& [name, shards] : idx.splits) {
    LD_CHECK(!name.empty(), where, ": a split has an empty name");
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string at = where + " splits." + name + "[" + std::to_string(i) + "]";
      check_file_name(shards[i].file, at);
      LD_CHECK(shards[i].tokens >= 0 && shards[i].documents >= 0, at, ": tokens and documents must be >= 0, got ",
               shards[i].tokens, " and ", shards[i].documents);
    }
  }
}

DatasetIndex parse_index(const json& j, const std::string& where) {
  LD_CHECK(j.is_object(), where, ": expected a JSON object");
  DatasetIndex idx;
  idx.version = int(int_field(j, "version", where));
  LD_CHECK(idx.version == kDatasetIndexVersion, where, ": unsupported version ", idx.version,
           " (this build reads version ", kDatasetIndexVersion, ")");
  if (auto it = j.find("tokenizer"); it != j.end()) {
    LD_CHECK(it->is_string(), where, ": \"tokenizer\" must be a string");
    idx.tokenizer = it->get<std::string>();
  }
  idx.vocab_size = int_field(j, "vocab_size", where);
  const int64_t eos = int_field(j, "eos_id", where);
  LD_CHECK(eos >= 0 && eos <= INT32_MAX, where, ": eos_id must be a non-negative 32-bit id, got ", eos);
  idx.eos_id = int32_t(eos);
  idx.token_width = int(int_field(j, "token_width", where));
  const json& splits = field(j, "splits", where);
  LD_CHECK(splits.is_object(), where, ": \"splits\" must be an object of split name -> list of shards");
  for (const auto& [name, list] : splits.items()) {
    const std::string at = where + " splits." + name;
    LD_CHECK(list.is_array(), at, ": expected a list of shards");
    std::vector<ShardEntry>& shards = idx.splits[name];
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string at_i = at + "[" + std::to_string(i) + "]";
      const json& e = list[i];
      LD_CHECK(e.is_object(), at_i, ": expected {\"file\", \"tokens\", \"documents\"}");
      const json& file = field(e, "file", at_i);
      LD_CHECK(file.is_string(), at_i, ": \"file\" must be a string");
      shards.push_back({file.get<std::string>(), int_field(e, "tokens", at_i), int_field(e, "documents", at_i)});
    }
  }
  check_index(idx, where);
  return idx;
}

json to_json(const DatasetIndex& idx) {
  json splits = json::object();
  for (const auto& [name, shards] : idx.splits) {
    json list = json::array();
    for (const ShardEntry& s : shards)
      list.push_back({{"file", s.file}, {"tokens", s.tokens}, {"documents", s.documents}});
    splits[name] = std::move(list);
  }
  return {{"version", idx.version}, {"tokenizer", idx.tokenizer},     {"vocab_size", idx.vocab_size},
          {"eos_id", idx.eos_id},   {"token_width", idx.token_width}, {"splits", std::move(splits)}};
}

}  // namespace

DatasetIndex read_dataset_index(const fs::path& dir) {
  const fs::path path = dir / kDatasetIndexFile;
  const std::string where = "dataset index " + path.string();
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in.good(), where, ": cannot open (a prepared dataset folder has an index.json; see `liandan data prepare`)");
  std::stringstream text;
  text << in.rdbuf();
  const json j = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  LD_CHECK(!j.is_discarded(), where, ": not valid JSON");
  return parse_index(j, where);
}

void write_dataset_index(const fs::path& dir, const DatasetIndex& index) {
  const fs::path path = dir / kDatasetIndexFile;
  check_index(index, "dataset index " + path.string());
  write_file_atomically(path, to_json(index).dump(2) + "\n");
}

const std::vector<ShardEntry>& split_shards(const DatasetIndex& index, const std::string& split, const fs::path& dir) {
  auto it = index.splits.find(split);
  if (it != index.splits.end()) return it->second;
  std::string have;
  for (const auto& [name, shards] : index.splits) have += (have.empty() ? "" : ", ") + name;
  LD_FAIL("dataset index ", (dir / kDatasetIndexFile).string(), ": no split '", split,
          "' (has: ", have.empty() ? "none" : have, ")");
}

void check_shards_exist(const DatasetIndex& index, const std::string& split, const fs::path& dir) {
  for (const ShardEntry& s : split_shards(index, split, dir))
    LD_CHECK(fs::is_regular_file(dir / s.file), "dataset index ", (dir / kDatasetIndexFile).string(), ": split '",
             split, "' lists shard ", s.file, ", which is missing (", (dir / s.file).string(), ")");
}

}  // namespace ld::data
