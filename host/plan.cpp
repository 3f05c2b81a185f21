// The step plan (splitconv/plan.h): buffers, input gradients and op lists of a model's step.
#include "splitconv/plan.h"

#include "splitconv/error.h"
#include "splitconv/format.h"

namespace splitconv {

const PlanOp* StepPlan::op_of(int layer) const {
  for (const PlanOp& op : forward)
    if (op.layer == layer) return &op;
  return nullptr;
}

StepPlan make_plan(const Model& model, int max_batch, bool input_grad) {
  if (max_batch < 1) throw Error("plan: max_batch must be at least 1");
  if (max_batch > kMaxBatch)
    throw InputError("batch " + std::to_string(max_batch) + " is over the limit of " +
                     thousands(kMaxBatch));
  if (model.layers.empty()) throw Error("plan: the model has no layers");
  const Layer& last = model.layers.back();
  if (last.kind() != LayerKind::Dense || last.spec.activation == Activation::Relu ||
      last.out.size() != model.classes) {
    throw Error("plan: the last layer must be dense with softmax or no activation");
  }
  StepPlan p;
  p.max_batch = max_batch;
  p.classes = model.classes;
  p.input = model.input;
  p.buffers.push_back({"input", model.input, false});
  int current = 0;  // the buffer holding the latest activation
  bool params_before = input_grad;  // whether a gradient is wanted before this layer
  for (size_t i = 0; i < model.layers.size(); ++i) {
    const Layer& l = model.layers[i];
    if (l.spec.activation == Activation::Softmax && i + 1 != model.layers.size())
      throw Error("plan: softmax is only supported on the last layer (" + l.name() + ")");
    const bool has_params = l.kind() == LayerKind::Conv || l.kind() == LayerKind::Dense;
    if (has_params && (l.weight < 0 || l.bias < 0))
      throw Error("plan: " + l.name() + " has no weight or bias slot");
    PlanOp op;
    op.layer = int(i);
    op.kind = l.kind();
    op.relu = l.spec.activation == Activation::Relu;
    op.need_dx = params_before;
    op.x = current;
    if (l.kind() == LayerKind::Flatten) {
      op.y = current;  // a view
    } else {
      p.buffers.push_back({l.name(), l.out, false});
      op.y = int(p.buffers.size()) - 1;
    }
    if (l.kind() == LayerKind::MaxPool) {
      op.argmax = int(p.argmax_shapes.size());
      p.argmax_shapes.push_back(l.out);
    }
    // Every layer's output gradient is read on the way back (the loss writes the last one);
    // its input gradient only when some earlier layer has parameters (or input_grad).
    p.buffers[size_t(op.y)].needs_grad = true;
    if (op.need_dx) p.buffers[size_t(op.x)].needs_grad = true;
    params_before = params_before || has_params;
    current = op.y;
    if (l.kind() != LayerKind::Flatten || op.relu) p.forward.push_back(op);
  }
  // One buffer holds max_batch images: within kMaxTensor (docs/design.md, Size limits).
  for (const PlanBuffer& b : p.buffers) {
    if (product_within(max_batch, b.shape.size(), kMaxTensor) >= 0) continue;
    const int64_t n = int64_t(max_batch) * b.shape.size();  // both within kMaxTensor
    throw InputError(model.spec.source + ": at batch " + std::to_string(max_batch) + ", " +
                     (b.name == "input" ? std::string("the input") : "the output of " + b.name) +
                     " (" + std::to_string(b.shape.h) + "x" + std::to_string(b.shape.w) + "x" +
                     std::to_string(b.shape.c) + " per image) is " + thousands(n) + " elements (" +
                     bytes_text(n * 4) + "), over the limit of " + thousands(kMaxTensor) +
                     " elements per tensor: use a smaller batch");
  }
  p.logits = current;
  p.backward.assign(p.forward.rbegin(), p.forward.rend());
  return p;
}

}  // namespace splitconv
