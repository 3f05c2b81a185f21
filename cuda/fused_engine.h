// The fused GPU engine: a training step in two kernels. The first runs one image per thread
// block (or per thread-block cluster on Hopper and later) — gather, every layer's forward, the loss and every layer's backward, as the phases of
// a program (host/fused/program.h) with a barrier between phases — and writes the image's
// parameter gradients into its own slot; the second sums the slots over the images in a fixed
// order and takes the Adam step (and sums the step's metrics). Activations live in the block's
// shared memory when the image's arena fits there, else in global memory (L2-resident at
// these sizes). The op code is the CPU emulator's (host/fused/emulate.h): the same phases,
// the same sums in the same order. A full-batch step is captured as a CUDA graph of the two
// kernels and replayed, like the graph engine's, keyed by the state's generation. Runs of
// full steps go further where the device allows (train_steps): one persistent cooperative
// launch runs them all, a grid-wide barrier between a step's images and its update.
#pragma once
#include <span>
#include <string>
#include <vector>

#include "device_state.h"
#include "fused/program.h"
#include "resources.h"
#include "splitconv/plan.h"

namespace splitconv::gpu {

namespace detail {
struct ImageArgs;  // fused_engine.cu: what the image kernels read
}

class FusedEngine {
 public:
  static constexpr int kThreads = 512;  // threads per image block
  static constexpr int kMaxStepsPerLaunch = 1024;  // train_steps' most steps per launch

  // Why the fused engine cannot run this program on the state's device (empty when it can):
  // an arena or the per-image gradient slots too large for the device's memory.
  static std::string why_not(const DeviceState& state, const fused::FusedProgram& prog,
                             int max_batch);

  // cluster: blocks per image — 0 chooses (a thread-block cluster on Hopper and later when the
  // batch leaves SMs idle), 1 one block, more a cluster of that many (capped at 8; 1 where the
  // device has no clusters).
  // eval_chunk: images per forward-only launch (0: as many as fit, up to 4,096; tests set a
  // small one to cover the chunking).
  FusedEngine(DeviceState& state, const StepPlan& plan, fused::FusedProgram program, bool graphs,
              int cluster = 0, int eval_chunk = 0);
  FusedEngine(const FusedEngine&) = delete;
  FusedEngine& operator=(const FusedEngine&) = delete;

  const fused::FusedProgram& program() const { return prog_; }
  int cluster() const { return cluster_; }
  std::string describe() const;  // e.g. "fused: a block of 512 threads per image, arena in …"

  void train_step(int64_t begin, int count, float lr_t, const Hyper& h);
  // Full steps of `count` (= max_batch) images, steps[i] the i-th's parameters: one
  // persistent launch of up to kMaxStepsPerLaunch steps where multi_step(), else a step at a
  // time. The same bits as train_step one step after another.
  void train_steps(int count, std::span<const StepParams> steps);
  // Whether train_steps runs many steps per launch: one block per image, cooperative launches
  // on the device, and max_batch such blocks resident at once (a grid-wide barrier needs them
  // all running).
  bool multi_step() const { return multi_step_; }
  void evaluate(const StoredSplit& data, int64_t total);
  void predict(const ImageSet& images, std::span<float> probabilities);

  bool graph_ready() const { return bool(exec_) && graph_generation_ == state_.generation(); }
  const std::string& graph_note() const { return graph_note_; }

 private:
  void enqueue_step(int count);
  // Forward (and the loss) of images [first, first + n) of `pixels`: per-image loss and hits,
  // or probabilities when probs is not null.
  void enqueue_forward(const uint8_t* pixels, const uint8_t* labels, int64_t first, int n,
                       float* probs);
  void capture_step();
  void launch_steps(int count, int steps);  // steps_host_[slot] already copied to steps_
  detail::ImageArgs step_args(int count) const;  // a training step's, but for StepParams

  DeviceState& state_;
  StepPlan plan_;
  fused::FusedProgram prog_;
  bool graphs_;
  int cluster_ = 1;            // blocks per image
  int sms_ = 0;                // multiprocessors
  bool shared_arena_ = false;  // the arena in shared memory (else arena_ below)
  int eval_chunk_ = 0;         // images per forward-only launch
  DeviceBuffer<fused::FusedOp> fwd_ops_, bwd_ops_;
  DeviceBuffer<float> arena_;      // eval_chunk × arena floats, when not shared
  DeviceBuffer<int32_t> iarena_;
  DeviceBuffer<float> partial_;    // max_batch × param_floats: each image's gradients
  DeviceBuffer<double> img_loss_;  // eval_chunk
  DeviceBuffer<int32_t> img_correct_;

  bool multi_step_ = false;
  DeviceBuffer<StepParams> steps_;     // kMaxStepsPerLaunch: a launch's step parameters
  PinnedBuffer<StepParams> steps_host_;  // two slots of kMaxStepsPerLaunch, used in turn
  std::vector<Event> steps_copied_;    // a slot's copy done: it may be written again
  size_t steps_slot_ = 0;

  Graph graph_;
  GraphExec exec_;
  uint64_t graph_generation_ = 0;
  bool warmed_up_ = false;
  bool graph_failed_ = false;
  std::string graph_note_;
};

}  // namespace splitconv::gpu
