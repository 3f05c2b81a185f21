// The step plan: what one training step of a model does, worked out once from the Model and
// executed by every engine (the CPU engine, the CUDA graph engine) and by `bench layers`.
// It names buffers and ops, never memory: each engine allocates what the plan lists and runs
// its op lists with one forward_layer / backward_layer of its own (docs/design.md, Engines).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "splitconv/model.h"

namespace splitconv {

// An activation buffer of max_batch images; the gradient buffer beside it has the same size.
struct PlanBuffer {
  std::string name;      // "input", "conv1", … (the layer that writes it)
  Shape shape;           // one image
  bool needs_grad = false;  // some backward op writes or reads its gradient
  int64_t floats(int batch) const { return int64_t(batch) * shape.size(); }
};

// One layer's work in the step. x and y index Plan::buffers; a flatten has x == y (a view:
// NCHW is already the flattened order).
struct PlanOp {
  int layer = 0;  // index into Model::layers
  LayerKind kind = LayerKind::Conv;
  bool relu = false;      // the layer's activation is ReLU (engines fuse it where they can)
  int x = 0, y = 0;       // input and output buffers
  bool need_dx = false;   // backward: the input gradient is used (an earlier layer has parameters)
  int argmax = -1;        // max-pool: its index into Plan::argmax_shapes
};

struct StepPlan {
  int max_batch = 0;
  int classes = 0;
  Shape input;
  std::vector<PlanBuffer> buffers;   // [0] is the input batch
  std::vector<Shape> argmax_shapes;  // one per max-pool: int32 arg-max per output, one image
  // Layers that do something, in order; a flatten without ReLU is left out (nothing to run).
  std::vector<PlanOp> forward;
  // The same ops in reverse order (the backward pass walks them).
  std::vector<PlanOp> backward;
  int logits = 0;  // buffer of the last layer's output, the loss's input

  // The op of a model layer in `forward`, or null when it runs nothing.
  const PlanOp* op_of(int layer) const;
};

// The largest batch a plan takes (docs/design.md, Size limits).
inline constexpr int kMaxBatch = 65'536;

// Checks what every engine needs (the last layer dense with softmax or no activation and
// `classes` outputs; softmax nowhere else; conv and dense layers with weight and bias slots)
// and builds the plan. Throws Error naming the layer otherwise, and InputError when max_batch
// is past kMaxBatch or a buffer of max_batch images is past kMaxTensor elements.
// input_grad: the input's gradient too, every layer's backward then computing its input
// gradient, as inside a larger network (`bench conv` times layers so); training leaves it off.
StepPlan make_plan(const Model& model, int max_batch, bool input_grad = false);

}  // namespace splitconv
