#include "plot/metrics_log.hpp"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"

namespace ld::plot {

namespace {

using nlohmann::json;

// The number in obj[key]; nullopt when the key is present and null (NaN as JSON writers spell it).
std::optional<double> number_field(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  LD_CHECK(it != obj.end(), where, ": \"", obj["type"].get<std::string>(), "\" line has no \"", key, "\"");
  if (it->is_null()) return std::nullopt;
  LD_CHECK(it->is_number(), where, ": \"", key, "\" must be a number, got ", it->dump());
  return it->get<double>();
}

// Sort by step (stable) and keep the last line logged for each step.
template <typename Point>
void sort_keep_last(std::vector<Point>& points) {
  std::stable_sort(points.begin(), points.end(), [](const Point& a, const Point& b) { return a.step < b.step; });
  std::vector<Point> kept;
  for (const Point& p : points) {
    if (!kept.empty() && kept.back().step == p.step)
      kept.back() = p;
    else
      kept.push_back(p);
  }
  points = std::move(kept);
}

void add_line(const json& obj, const std::string& where, RunMetrics& out, int& null_losses) {
  LD_CHECK(obj.is_object(), where, ": expected a JSON object, got ", obj.dump());
  auto type = obj.find("type");
  LD_CHECK(type != obj.end() && type->is_string(), where, ": missing \"type\" (\"train\" or \"eval\")");
  if (*type == "train") {
    const auto step = number_field(obj, "step", where);
    LD_CHECK(step.has_value(), where, ": \"step\" is null");
    const auto loss = number_field(obj, "loss", where);
    std::optional<double> lr;
    if (obj.contains("lr")) lr = number_field(obj, "lr", where);
    if (!loss) {
      ++null_losses;
      return;
    }
    out.train.push_back({.step = *step, .loss = *loss, .lr = lr});
  } else if (*type == "eval") {
    const auto step = number_field(obj, "step", where);
    LD_CHECK(step.has_value(), where, ": \"step\" is null");
    const auto val_loss = number_field(obj, "val_loss", where);
    if (!val_loss) {
      ++null_losses;
      return;
    }
    out.eval.push_back({.step = *step, .val_loss = *val_loss});
  }
}

}  // namespace

RunMetrics parse_metrics(const std::string& text, const std::string& source) {
  RunMetrics out;
  int null_losses = 0;
  size_t start = 0;
  int line_no = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    const bool terminated = end != std::string::npos;
    if (!terminated) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = source + ":" + std::to_string(line_no);
    json obj = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (obj.is_discarded()) {
      if (!terminated) {  // the last line, cut short: the run was killed while writing it
        out.warnings.push_back(where + ": skipped an incomplete last line (run interrupted mid-write?)");
        break;
      }
      LD_FAIL(where, ": not valid JSON: ", line.size() > 80 ? line.substr(0, 80) + "..." : line);
    }
    add_line(obj, where, out, null_losses);
  }
  if (null_losses > 0)
    out.warnings.push_back(source + ": dropped " + std::to_string(null_losses) + " point(s) with a null (NaN) loss");
  sort_keep_last(out.train);
  sort_keep_last(out.eval);
  return out;
}

RunMetrics read_metrics(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  LD_CHECK(in.good(), path.string(), ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_metrics(ss.str(), path.string());
}

}  // namespace ld::plot
