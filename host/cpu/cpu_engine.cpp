// The CPU engine (cpu_engine.h): the step plan run with the CPU ops.
#include "cpu/cpu_engine.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "cpu/cpu_ops.h"
#include "cpu/engine_ops.h"
#include "splitconv/error.h"
#include "splitconv/tensor.h"

namespace splitconv::cpu {

namespace {

int64_t sat_add(int64_t a, int64_t b) {
  int64_t s = 0;
  return __builtin_add_overflow(a, b, &s) ? INT64_MAX : s;
}
int64_t sat_mul(int64_t a, int64_t b) {
  int64_t p = 0;
  return __builtin_mul_overflow(a, b, &p) ? INT64_MAX : p;
}

// Floats of a thread's workspace: the largest any conv of the plan needs for the largest
// slice (engine_ops.h), and at least what the reference ops need for one image
// (gradient_magnitude runs those).
int64_t workspace_floats(const Model& model, const StepPlan& plan, int threads) {
  const int slice = (plan.max_batch + threads - 1) / threads;
  int64_t workspace = 0;
  for (const PlanOp& op : plan.forward) {
    const Layer& l = model.layers[size_t(op.layer)];
    if (op.kind == LayerKind::Conv)
      workspace = std::max({workspace, conv_workspace(conv_geom(l, 1)),
                            conv_fast_workspace(conv_geom(l, slice))});
    if (op.kind == LayerKind::Dense)
      workspace = std::max(workspace, dense_fast_workspace(dense_geom(l, slice)));
  }
  return workspace;
}

}  // namespace

int CpuEngine::micro_batches(int max_batch, int threads) {
  const int slice = (max_batch + std::max(threads, 1) - 1) / std::max(threads, 1);
  return (slice + kMicroBatch - 1) / kMicroBatch;
}

int64_t CpuMemory::total() const { return sat_add(sat_add(parameters, activations), workspace); }

CpuMemory CpuEngine::memory_needed(const Model& model, int max_batch, int threads,
                                   bool input_grad) {
  const StepPlan plan = make_plan(model, max_batch, input_grad);
  threads = std::max(threads, 1);
  const int64_t batch = plan.max_batch;
  CpuMemory mem;
  // Parameters, m, v; a gradient per thread, two where a slice runs in several pieces.
  const int64_t buffers =
      3 + int64_t(threads) * (micro_batches(plan.max_batch, threads) > 1 ? 2 : 1);
  mem.parameters = sat_mul(sat_mul(model.param_floats, buffers), sizeof(float));
  for (const PlanBuffer& b : plan.buffers)
    mem.activations = sat_add(mem.activations, b.floats(plan.max_batch) * int64_t(sizeof(float)) *
                                                   (b.needs_grad ? 2 : 1));
  for (const Shape& s : plan.argmax_shapes)
    mem.activations = sat_add(mem.activations, batch * s.size() * int64_t(sizeof(int32_t)));
  mem.activations = sat_add(mem.activations, batch);  // the labels
  mem.workspace =
      sat_mul(sat_mul(workspace_floats(model, plan, threads), threads), sizeof(float));
  return mem;
}

CpuMemory CpuEngine::memory() const {
  CpuMemory mem;
  auto floats = [](const AlignedFloats& f) { return int64_t(f.size() * sizeof(float)); };
  mem.parameters = floats(params) + floats(m) + floats(v);
  for (const auto& g : grads_) mem.parameters += floats(g);
  for (const auto& g : micro_grads_) mem.parameters += floats(g);
  for (size_t i = 0; i < act_.size(); ++i) mem.activations += floats(act_[i]) + floats(grad_[i]);
  for (const auto& a : argmax_) mem.activations += int64_t(a.size() * sizeof(int32_t));
  mem.activations += int64_t(labels_.size());
  for (const auto& w : workspace_) mem.workspace += floats(w);
  return mem;
}

CpuEngine::CpuEngine(const Model& model, int max_batch, int threads, bool input_grad)
    : model_(model),
      plan_(make_plan(model, max_batch, input_grad)),
      threads_(std::max(threads, 1)) {
  const int batch = plan_.max_batch;
  for (const PlanBuffer& b : plan_.buffers) {
    act_.emplace_back(size_t(b.floats(batch)));
    grad_.emplace_back(b.needs_grad ? size_t(b.floats(batch)) : 0);
  }
  for (const Shape& s : plan_.argmax_shapes) argmax_.emplace_back(size_t(batch) * size_t(s.size()));
  workspace_.assign(size_t(threads_),
                    AlignedFloats(size_t(workspace_floats(model_, plan_, threads_))));
  const size_t floats = size_t(model.param_floats);
  params.assign(floats, 0.0f);
  m.assign(floats, 0.0f);
  v.assign(floats, 0.0f);
  grads_.assign(size_t(threads_), AlignedFloats(floats, 0.0f));
  if (micro_batches(batch, threads_) > 1)
    micro_grads_.assign(size_t(threads_), AlignedFloats(floats, 0.0f));
  grad_pointers_.assign(size_t(threads_), nullptr);
  partial_.assign(size_t(threads_), {});
  into_micro_.assign(size_t(threads_), 0);
  labels_.assign(size_t(batch), 0);
  // Eigen's GEMM keeps the CPU's cache sizes in a static set up on first use: set it up here,
  // before threads share it.
  Eigen::initParallel();
  workers_ = std::make_unique<Workers>(threads_);
}

float* CpuEngine::act(int buffer, int lo) const {
  return const_cast<float*>(act_[size_t(buffer)].data()) +
         int64_t(lo) * plan_.buffers[size_t(buffer)].shape.size();
}
float* CpuEngine::grad(int buffer, int lo) const {
  return const_cast<float*>(grad_[size_t(buffer)].data()) +
         int64_t(lo) * plan_.buffers[size_t(buffer)].shape.size();
}
float* CpuEngine::weight(const Layer& l, AlignedFloats& flat) const {
  return flat.data() + model_.slots[size_t(l.weight)].offset;
}
float* CpuEngine::bias(const Layer& l, AlignedFloats& flat) const {
  return flat.data() + model_.slots[size_t(l.bias)].offset;
}
const float* CpuEngine::logits(int lo) const { return act(plan_.logits, lo); }

void CpuEngine::gather(const uint8_t* images, const uint8_t* labels, const int32_t* order, int lo,
                       int n) {
  gather_batch(images, labels, plan_.input.size(), order, lo, n, act(0, lo),
               labels ? labels_.data() + lo : nullptr);
}

void CpuEngine::forward_layer(const PlanOp& op, int lo, int n, int thread) {
  const Layer& l = model_.layers[size_t(op.layer)];
  const float* x = act(op.x, lo);
  float* y = act(op.y, lo);
  switch (op.kind) {
    case LayerKind::Conv:
      conv_forward_fast(conv_geom(l, n), x, weight(l, params), bias(l, params), op.relu, y,
                        workspace_[size_t(thread)].data());
      return;  // ReLU included
    case LayerKind::MaxPool:
      maxpool_forward_fast(pool_geom(l, n), x, y,
                           argmax_[size_t(op.argmax)].data() + int64_t(lo) * l.out.size());
      break;
    case LayerKind::Flatten:  // a view: y is x
      break;
    case LayerKind::Dense:
      dense_forward_fast(dense_geom(l, n), x, weight(l, params), bias(l, params), op.relu, y,
                         workspace_[size_t(thread)].data());
      return;  // ReLU included
  }
  if (op.relu) relu_forward(int64_t(n) * l.out.size(), y);
}

void CpuEngine::backward_layer(const PlanOp& op, int lo, int n, int thread) {
  const Layer& l = model_.layers[size_t(op.layer)];
  float* ws = workspace_[size_t(thread)].data();
  AlignedFloats& g = into_micro_[size_t(thread)] ? micro_grads_[size_t(thread)]
                                                 : grads_[size_t(thread)];
  const float* x = act(op.x, lo);
  const float* y = act(op.y, lo);
  float* dy = grad(op.y, lo);
  float* dx = op.need_dx ? grad(op.x, lo) : nullptr;
  if (op.kind == LayerKind::Conv) {  // ReLU's backward included
    conv_backward_fast(conv_geom(l, n), x, op.relu ? y : nullptr, dy, weight(l, params),
                       weight(l, g), bias(l, g), dx, ws);
    return;
  }
  if (op.relu) relu_backward(int64_t(n) * l.out.size(), y, dy);
  switch (op.kind) {
    case LayerKind::Conv:  // above
      break;
    case LayerKind::MaxPool:
      if (dx)
        maxpool_backward(pool_geom(l, n), dy,
                         argmax_[size_t(op.argmax)].data() + int64_t(lo) * l.out.size(), dx);
      break;
    case LayerKind::Flatten:  // a view: dx is dy
      break;
    case LayerKind::Dense:
      dense_backward_fast(dense_geom(l, n), x, weight(l, params), dy, dx, weight(l, g), bias(l, g),
                          ws);
      break;
  }
}

void CpuEngine::forward(int lo, int n, int thread) {
  for (const PlanOp& op : plan_.forward) forward_layer(op, lo, n, thread);
}

void CpuEngine::backward(int lo, int n, int thread) {
  for (const PlanOp& op : plan_.backward) backward_layer(op, lo, n, thread);
}

void CpuEngine::loss(int lo, int n, int thread, float grad_scale) {
  Metrics& part = partial_[size_t(thread)];
  part = {0.0, 0, n};
  const int k = plan_.classes;
  softmax_xent(n, k, logits(lo), labels_.data() + lo, grad_scale > 0 ? grad(plan_.logits, lo) : nullptr,
               grad_scale, &part.loss_sum, &part.correct);
}

void CpuEngine::add_partials(int count, Metrics* into) const {
  for (int p = 0; p < std::min(threads_, count); ++p) {
    into->loss_sum += partial_[size_t(p)].loss_sum;
    into->correct += partial_[size_t(p)].correct;
    into->count += partial_[size_t(p)].count;
  }
}

void CpuEngine::sum_gradients(int count) {
  float* sum = grads_[0].data();
  for (int p = 1; p < std::min(threads_, count); ++p) {
    const float* part = grads_[size_t(p)].data();
    for (size_t i = 0; i < grads_[size_t(p)].size(); ++i) sum[i] += part[i];
  }
}

void CpuEngine::gradient_magnitude(int count, float* out) {
  // A running error bound: the step again with |W|, |b| and magnitudes in place of values —
  // x̄ = |W|·x̄ + |b| forward, ḡ = |W|ᵀ·ḡ backward, starting from the largest possible logit
  // gradient (1/count) — keeping the ReLU masks and pool choices of the step that ran. Every
  // activation and gradient of the step is then at most its magnitude, and so is its rounding
  // error in units of the float epsilon (times the length of the sums); the parameter gradient
  // built from them is bounded by Σ x̄·ḡ over its terms.
  std::fill(out, out + model_.param_floats, 0.0f);
  AlignedFloats abs_params(params.size());
  for (size_t k = 0; k < params.size(); ++k) abs_params[k] = std::abs(params[k]);
  std::vector<AlignedFloats> xbar, gbar;
  for (const PlanBuffer& b : plan_.buffers) {
    xbar.emplace_back(size_t(b.shape.size()));
    gbar.emplace_back(size_t(b.shape.size()));
  }
  AlignedFloats dw, db, ws(workspace_[0].size());
  auto mask = [&](int buffer, int image, AlignedFloats& v) {  // v *= (the step's value > 0)
    const float* y = act(buffer, image);
    for (size_t k = 0; k < v.size(); ++k) v[k] = y[k] > 0.0f ? v[k] : 0.0f;
  };
  for (int i = 0; i < count; ++i) {
    const float* x0 = act(0, i);
    std::copy(x0, x0 + xbar[0].size(), xbar[0].begin());  // pixels / 255 ≥ 0
    for (const PlanOp& op : plan_.forward) {
      const Layer& l = model_.layers[size_t(op.layer)];
      AlignedFloats& xb = xbar[size_t(op.x)];
      AlignedFloats& yb = xbar[size_t(op.y)];
      switch (op.kind) {
        case LayerKind::Conv:
          conv_forward(conv_geom(l, 1), xb.data(), weight(l, abs_params), bias(l, abs_params),
                       yb.data(), ws.data());
          break;
        case LayerKind::MaxPool: {
          const int32_t* arg = argmax_[size_t(op.argmax)].data() + int64_t(i) * l.out.size();
          for (int64_t o = 0; o < l.out.size(); ++o) {
            const int64_t plane = o / (int64_t(l.out.h) * l.out.w);
            yb[size_t(o)] = xb[size_t(plane * l.in.h * l.in.w + arg[o])];
          }
          break;
        }
        case LayerKind::Flatten:
          break;
        case LayerKind::Dense:
          dense_forward(dense_geom(l, 1), xb.data(), weight(l, abs_params), bias(l, abs_params),
                        false, yb.data());
          break;
      }
      if (op.relu) mask(op.y, i, yb);
    }
    std::fill(gbar[size_t(plan_.logits)].begin(), gbar[size_t(plan_.logits)].end(),
              1.0f / float(count));
    for (const PlanOp& op : plan_.backward) {
      const Layer& l = model_.layers[size_t(op.layer)];
      AlignedFloats& gy = gbar[size_t(op.y)];
      AlignedFloats& gx = gbar[size_t(op.x)];
      if (op.relu) mask(op.y, i, gy);
      switch (op.kind) {
        case LayerKind::Conv:
          dw.resize(size_t(model_.slots[size_t(l.weight)].size));
          db.resize(size_t(l.out.c));
          conv_backward_filter(conv_geom(l, 1), xbar[size_t(op.x)].data(), gy.data(), dw.data(),
                               db.data(), ws.data());
          if (op.need_dx) conv_backward_data(conv_geom(l, 1), gy.data(), weight(l, abs_params),
                                             gx.data(), ws.data());
          break;
        case LayerKind::MaxPool:
          if (op.need_dx)
            maxpool_backward(pool_geom(l, 1), gy.data(),
                             argmax_[size_t(op.argmax)].data() + int64_t(i) * l.out.size(),
                             gx.data());
          break;
        case LayerKind::Flatten:
          break;
        case LayerKind::Dense:
          dw.resize(size_t(model_.slots[size_t(l.weight)].size));
          db.resize(size_t(l.out.c));
          dense_backward(dense_geom(l, 1), xbar[size_t(op.x)].data(), weight(l, abs_params),
                         gy.data(), op.need_dx ? gx.data() : nullptr, dw.data(), db.data());
          break;
      }
      if (op.kind == LayerKind::Conv || op.kind == LayerKind::Dense) {
        float* w_out = out + model_.slots[size_t(l.weight)].offset;
        float* b_out = out + model_.slots[size_t(l.bias)].offset;
        for (size_t k = 0; k < dw.size(); ++k) w_out[k] += dw[k];
        for (size_t k = 0; k < db.size(); ++k) b_out[k] += db[k];
      }
    }
  }
}

void CpuEngine::adam(float lr_t, const Hyper& h) {
  StepParams sp;
  sp.lr_t = lr_t;
  sp.beta1 = h.beta1;
  sp.beta2 = h.beta2;
  sp.eps = h.eps;
  cpu::adam(int64_t(params.size()), params.data(), grads_[0].data(), m.data(), v.data(), &sp);
}

void CpuEngine::update(int count, float lr_t, const Hyper& h) {
  StepParams sp;
  sp.lr_t = lr_t;
  sp.beta1 = h.beta1;
  sp.beta2 = h.beta2;
  sp.eps = h.eps;
  const int parts = std::min(threads_, count);
  std::vector<float*>& g = grad_pointers_;
  for (int t = 0; t < threads_; ++t) g[size_t(t)] = grads_[size_t(t)].data();
  // Ranges of whole 64-byte lines, so that no two threads write the same cache line.
  const int64_t lines = (int64_t(params.size()) + 15) / 16;
  slices(threads_, [&](int lo, int n, int) {
    const int64_t begin = lines * lo / threads_ * 16;
    const int64_t end = std::min<int64_t>(lines * (lo + n) / threads_ * 16, int64_t(params.size()));
    sum_and_adam(begin, end, g.data(), parts, params.data(), m.data(), v.data(), &sp);
  });
}

void CpuEngine::train_step(const uint8_t* images, const uint8_t* labels, const int32_t* order,
                           int count, float lr_t, const Hyper& h, Metrics* metrics) {
  if (count < 1 || count > plan_.max_batch)
    throw Error("cpu engine: a step of " + std::to_string(count) + " images, planned for 1 to " +
                std::to_string(plan_.max_batch));
  const float scale = 1.0f / float(count);  // mean cross-entropy over the batch
  slices(count, [&](int lo, int n, int thread) {
    // kMicroBatch images at a time through forward, loss and backward, so that their
    // activations are still in the core's cache when the backward reads them. The first
    // one's gradient goes to grads(thread), each later one's is added to it.
    Metrics part{0.0, 0, 0};
    for (int at = lo; at < lo + n; at += kMicroBatch) {
      const int k = std::min(kMicroBatch, lo + n - at);
      gather(images, labels, order, at, k);
      forward(at, k, thread);
      loss(at, k, thread, scale);
      part.loss_sum += partial_[size_t(thread)].loss_sum;
      part.correct += partial_[size_t(thread)].correct;
      part.count += k;
      into_micro_[size_t(thread)] = at > lo;
      backward(at, k, thread);
      if (at > lo) {
        float* sum = grads_[size_t(thread)].data();
        const float* add = micro_grads_[size_t(thread)].data();
        for (size_t i = 0; i < params.size(); ++i) sum[i] += add[i];
      }
    }
    into_micro_[size_t(thread)] = false;
    partial_[size_t(thread)] = part;
  });
  if (metrics) add_partials(count, metrics);
  update(count, lr_t, h);
}

}  // namespace splitconv::cpu
