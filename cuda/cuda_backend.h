// The CUDA backend: the Backend interface over the device state (device_state.h) and the
// engine that runs the step plan on it (graph_engine.h, or fused_engine.h with --engine). plan() builds a new engine, so what
// the old one captured goes with it. Internal (the public face is make_cuda_backend in
// splitconv/backend.h); tests and `bench layers` use it directly.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "device_state.h"
#include "fused_engine.h"
#include "graph_engine.h"
#include "splitconv/backend.h"
#include "splitconv/model.h"

namespace splitconv::gpu {

struct Tuning {
  bool graphs = true;  // capture full-batch steps as a CUDA graph (false: always eager)
  int fused_eval_chunk = 0;  // fused engine: images per forward-only launch (0: its choice)
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const BackendOptions& opts, Tuning tuning = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda"; }
  std::string description() const override { return state_.description(); }
  std::vector<std::string> choices() const override;
  std::string engine() const override { return fused_ ? "fused" : "graph"; }
  std::string engine_note() const override { return engine_note_; }

  // Against the device's free memory: graph_engine_memory (splitconv/backend.h), which leaves
  // out the convolution workspace (the algorithm search fits it into what is then free).
  void check_plan(const Model& model, int max_batch) const override;
  std::optional<MemoryEstimate> memory_estimate(const Model& model, int max_batch) const override {
    return graph_engine_memory(model, max_batch);
  }
  void plan(const Model& model, int max_batch) override;
  void upload(Split split, const ImageSet& set) override { state_.upload(split, set); }

  void set_parameters(std::span<const float> p) override { state_.set_parameters(p); }
  void get_parameters(std::span<float> p) override { state_.get_parameters(p); }
  void set_moments(std::span<const float> m, std::span<const float> v) override {
    state_.set_moments(m, v);
  }
  void get_moments(std::span<float> m, std::span<float> v) override { state_.get_moments(m, v); }

  void set_order(std::span<const int32_t> order) override { state_.set_order(order); }
  void train_step(int64_t begin, int count, int64_t t, const Hyper& hyper) override;
  // The fused engine runs a run of full steps in one launch where it can (FusedEngine::
  // train_steps); the graph engine a graph per step.
  void train_steps(int64_t begin, int count, int64_t t, std::span<const Hyper> hypers) override;
  int steps_per_call() const override;
  Metrics train_metrics() override;
  void reset_train_metrics() override;
  Metrics evaluate(Split split, int64_t limit = 0) override;
  void predict(const ImageSet& images, std::span<float> probabilities) override;

  // For tests and `bench layers`: the state and the graph engine (after plan(), when it is the
  // one running); the fused engine when it is.
  DeviceState& state() { return state_; }
  GraphEngine& graph_engine(const char* what = "engine") const;
  FusedEngine* fused_engine() const { return fused_.get(); }
  bool graph_ready() const;
  const std::string& graph_note() const;

 private:
  int64_t planned_bytes_ = 0;  // graph_engine_memory of the current plan (freed by the next)
  void require_plan(const char* what) const;

  BackendOptions opts_;
  Tuning tuning_;
  DeviceState state_;
  std::unique_ptr<GraphEngine> engine_;  // one of the two engines runs the plan
  std::unique_ptr<FusedEngine> fused_;
  std::string engine_note_;  // why the engine asked for is not the one running
  int64_t train_images_ = 0;  // images in train_step since the last reset
};

}  // namespace splitconv::gpu
