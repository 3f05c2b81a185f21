// What every GPU engine shares: the device, its stream and library handles, the data on the
// device, the epoch's order, the parameters with their gradients and Adam moments, the step
// parameters and the metric accumulators. An engine (graph_engine.h) runs a step plan on it.
// Every buffer an engine may have captured into a CUDA graph is replaced only through this
// class, which then moves generation() on: a graph remembers the generation it was captured at
// and is re-captured when it differs, so a stale graph cannot replay.
#pragma once
#include <cstdint>
#include <span>
#include <string>

#include "ops.h"
#include "resources.h"
#include "splitconv/backend.h"
#include "splitconv/model.h"

namespace splitconv::gpu {

struct StoredSplit {  // an uploaded split, uint8 on the device
  int64_t count = 0;
  DeviceBuffer<uint8_t> pixels, labels;
};

class DeviceState {
 public:
  enum Acc { kTrain = 0, kEval = 1 };  // device accumulators: loss sum and correct count

  explicit DeviceState(const BackendOptions& opts);  // throws Error when there is no device
  ~DeviceState();
  DeviceState(const DeviceState&) = delete;
  DeviceState& operator=(const DeviceState&) = delete;

  const BackendOptions& options() const { return opts_; }
  const std::string& description() const { return description_; }
  cudaStream_t stream() const { return stream_; }
  cudnnHandle_t cudnn() const { return cudnn_; }
  cublasHandle_t cublas() const { return cublas_; }
  uint64_t generation() const { return generation_; }

  // Parameter, gradient and moment buffers for `model`, and per-batch buffers (labels,
  // probabilities) for up to max_batch images. Parameters start at 0.
  void plan(const Model& model, int max_batch);
  bool planned() const { return planned_; }
  const Model& model() const { return model_; }
  int max_batch() const { return max_batch_; }

  void upload(Split split, const ImageSet& set);
  const StoredSplit& split(Split split) const;  // throws when absent or without labels

  void set_parameters(std::span<const float> p) { copy_in(p, params.get(), "parameters"); }
  void get_parameters(std::span<float> p) { copy_out(params.get(), p, "parameters"); }
  void set_moments(std::span<const float> m_in, std::span<const float> v_in);
  void get_moments(std::span<float> m_out, std::span<float> v_out);

  void set_order(std::span<const int32_t> order);
  const int32_t* order() const { return order_.get(); }
  // Checks a step of `count` images from `begin` of the order against the plan and the data.
  void check_step(int64_t begin, int count, int64_t t) const;

  // One small asynchronous copy of what changes per step, ordered on the stream.
  void write_step_params(const StepParams& sp);
  const StepParams* step_params() const { return step_params_.get(); }

  Metrics read_metrics(Acc which, int64_t count);
  void reset_metrics(Acc which);
  double* loss_acc(Acc which) const { return loss_acc_.get() + which; }
  unsigned long long* correct_acc(Acc which) const { return correct_acc_.get() + which; }

  float* weight(const Layer& l, const DeviceBuffer<float>& flat) const {
    return flat.get() + model_.slots[size_t(l.weight)].offset;
  }
  float* bias(const Layer& l, const DeviceBuffer<float>& flat) const {
    return flat.get() + model_.slots[size_t(l.bias)].offset;
  }

  DeviceBuffer<float> params, grads, m, v;  // flat, Model::param_floats each
  DeviceBuffer<uint8_t> batch_labels;       // max_batch
  DeviceBuffer<float> probs;                // max_batch × classes

 private:
  void require_plan(const char* what) const;
  void copy_in(std::span<const float> from, float* to, const char* what);
  void copy_out(const float* from, std::span<float> to, const char* what);

  BackendOptions opts_;
  int device_ = 0;
  std::string description_;
  // Declared before what is enqueued on it, so it is destroyed last (after a final sync).
  Stream stream_;
  CudnnHandle cudnn_;
  CublasHandle cublas_;
  DeviceBuffer<uint8_t> cublas_workspace_;
  uint64_t generation_ = 0;

  bool planned_ = false;
  Model model_;
  int max_batch_ = 0;

  StoredSplit train_, test_;
  DeviceBuffer<int32_t> order_;
  int64_t order_count_ = 0;
  int32_t order_min_ = 0, order_max_ = -1;

  DeviceBuffer<double> loss_acc_;                 // [kTrain, kEval]
  DeviceBuffer<unsigned long long> correct_acc_;  // [kTrain, kEval]
  // Step parameters: a ring of pinned host slots, each reused only after its copy completed.
  DeviceBuffer<StepParams> step_params_;
  PinnedBuffer<StepParams> step_host_;
  std::vector<Event> step_copied_;
  size_t step_slot_ = 0;
};

}  // namespace splitconv::gpu
