#include "train/metrics_log.hpp"

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.hpp"

namespace ld::train {

MetricsLog::MetricsLog(const std::filesystem::path& path) : path_(path) {
  file_ = std::fopen(path.c_str(), "ab");
  LD_CHECK(file_ != nullptr, path.string(), ": cannot open for appending (", std::strerror(errno), ")");
}

MetricsLog::~MetricsLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void MetricsLog::write(const nlohmann::json& line) {
  // nlohmann writes NaN and infinities as null.
  const std::string text = line.dump() + "\n";
  const bool ok = std::fwrite(text.data(), 1, text.size(), file_) == text.size() && std::fflush(file_) == 0;
  LD_CHECK(ok, path_.string(), ": cannot write (", std::strerror(errno), ")");
}

}  // namespace ld::train
