// The CUDA backend: cuDNN convolutions, cuBLAS dense layers and own kernels for the rest, on
// one non-default stream; a full training step is captured once as a CUDA graph and replayed.
// Internal (the public face is make_cuda_backend in splitconv/backend.h); tests use it directly.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <memory>
#include <string>
#include <vector>

#include "check.h"
#include "conv.h"
#include "ops.h"
#include "splitconv/backend.h"
#include "splitconv/bench.h"
#include "splitconv/model.h"

namespace splitconv::gpu {

struct Tuning {
  bool graphs = true;  // capture full-batch steps as a CUDA graph (false: always eager)
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const BackendOptions& opts, Tuning tuning = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return "cuda"; }
  std::string description() const override { return description_; }
  std::vector<std::string> choices() const override;

  void plan(const Model& model, int max_batch) override;
  void upload(Split split, const ImageSet& set) override;

  void set_parameters(std::span<const float> params) override;
  void get_parameters(std::span<float> params) override;
  void set_moments(std::span<const float> m, std::span<const float> v) override;
  void get_moments(std::span<float> m, std::span<float> v) override;

  void set_order(std::span<const int32_t> order) override;
  void train_step(int64_t begin, int count, int64_t t, const Hyper& hyper) override;
  Metrics train_metrics() override;
  void reset_train_metrics() override;
  Metrics evaluate(Split split, int64_t limit = 0) override;
  void predict(const ImageSet& images, std::span<float> probabilities) override;

  // For `bench layers` (bench_layers_cuda.cpp): one eager step, then per model layer the
  // median forward and backward time at the planned batch, the gather, loss and Adam, and the
  // whole train_step (a graph replay) last. Needs the train split uploaded and an order set.
  bench::LayersResult time_layers(const bench::TimingOptions& o);

  // For tests: whether full-batch steps now replay a captured graph, and why not if they don't.
  bool graph_ready() const { return exec_ != nullptr; }
  const std::string& graph_note() const { return graph_note_; }

 private:
  struct Stored {  // an uploaded split, uint8 on the device
    int64_t count = 0;
    DeviceBuffer<uint8_t> pixels, labels;
  };
  enum Acc { kTrain = 0, kEval = 1 };  // device accumulators: loss sum and correct count

  void destroy() noexcept;  // releases what the constructor made (also when it throws)
  void require_plan(const char* what) const;
  void release_graph() noexcept;
  const Stored& split_data(Split split) const;
  void copy_in(std::span<const float> from, float* to, const char* what);
  void copy_out(const float* from, std::span<float> to, const char* what);
  void write_step_params(const StepParams& sp);  // one small async copy, ordered on stream_

  // The step, enqueued on stream_ (cuda_step.cpp): nothing here allocates or synchronises.
  void enqueue_step(int n);
  void forward(int n);
  void backward(int n);
  void forward_layer(size_t i, int n);   // layer i of forward(n)
  void backward_layer(size_t i, int n);  // layer i of backward(n)
  void capture_step();  // records enqueue_step(max_batch_) into exec_
  Metrics read_metrics(Acc which, int64_t count);
  float* weight(const Layer& l, const DeviceBuffer<float>& flat) const;
  float* bias(const Layer& l, const DeviceBuffer<float>& flat) const;

  BackendOptions opts_;
  Tuning tuning_;
  int device_ = 0;
  std::string description_;
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  DeviceBuffer<uint8_t> cublas_workspace_;
  ConvContext conv_ctx_;

  bool planned_ = false;
  Model model_;
  int max_batch_ = 0, classes_ = 0;
  std::vector<std::unique_ptr<ConvImpl>> conv_;  // per layer; null when not a conv
  DeviceBuffer<uint8_t> conv_workspace_;
  std::vector<DeviceBuffer<float>> act_store_, grad_store_;
  std::vector<float*> act_, grad_;                // per layer output; index 0: the input batch
  std::vector<DeviceBuffer<int32_t>> argmax_;     // per layer; empty unless a pool
  std::vector<bool> need_dx_;                     // some earlier layer has parameters
  std::vector<std::string> nvtx_fwd_, nvtx_bwd_;  // "conv3.fwd", "conv3.bwd"
  DeviceBuffer<float> params_, grads_, m_, v_;
  DeviceBuffer<uint8_t> batch_labels_;
  DeviceBuffer<float> probs_;
  DeviceBuffer<double> loss_acc_;                 // [kTrain, kEval]
  DeviceBuffer<unsigned long long> correct_acc_;  // [kTrain, kEval]
  int64_t train_images_ = 0;                      // images in train_step since the last reset

  Stored train_, test_;
  DeviceBuffer<int32_t> order_;
  int64_t order_count_ = 0;
  int32_t order_min_ = 0, order_max_ = -1;

  // Step parameters: a ring of pinned host slots, each reused only after its copy completed.
  DeviceBuffer<StepParams> step_params_;
  PinnedBuffer<StepParams> step_host_;
  std::vector<cudaEvent_t> step_copied_;
  size_t step_slot_ = 0;

  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  bool warmed_up_ = false;  // one eager full step ran: libraries have done their lazy set-up
  bool graph_failed_ = false;
  std::string graph_note_;
  std::vector<std::string> choices_;
};

}  // namespace splitconv::gpu
