// The CUDA graph engine: runs a step plan (splitconv/plan.h) on the device state with cuDNN
// convolutions (or the project's own n×1 / 1×n kernels, conv.h), cuBLAS dense layers and own
// kernels for the rest (ops.h), on the state's stream. A full-batch step is captured once as
// a CUDA graph and replayed; the graph belongs to this engine and to the state generation it
// was captured at, so a new plan (a new engine) or a replaced buffer (a new generation) can
// never replay a stale one.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "conv.h"
#include "device_state.h"
#include "resources.h"
#include "splitconv/plan.h"

namespace splitconv::gpu {

class GraphEngine {
 public:
  // Allocates the plan's buffers and plans every convolution (cuDNN algorithms are found here).
  // graphs false: every step runs eagerly (for tests that compare the two).
  GraphEngine(DeviceState& state, const StepPlan& plan, bool graphs);
  GraphEngine(const GraphEngine&) = delete;
  GraphEngine& operator=(const GraphEngine&) = delete;

  const StepPlan& plan() const { return plan_; }
  std::vector<std::string> choices() const;  // per conv layer, e.g. "conv3: cudnn fwd algo 1, …"

  // One training step of `count` images from order[begin]: replayed from the graph at the full
  // batch, eager otherwise. The state has checked the arguments (DeviceState::check_step).
  void train_step(int64_t begin, int count, float lr_t, const Hyper& h);
  // Loss and accuracy over the first `total` images of a split, into the kEval accumulators.
  void evaluate(const StoredSplit& data, int64_t total);
  // Class probabilities of images given here (not uploaded).
  void predict(const ImageSet& images, std::span<float> probabilities);

  // The pieces of a step, enqueued on the state's stream; `bench layers` times them one by one.
  void gather(int n);  // n training images from order[step_params.begin]
  void forward_layer(const PlanOp& op, int n);
  void backward_layer(const PlanOp& op, int n);
  void loss(int n);  // the training loss and the logits' gradient
  void adam();
  void enqueue_step(int n);  // all of the above, in order

  // Whether full-batch steps now replay a captured graph, and why not if they don't.
  bool graph_ready() const { return bool(exec_) && graph_generation_ == state_.generation(); }
  const std::string& graph_note() const { return graph_note_; }

 private:
  void forward(int n);
  void backward(int n);
  void capture_step();  // records enqueue_step(max_batch) into exec_
  void release_graph() noexcept;

  DeviceState& state_;
  StepPlan plan_;
  bool graphs_;
  const Model& model_;  // the state's
  std::vector<DeviceBuffer<float>> act_, grad_;  // per plan buffer
  std::vector<DeviceBuffer<int32_t>> argmax_;    // per max-pool
  std::vector<std::unique_ptr<ConvImpl>> conv_;  // per model layer; null when not a conv
  ConvContext conv_ctx_;
  DeviceBuffer<uint8_t> conv_workspace_;
  std::vector<std::string> nvtx_fwd_, nvtx_bwd_;  // per model layer: "conv3.fwd", "conv3.bwd"

  Graph graph_;
  GraphExec exec_;
  uint64_t graph_generation_ = 0;
  bool warmed_up_ = false;  // one eager full step ran: libraries have done their lazy set-up
  bool graph_failed_ = false;
  std::string graph_note_;
};

}  // namespace splitconv::gpu
