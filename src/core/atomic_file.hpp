#pragma once
// Outputs appear whole or not at all: a file is written under a temporary name in the same folder
// and renamed into place; a folder is filled as a temporary sibling and then takes its place. On an
// error the temporary is removed and whatever was there before is left as it was.
#include <filesystem>
#include <functional>
#include <string>

namespace ld {

void write_file_atomically(const std::filesystem::path& path, const std::string& bytes);

// An existing non-empty `out_dir` is an error unless `force` (then replaced only once the new folder
// is complete).
void write_folder_atomically(const std::filesystem::path& out_dir, bool force,
                             const std::function<void(const std::filesystem::path&)>& fill);

// The check write_folder_atomically makes first, for callers that want to fail before heavy work.
void check_output_folder(const std::filesystem::path& out_dir, bool force);

}  // namespace ld
