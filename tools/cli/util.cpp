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

std::string memory_text(const MemoryEstimate& m) {
  return bytes_text(m.total()) + " (parameters, gradients and Adam state " +
         bytes_text(m.parameters) + ", activations " + bytes_text(m.activations) + ", workspace " +
         bytes_text(m.workspace) + ")";
}

nlohmann::json memory_json(const MemoryEstimate& m) {
  return {{"parameters", m.parameters},
          {"activations", m.activations},
          {"workspace", m.workspace},
          {"total", m.total()}};
}

}  // namespace splitconv::cli
