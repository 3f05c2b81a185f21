#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli.h"
#include "splitconv/error.h"
#include "splitconv/files.h"

namespace splitconv::cli {

std::string hwc(const Shape& s) {
  return std::to_string(s.h) + "x" + std::to_string(s.w) + "x" + std::to_string(s.c);
}

void write_file_atomic(const std::string& path, const std::string& text) {
  splitconv::write_file_atomic(path, {{text.data(), text.size()}});
}

void write_json(const std::string& path, const nlohmann::json& j) {
  write_file_atomic(path, j.dump(2) + "\n");
}

bool progress_enabled(bool forced) { return forced || isatty(fileno(stderr)); }

}  // namespace splitconv::cli
