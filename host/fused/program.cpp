// The fused engine's program (program.h).
#include "fused/program.h"

#include <algorithm>

namespace splitconv::fused {
namespace {

constexpr int64_t kAlign = 4;  // floats: every region starts on 16 bytes

int64_t aligned(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// A layer's geometry as an op (code and buffers filled in by the caller).
FusedOp geometry(const Model& model, const Layer& l) {
  FusedOp op;
  op.c = l.in.c;
  op.h = l.in.h;
  op.w = l.in.w;
  op.m = l.out.c;
  op.oh = l.out.h;
  op.ow = l.out.w;
  switch (l.kind()) {
    case LayerKind::Conv:
      op.kh = l.spec.kh;
      op.kw = l.spec.kw;
      op.stride = l.stride;
      op.pad_top = l.pad_top;
      op.pad_left = l.pad_left;
      op.weight = model.slots[size_t(l.weight)].offset;
      op.bias = model.slots[size_t(l.bias)].offset;
      break;
    case LayerKind::MaxPool:
      op.kh = l.spec.kh;
      op.kw = l.spec.kw;
      op.stride = l.stride;
      break;
    case LayerKind::Dense:
      op.c = int32_t(l.in.size());
      op.h = op.w = op.oh = op.ow = 1;
      op.weight = model.slots[size_t(l.weight)].offset;
      op.bias = model.slots[size_t(l.bias)].offset;
      break;
    case LayerKind::Flatten:
      break;
  }
  return op;
}

// A gradient buffer's life in the backward phases: written at `from` (−1: by the loss, before
// the first backward phase), last read at `to`.
struct Life {
  int buffer = 0;
  int from = 0, to = 0;
  int64_t size = 0;
  int64_t offset = -1;
};

// First-fit placement of the gradient buffers, in the order given: two share memory only when their lives do not
// overlap (a phase reads its dy while it writes its dx, so both are live in it).
int64_t place(std::vector<Life>& lives) {
  int64_t end = 0;
  std::vector<const Life*> placed;
  for (Life& l : lives) {
    int64_t at = 0;
    for (bool moved = true; moved;) {
      moved = false;
      for (const Life* q : placed) {
        const bool overlap_time = l.from <= q->to && q->from <= l.to;
        const bool overlap_space = at < q->offset + q->size && q->offset < at + l.size;
        if (overlap_time && overlap_space) {
          at = q->offset + q->size;
          moved = true;
        }
      }
    }
    l.offset = at;
    end = std::max(end, at + l.size);
    placed.push_back(&l);
  }
  return end;
}

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
  const size_t nbuf = plan.buffers.size();

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
  for (const PlanOp& pop : plan.forward)
    if (pop.kind == LayerKind::Flatten)  // the plan lists a flatten only with an activation
      return refuse(model.layers[size_t(pop.layer)].name() + ": a flatten with an activation");

  // A conv followed by a max-pool of its output runs as one phase, and its output is never
  // stored: the pool's backward masks through the pooled output instead (block_ops.h).
  std::vector<bool> fused_away(nbuf, false);
  std::vector<bool> merged(plan.forward.size(), false);  // a conv op merged into the next
  for (size_t i = 0; i + 1 < plan.forward.size(); ++i) {
    const PlanOp& conv = plan.forward[i];
    const PlanOp& pool = plan.forward[i + 1];
    if (conv.kind == LayerKind::Conv && pool.kind == LayerKind::MaxPool && pool.x == conv.y) {
      fused_away[size_t(conv.y)] = true;
      merged[i] = true;
    }
  }

  // Activations: one region each, for the whole step (the backward reads them).
  std::vector<int64_t> act(nbuf, -1);
  for (size_t i = 0; i < nbuf; ++i) {
    if (fused_away[i]) continue;
    act[i] = prog.arena_floats;
    prog.arena_floats += aligned(plan.buffers[i].shape.size());
  }
  std::vector<int64_t> argmax;
  for (const Shape& s : plan.argmax_shapes) {
    argmax.push_back(prog.arena_ints);
    prog.arena_ints += aligned(s.size());
  }

  // Whether each buffer's writer applied a ReLU: its gradient is masked where it is written
  // (by x > 0, or through the pooled output), so a ReLU costs no phase of its own.
  std::vector<int> relu_out(nbuf, 0);
  for (const PlanOp& pop : plan.forward) relu_out[size_t(pop.y)] = pop.relu ? 1 : 0;

  FusedOp gather;
  gather.code = OpCode::Gather;
  gather.c = plan.input.c;
  gather.h = plan.input.h;
  gather.w = plan.input.w;
  gather.y = act[0];
  prog.forward.push_back(gather);

  for (size_t i = 0; i < plan.forward.size(); ++i) {
    if (merged[i]) continue;  // emitted with the pool after it
    const PlanOp& pop = plan.forward[i];
    const Layer& l = model.layers[size_t(pop.layer)];
    FusedOp op = geometry(model, l);
    op.layer = pop.layer;
    op.relu = pop.relu ? 1 : 0;
    op.x = act[size_t(pop.x)];
    op.y = act[size_t(pop.y)];
    switch (pop.kind) {
      case LayerKind::Conv:
        op.code = OpCode::ConvFwd;
        prog.macs += l.macs;
        break;
      case LayerKind::MaxPool:
        op.code = OpCode::PoolFwd;
        op.argmax = argmax[size_t(pop.argmax)];
        if (l.out.c != l.in.c) return refuse(l.name() + ": a pool that changes the channels");
        if (i > 0 && merged[i - 1]) {  // the conv before it, in the same phase
          const PlanOp& cpop = plan.forward[i - 1];
          const Layer& cl = model.layers[size_t(cpop.layer)];
          FusedOp fused = geometry(model, cl);
          fused.code = OpCode::ConvPoolFwd;
          fused.layer = cpop.layer;
          fused.relu = cpop.relu ? 1 : 0;
          fused.x = act[size_t(cpop.x)];
          fused.y = op.y;
          fused.argmax = op.argmax;
          fused.pkh = op.kh;
          fused.pkw = op.kw;
          fused.pstride = op.stride;
          fused.pool_oh = op.oh;
          fused.pool_ow = op.ow;
          op = fused;
          prog.macs += cl.macs;
        }
        break;
      case LayerKind::Dense:
        op.code = OpCode::DenseFwd;
        prog.macs += l.macs;
        break;
      case LayerKind::Flatten:
        break;
    }
    prog.forward.push_back(op);
  }

  prog.logits = act[size_t(plan.logits)];
  FusedOp loss;
  loss.code = OpCode::Loss;
  loss.m = plan.classes;
  loss.x = prog.logits;
  prog.forward.push_back(loss);  // its dy is placed below

  // Backward ops, with gradient buffers named by index for now: op.dy / op.dx hold buffer
  // indices until the placement below turns them into offsets.
  std::vector<Life> lives(nbuf);
  for (size_t b = 0; b < nbuf; ++b) lives[b] = {int(b), 1 << 30, -1, aligned(plan.buffers[b].shape.size()), -1};
  lives[size_t(plan.logits)].from = -1;
  for (const PlanOp& pop : plan.backward) {
    if (pop.kind == LayerKind::Flatten) continue;  // a view: its gradient is its input's
    if (pop.kind == LayerKind::MaxPool && !pop.need_dx) continue;  // nothing to compute
    const Layer& l = model.layers[size_t(pop.layer)];
    FusedOp op = geometry(model, l);
    op.layer = pop.layer;
    op.code = pop.kind == LayerKind::Conv      ? OpCode::ConvBwd
              : pop.kind == LayerKind::MaxPool ? OpCode::PoolBwd
                                               : OpCode::DenseBwd;
    op.x = act[size_t(pop.x)];  // −1 for a pool's fused-away input: the pool does not read it
    op.y = act[size_t(pop.y)];
    if (pop.kind == LayerKind::MaxPool) op.argmax = argmax[size_t(pop.argmax)];
    if (pop.kind != LayerKind::MaxPool && op.x < 0)
      return refuse(l.name() + ": its input is not stored");
    const int phase = int(prog.backward.size());
    op.dy = pop.y;
    lives[size_t(pop.y)].to = std::max(lives[size_t(pop.y)].to, phase);
    if (pop.need_dx) {
      op.dx = pop.x;
      op.mask_dx = relu_out[size_t(pop.x)];
      lives[size_t(pop.x)].from = std::min(lives[size_t(pop.x)].from, phase);
    }
    if (pop.kind != LayerKind::MaxPool) prog.macs += pop.need_dx ? 2 * l.macs : l.macs;
    prog.backward.push_back(op);
  }
  std::vector<Life> used;
  for (const Life& l : lives)
    if (l.to >= l.from) used.push_back(l);
  // Largest first (the usual order for static memory plans): the big early-layer gradients
  // take the bottom and the small ones fill around them.
  std::sort(used.begin(), used.end(), [](const Life& a, const Life& b) {
    return a.size != b.size ? a.size > b.size : a.from < b.from;
  });
  const int64_t grads = place(used);
  std::vector<int64_t> grad(nbuf, -1);
  for (const Life& l : used) grad[size_t(l.buffer)] = prog.arena_floats + l.offset;
  prog.arena_floats += grads;

  prog.forward.back().dy = grad[size_t(plan.logits)];
  if (prog.forward.back().dy < 0) return refuse("the logits' gradient is never read");
  for (FusedOp& op : prog.backward) {
    op.dy = grad[size_t(op.dy)];
    if (op.dx >= 0) op.dx = grad[size_t(op.dx)];
    if (op.dy < 0) return refuse(model.layers[size_t(op.layer)].name() + ": no output gradient");
  }
  return prog;
}

}  // namespace splitconv::fused
