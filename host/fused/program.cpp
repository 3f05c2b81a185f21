// The fused engine's program (program.h).
#include "fused/program.h"

namespace splitconv::fused {
namespace {

constexpr int64_t kAlign = 4;  // floats: every region starts on 16 bytes

int64_t aligned(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

}  // namespace

std::optional<FusedProgram> make_program(const Model& model, const StepPlan& plan,
                                         std::string* why) {
  auto refuse = [&](const std::string& reason) -> std::optional<FusedProgram> {
    if (why) *why = reason;
    return std::nullopt;
  };
  FusedProgram prog;
  prog.image_size = plan.input.size();
  prog.classes = plan.classes;
  prog.param_floats = model.param_floats;

  // Arena: each buffer's activation, then its gradient when one is needed.
  const size_t nbuf = plan.buffers.size();
  std::vector<int64_t> act(nbuf, -1), grad(nbuf, -1);
  for (size_t i = 0; i < nbuf; ++i) {
    const int64_t size = plan.buffers[i].shape.size();
    act[i] = prog.arena_floats;
    prog.arena_floats += aligned(size);
    if (plan.buffers[i].needs_grad) {
      grad[i] = prog.arena_floats;
      prog.arena_floats += aligned(size);
    }
  }
  std::vector<int64_t> argmax;
  for (const Shape& s : plan.argmax_shapes) {
    argmax.push_back(prog.arena_ints);
    prog.arena_ints += aligned(s.size());
  }

  // The phases index an image's buffers and a layer's weights with 32-bit integers.
  constexpr int64_t kMaxIndex = int64_t(1) << 30;
  for (const PlanBuffer& b : plan.buffers)
    if (b.shape.size() >= kMaxIndex)
      return refuse(b.name + ": " + std::to_string(b.shape.size()) +
                    " values an image, more than the fused engine indexes (2^30)");
  for (const ParamSlot& slot : model.slots)
    if (slot.size >= kMaxIndex)
      return refuse(slot.name + ": " + std::to_string(slot.size) +
                    " parameters, more than the fused engine indexes (2^30)");

  // Whether each buffer's writer applied a ReLU (its gradient is masked by x > 0 where it is
  // written, so a ReLU costs no phase of its own on the way back).
  std::vector<int> relu_out(nbuf, 0);
  std::vector<int> writer(nbuf, -1);  // index into prog.forward of the op writing the buffer

  FusedOp gather;
  gather.code = OpCode::Gather;
  gather.c = plan.input.c;
  gather.h = plan.input.h;
  gather.w = plan.input.w;
  gather.y = act[0];
  prog.forward.push_back(gather);
  writer[0] = 0;

  for (const PlanOp& pop : plan.forward) {
    const Layer& l = model.layers[size_t(pop.layer)];
    if (pop.kind == LayerKind::Flatten)  // the plan lists a flatten only with an activation
      return refuse(l.name() + ": a flatten with an activation");
    FusedOp op;
    op.layer = pop.layer;
    op.relu = pop.relu ? 1 : 0;
    op.c = l.in.c;
    op.h = l.in.h;
    op.w = l.in.w;
    op.m = l.out.c;
    op.oh = l.out.h;
    op.ow = l.out.w;
    op.x = act[size_t(pop.x)];
    op.y = act[size_t(pop.y)];
    switch (pop.kind) {
      case LayerKind::Conv:
        op.code = OpCode::ConvFwd;
        op.kh = l.spec.kh;
        op.kw = l.spec.kw;
        op.stride = l.stride;
        op.pad_top = l.pad_top;
        op.pad_left = l.pad_left;
        op.weight = model.slots[size_t(l.weight)].offset;
        op.bias = model.slots[size_t(l.bias)].offset;
        prog.macs += l.macs;
        break;
      case LayerKind::MaxPool:
        op.code = OpCode::PoolFwd;
        op.kh = l.spec.kh;
        op.kw = l.spec.kw;
        op.stride = l.stride;
        op.argmax = argmax[size_t(pop.argmax)];
        if (l.out.c != l.in.c) return refuse(l.name() + ": a pool that changes the channels");
        break;
      case LayerKind::Dense:
        op.code = OpCode::DenseFwd;
        op.c = int32_t(l.in.size());
        op.h = op.w = 1;
        op.oh = op.ow = 1;
        op.weight = model.slots[size_t(l.weight)].offset;
        op.bias = model.slots[size_t(l.bias)].offset;
        prog.macs += l.macs;
        break;
      case LayerKind::Flatten:
        break;
    }
    relu_out[size_t(pop.y)] = op.relu;
    writer[size_t(pop.y)] = int(prog.forward.size());
    prog.forward.push_back(op);
  }

  prog.logits = act[size_t(plan.logits)];
  FusedOp loss;
  loss.code = OpCode::Loss;
  loss.m = plan.classes;
  loss.x = prog.logits;
  loss.dy = grad[size_t(plan.logits)];
  prog.forward.push_back(loss);

  for (const PlanOp& pop : plan.backward) {
    if (pop.kind == LayerKind::Flatten) continue;  // a view: its gradient is its input's
    if (pop.kind == LayerKind::MaxPool && !pop.need_dx) continue;  // nothing to compute
    const int w = writer[size_t(pop.y)];
    FusedOp op = prog.forward[size_t(w)];
    op.code = pop.kind == LayerKind::Conv      ? OpCode::ConvBwd
              : pop.kind == LayerKind::MaxPool ? OpCode::PoolBwd
                                               : OpCode::DenseBwd;
    op.dy = grad[size_t(pop.y)];
    op.dx = pop.need_dx ? grad[size_t(pop.x)] : -1;
    op.mask_dx = pop.need_dx ? relu_out[size_t(pop.x)] : 0;
    if (op.dy < 0 || (pop.need_dx && op.dx < 0))
      return refuse(model.layers[size_t(pop.layer)].name() + ": a gradient buffer is missing");
    const Layer& l = model.layers[size_t(pop.layer)];
    if (pop.kind != LayerKind::MaxPool) prog.macs += pop.need_dx ? 2 * l.macs : l.macs;
    prog.backward.push_back(op);
  }
  return prog;
}

}  // namespace splitconv::fused
