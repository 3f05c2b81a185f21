// ONNX import and export (docs/design.md, ONNX import and export): a sequential ONNX graph
// becomes a spec and a checkpoint; a checkpoint becomes an ONNX model that ends in Softmax.
#pragma once
#include <string>
#include <vector>

#include "splitconv/model.h"
#include "splitconv/spec.h"

namespace splitconv {

// The opset of the default domain that export writes, and the range import reads.
inline constexpr int kOnnxExportOpset = 13;
inline constexpr int kOnnxMinOpset = 7;
inline constexpr int kOnnxMaxOpset = 21;

// Whether this build reads and writes ONNX (the ONNX library was found when it was built).
bool onnx_available();

struct OnnxImport {
  Spec spec;                  // names from the graph's nodes when all are valid spec names
  Model model;                // build_model(spec)
  bool has_weights = false;   // false for a graph exported without its parameters
  std::vector<float> params;  // in `model`'s slot layout, when has_weights
  int opset = 0;              // of the default domain
  std::string producer;       // "pytorch 1.13.1", or "" when the file does not say
  int nodes = 0;              // nodes in the graph
  // One entry per layer: the layer's name and the nodes it came from.
  struct LayerSource {
    std::string layer;
    std::vector<std::string> nodes;
  };
  std::vector<LayerSource> sources;
  std::vector<std::string> notes;  // what the mapping did beyond one node per layer
};

// Reads an ONNX model; throws InputError "PATH: node NAME (OP): fault" (or "PATH: fault")
// for a file that is not ONNX, is truncated or lies about its tensors, or holds a graph the
// spec cannot represent. Everything is checked before it is used.
OnnxImport import_onnx(const std::string& path);

// Writes `model` with `params` (its flat buffer) as an ONNX model of opset kOnnxExportOpset:
// input "input" [N, C, H, W] (pixels / 255), output "probabilities" [N, classes] from a
// final Softmax. The model is checked by the ONNX checker before it is written (atomically).
void export_onnx(const std::string& path, const Model& model, const std::vector<float>& params);

}  // namespace splitconv
