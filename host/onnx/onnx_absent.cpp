// ONNX import and export in a build without the ONNX library: each says so (exit 1).
#include "splitconv/error.h"
#include "splitconv/onnx.h"

namespace splitconv {
namespace {

[[noreturn]] void absent(const std::string& path) {
  throw Error(path +
              ": this build reads and writes no ONNX: it was built without the ONNX "
              "library (libonnx-dev; tools/setup.sh installs it, SPLITCONV_ONNX=ON requires it)");
}

}  // namespace

bool onnx_available() { return false; }

ImportedModel import_onnx(const std::string& path) { absent(path); }

void export_onnx(const std::string& path, const Model&, const std::vector<float>&) { absent(path); }

GraphAnalysis analyze_onnx(const std::string& path) { absent(path); }

}  // namespace splitconv
