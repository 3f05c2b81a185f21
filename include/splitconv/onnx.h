// ONNX import and export (docs/design.md, ONNX import and export): a sequential ONNX graph
// becomes a spec and a checkpoint; a checkpoint becomes an ONNX model that ends in Softmax.
#pragma once
#include <string>
#include <vector>

#include "splitconv/analysis.h"
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

// --- analysis of any CNN graph (docs/design.md, Real architectures) ---

// A node that holds parameters or does multiply-accumulates: Conv, Gemm, MatMul,
// BatchNormalization, or another node that reads a learnable tensor (PRelu's slope, an Add's
// bias).
struct GraphLayer {
  std::string name;              // the weight's name less ".weight", else the node's name
  std::string node, op;
  std::vector<int64_t> out;      // the output per image (dims after the batch)
  int64_t params = 0, macs = 0;  // MACs per image
  int conv = -1;                 // index into GraphAnalysis::convs
};

struct GraphAnalysis {
  std::string source, origin;    // origin: "ONNX opset 13, pytorch 1.13.0"
  int nodes = 0;
  bool has_weights = true;       // false: exported without parameters (graph inputs)
  int64_t in_c = 0, in_h = 0, in_w = 0;
  std::vector<GraphLayer> layers;
  std::vector<ConvGeometry> convs;
  int64_t total_params = 0, total_macs = 0;
  std::vector<std::pair<std::string, int>> op_counts;  // op, nodes, in order of first use
  // Empty when `import` takes the graph (a sequential one the engines train); else its
  // refusal, the reason the graph is analysed only.
  std::string not_trainable;
};

// Reads any ONNX CNN graph for analysis: shapes are inferred node by node from the image
// input (NCHW, fixed C, H, W) through Conv (groups, strides, dilations, pads, auto_pad),
// BatchNormalization, elementwise ops with broadcasting (Add, Mul, Relu, Clip, ...), MaxPool,
// AveragePool, global pools, ReduceMean, Pad, Concat, Flatten, Reshape, Squeeze, Unsqueeze,
// Transpose, Gemm and MatMul, and the shape arithmetic of a flatten. Parameters: every float
// tensor from an initializer or a weight input that a node reads, each once, except
// BatchNormalization's running mean and variance; MACs: those of Conv, Gemm and MatMul.
// Throws InputError "PATH: node NAME (OP): fault" for a file that does not parse, lies about
// a tensor, or holds an op or shape it cannot follow.
GraphAnalysis analyze_onnx(const std::string& path);

}  // namespace splitconv
