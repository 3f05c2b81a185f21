// The model graph: layers with their shapes and parameter slots in one flat buffer.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "splitconv/spec.h"

namespace splitconv {

// Shape of one image's activation, stored NCHW; shown to people as H×W×C.
struct Shape {
  int h = 0, w = 0, c = 0;
  int64_t size() const { return int64_t(h) * w * c; }
  bool operator==(const Shape&) const = default;
};

// A named tensor inside the flat parameter buffer (PyTorch layout: conv OIHW, dense [out,in]).
struct ParamSlot {
  std::string name;            // "conv1.weight", "conv1.bias"
  std::vector<int64_t> shape;
  int64_t offset = 0;          // in floats; every offset is a multiple of kParamAlign
  int64_t size = 0;            // product of shape
};

inline constexpr int64_t kParamAlign = 64;  // 256-byte aligned tensors for the GPU libraries

// Size limits (docs/design.md, Size limits). Every size is computed in 64-bit arithmetic and
// checked against these before it is stored, so no count can overflow; a size past them is
// an InputError naming the layer and the shapes.
// Each of H, W, C of the input, filters, units, kernel and pool sides, strides:
inline constexpr int64_t kMaxDim = 1'000'000;
// Elements of one tensor: one image's activation (the flatten's length included), one
// parameter tensor, and one buffer of a step (batch × one image's activation):
inline constexpr int64_t kMaxTensor = 2'147'483'647;  // 2^31 − 1

// a·b for a, b ≥ 0, or −1 when the product is past `limit` (or past int64).
int64_t product_within(int64_t a, int64_t b, int64_t limit);

struct Layer {
  LayerSpec spec;
  Shape in, out;
  int pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;  // conv "same" padding
  int stride = 1;
  int weight = -1, bias = -1;  // index into Model::slots, -1 when the layer has none
  int64_t params = 0;          // weights + biases
  int64_t macs = 0;            // multiply-accumulates per image (docs/design.md)
  const std::string& name() const { return spec.name; }
  LayerKind kind() const { return spec.kind; }
};

struct Model {
  Spec spec;
  Shape input;
  std::vector<Layer> layers;
  std::vector<ParamSlot> slots;
  int64_t param_floats = 0;    // length of the flat buffer (with alignment padding)
  int64_t total_params = 0;
  int64_t total_macs = 0;
  int classes = 0;             // units of the last dense layer
  int64_t max_activation() const;  // largest per-image activation, in floats
};

// Shape inference; throws InputError naming the layer and the shapes when one does not fit
// or a size is past the limits above.
Model build_model(const Spec& spec);

// Output size of one spatial dimension (docs/design.md, Numeric conventions): valid
// ⌊(H−k)/s⌋+1, same ⌈H/s⌉.
int conv_out_size(int in, int k, int stride, Padding pad);

// Glorot-uniform kernels (fans count kh·kw), zero biases; one seed fixes every value.
std::vector<float> init_parameters(const Model& model, uint64_t seed);

}  // namespace splitconv
