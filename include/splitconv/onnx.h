// ONNX import and export (docs/design.md, ONNX import and export): a sequential ONNX graph
// becomes a spec and a checkpoint; a checkpoint becomes an ONNX model that ends in Softmax.
#pragma once
#include <string>
#include <vector>

#include "splitconv/import.h"
#include "splitconv/model.h"

namespace splitconv {

// The opset of the default domain that export writes, and the range import reads.
inline constexpr int kOnnxExportOpset = 13;
inline constexpr int kOnnxMinOpset = 7;
inline constexpr int kOnnxMaxOpset = 21;

// Whether this build reads and writes ONNX (the ONNX library was found when it was built).
bool onnx_available();

// Reads an ONNX model (origin "ONNX opset N, PRODUCER VERSION"; its parts are its nodes);
// throws InputError "PATH: node NAME (OP): fault" (or "PATH: fault") for a file that is not
// ONNX, is truncated or lies about its tensors, or holds a graph the spec cannot represent.
// Everything is checked before it is used.
ImportedModel import_onnx(const std::string& path);

// Writes `model` with `params` (its flat buffer) as an ONNX model of opset kOnnxExportOpset:
// input "input" [N, C, H, W] (pixels / 255), output "probabilities" [N, classes] from a
// final Softmax. The model is checked by the ONNX checker before it is written (atomically).
void export_onnx(const std::string& path, const Model& model, const std::vector<float>& params);

}  // namespace splitconv
