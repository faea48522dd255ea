#include "core/atomic_file.hpp"

#include <unistd.h>

#include <fstream>

#include "core/error.hpp"

namespace ld {

namespace fs = std::filesystem;

namespace {

// "out/" and "out" name the same folder; the temporary sibling needs its real name.
fs::path clean_folder_path(const fs::path& p) {
  fs::path clean = fs::absolute(p).lexically_normal();
  if (clean.filename().empty()) clean = clean.parent_path();
  return clean;
}

fs::path sibling(const fs::path& dir, const char* tag) {
  return dir.parent_path() / ("." + dir.filename().string() + "." + tag + "-" + std::to_string(::getpid()));
}

void rename_or_fail(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  LD_CHECK(!ec, to.string(), ": cannot move the new folder into place (", ec.message(), ")");
}

}  // namespace

void write_file_atomically(const fs::path& path, const std::string& bytes) {
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    LD_CHECK(out.good(), tmp.string(), ": cannot open for writing");
    out << bytes;
    out.close();
    if (!out.good()) {
      std::error_code ec;
      fs::remove(tmp, ec);
      LD_FAIL(tmp.string(), ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(tmp, ec);
    LD_FAIL(path.string(), ": cannot rename the temporary file into place (", why, ")");
  }
}

void check_output_folder(const fs::path& out_dir, bool force) {
  const fs::path out = clean_folder_path(out_dir);
  if (!fs::exists(out)) return;
  LD_CHECK(fs::is_directory(out), out.string(), ": exists and is not a folder; choose another output path");
  LD_CHECK(force || fs::is_empty(out), out.string(), ": output folder already exists (pass --force to replace it)");
}

void write_folder_atomically(const fs::path& out_dir, bool force, const std::function<void(const fs::path&)>& fill) {
  const fs::path out = clean_folder_path(out_dir);
  LD_CHECK(out != out.root_path(), out_dir.string(), ": not a usable output folder");
  check_output_folder(out, force);
  const fs::path tmp = sibling(out, "tmp");
  std::error_code ec;
  fs::create_directories(out.parent_path(), ec);
  fs::remove_all(tmp, ec);  // a leftover of a killed run with the same pid
  fs::create_directory(tmp, ec);
  LD_CHECK(!ec, tmp.string(), ": cannot create the temporary output folder (", ec.message(), ")");
  try {
    fill(tmp);
    check_output_folder(out, force);  // someone may have created it meanwhile
    if (!fs::exists(out)) return rename_or_fail(tmp, out);
    // Two renames (a folder cannot replace a non-empty one in one step); roll back if the second fails.
    const fs::path old = sibling(out, "old");
    fs::remove_all(old, ec);
    rename_or_fail(out, old);
    fs::rename(tmp, out, ec);
    if (ec) {
      fs::rename(old, out, ec);
      LD_FAIL(out.string(), ": cannot move the new folder into place; the old one is kept");
    }
    fs::remove_all(old, ec);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace ld
