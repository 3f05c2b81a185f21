// The CPU engine: runs a step plan (splitconv/plan.h) with the CPU ops (convolutions and
// pooling: the fast ops of engine_ops.h). A batch is split into one contiguous slice per
// thread; each thread runs forward, loss and backward on its slice (the ops are
// single-threaded), writing parameter gradients into its own flat buffer. The buffers are
// summed in thread order, so a step is deterministic for a given thread count.
// Used by the CPU backend (cpu_backend.cpp) and by `bench layers` on the CPU.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cpu/aligned.h"
#include "cpu/workers.h"
#include "splitconv/backend.h"
#include "splitconv/plan.h"

namespace splitconv::cpu {

// What a CpuEngine allocates, in bytes (docs/design.md, Engines).
struct CpuMemory {
  int64_t parameters = 0;   // parameters, Adam's m and v, one gradient buffer per thread
  int64_t activations = 0;  // the plan's activation, gradient and arg-max buffers, the labels
  int64_t workspace = 0;    // one workspace per thread (engine_ops.h), for the largest slice
  int64_t total() const;    // saturates at INT64_MAX
};

class CpuEngine {
 public:
  // Plans and allocates everything for `model` at up to max_batch images a step (input_grad:
  // make_plan's, for `bench conv`).
  CpuEngine(const Model& model, int max_batch, int threads, bool input_grad = false);

  // What the constructor would allocate, computed from the plan without allocating.
  static CpuMemory memory_needed(const Model& model, int max_batch, int threads,
                                 bool input_grad = false);
  // What this engine holds now, counted from its buffers (equals memory_needed).
  CpuMemory memory() const;

  const Model& model() const { return model_; }
  const StepPlan& plan() const { return plan_; }
  int threads() const { return threads_; }

  // Runs f(lo, n, thread) on one contiguous slice of [0, count) per thread, and waits.
  template <class F>
  void slices(int count, F f) {
    for_slices(*workers_, count, f);
  }

  // One slice's part of a step (images [lo, lo+n) of the batch, on thread `thread`).
  // Input: images[j]/255 with j = order[lo + r] (order null: j = lo + r), labels likewise.
  void gather(const uint8_t* images, const uint8_t* labels, const int32_t* order, int lo, int n);
  void forward_layer(const PlanOp& op, int lo, int n, int thread);
  void backward_layer(const PlanOp& op, int lo, int n, int thread);  // into grads(thread)
  void forward(int lo, int n, int thread);
  void backward(int lo, int n, int thread);
  // Softmax + cross-entropy of the slice's logits against its gathered labels into partial
  // metrics of `thread`; with grad_scale > 0 also the logits' gradient (scaled by it).
  void loss(int lo, int n, int thread, float grad_scale);
  // Adds the per-thread metrics of the last section of `count` images, in thread order.
  void add_partials(int count, Metrics* into) const;
  // Sums the per-thread gradients of a step of `count` images into grads(0), in thread order.
  void sum_gradients(int count);
  // One Adam step of the parameters with grads(0).
  void adam(float lr_t, const Hyper& h);
  // sum_gradients and adam in one parallel section, each thread on its own range of the
  // parameters: the same bits as the two calls.
  void update(int count, float lr_t, const Hyper& h);

  // Images a thread takes through forward, loss and backward at a time in train_step (its
  // slice in pieces of this size, each piece's gradient added to the slice's): a piece's
  // activations and gradients stay within a core's cache.
  static constexpr int kMicroBatch = 16;
  // How many pieces the largest slice of a max_batch step on `threads` threads makes.
  static int micro_batches(int max_batch, int threads);

  // A whole training step on images[order[0..count)] (the CPU backend's train_step).
  void train_step(const uint8_t* images, const uint8_t* labels, const int32_t* order, int count,
                  float lr_t, const Hyper& h, Metrics* metrics);

  const float* logits(int lo) const;
  // Read-only views for tests: a plan buffer's activations of image lo, a max-pool's arg-max
  // (index into plan().argmax_shapes) and the gradient of `thread` (0: the sum after
  // sum_gradients).
  const float* activation(int buffer, int lo) const { return act(buffer, lo); }
  // Writable views for the benchmarks, which set a layer's input and output gradient
  // themselves: a plan buffer's activations and its gradient (needs_grad) from image lo.
  float* activation(int buffer, int lo) { return act(buffer, lo); }
  float* gradient(int buffer, int lo) { return grad(buffer, lo); }
  // A parameter slot's floats in a flat buffer laid out as params (gradients(t) included).
  const float* slot(const AlignedFloats& flat, int slot) const {
    return flat.data() + model_.slots[size_t(slot)].offset;
  }
  float* slot(AlignedFloats& flat, int slot) const {
    return flat.data() + model_.slots[size_t(slot)].offset;
  }
  const int32_t* argmax(int pool) const { return argmax_[size_t(pool)].data(); }
  const AlignedFloats& gradients(int thread = 0) const { return grads_[size_t(thread)]; }
  // For each parameter of the last step of `count` images, a bound on the magnitudes its
  // gradient's terms and their rounding carry: Σ x̄·ḡ, the step rerun with |W| and magnitudes
  // (cpu_engine.cpp). A gradient summed in another order differs from this one by a small
  // multiple of the float epsilon times it, however much the terms cancel (tests/grad_bound.h).
  // Into out (Model::param_floats floats; padding left 0). Call right after the step.
  void gradient_magnitude(int count, float* out);
  AlignedFloats params, m, v;

 private:
  float* act(int buffer, int lo) const;
  float* grad(int buffer, int lo) const;
  float* weight(const Layer& l, AlignedFloats& flat) const;
  float* bias(const Layer& l, AlignedFloats& flat) const;

  Model model_;
  StepPlan plan_;
  int threads_ = 1;
  std::vector<AlignedFloats> act_, grad_;      // per plan buffer (grad empty when not needed)
  std::vector<std::vector<int32_t>> argmax_;   // per max-pool
  std::vector<AlignedFloats> workspace_;       // per thread
  std::vector<AlignedFloats> grads_;           // per thread; [0] receives the sum
  std::vector<float*> grad_pointers_;          // grads_'s data, for update()
  std::vector<AlignedFloats> micro_grads_;     // per thread, where micro_batches() > 1
  std::vector<char> into_micro_;               // per thread: backward_layer writes micro_grads_
  std::vector<Metrics> partial_;               // per thread
  std::vector<uint8_t> labels_;                // the batch's labels
  std::unique_ptr<Workers> workers_;
};

}  // namespace splitconv::cpu
