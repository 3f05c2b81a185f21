// The CUDA backend's step: gather, forward, loss, backward and Adam enqueued on one stream;
// full batches captured once as a CUDA graph and replayed. Evaluation and prediction reuse the
// forward pass without gradients.
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <exception>
#include <string>

#include "cuda_backend.h"
#include "splitconv/error.h"
#include "splitconv/tensor.h"

namespace splitconv::gpu {
namespace {

// An NVTX range for the profilers. Ranges pushed while a graph is captured mark the capture
// only; replayed steps show as one "train_step" range each.
class NvtxRange {
 public:
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace

void CudaBackend::train_step(int64_t begin, int count, int64_t t, const Hyper& hyper) {
  require_plan("train_step");
  const Stored& data = split_data(Split::Train);
  if (count < 1 || count > max_batch_) {
    throw Error("cuda backend: a step of " + std::to_string(count) + " images, planned for 1 to " +
                std::to_string(max_batch_));
  }
  if (begin < 0 || begin + count > order_count_) {
    throw Error("cuda backend: step images [" + std::to_string(begin) + ", " +
                std::to_string(begin + count) + ") outside the order of " +
                std::to_string(order_count_));
  }
  if (t < 1) throw Error("cuda backend: Adam steps count from 1");
  if (order_min_ < 0 || order_max_ >= data.count) {
    throw Error("cuda backend: the order names image " +
                std::to_string(order_min_ < 0 ? order_min_ : order_max_) + " of " +
                std::to_string(data.count));
  }
  NvtxRange range("train_step");
  StepParams sp;
  sp.begin = begin;
  sp.lr_t = float(adam_step_size(hyper.lr, hyper.beta1, hyper.beta2, t));
  sp.beta1 = hyper.beta1;
  sp.beta2 = hyper.beta2;
  sp.eps = hyper.eps;
  write_step_params(sp);
  const bool graph = count == max_batch_ && tuning_.graphs && !graph_failed_;
  // The first full step runs eagerly: cuDNN and cuBLAS do their lazy set-up (module loads,
  // kernel attributes) outside the capture, where it is allowed. The second one is captured.
  if (graph && !exec_ && warmed_up_) capture_step();
  if (graph && exec_) {
    CUDA_CHECK(cudaGraphLaunch(exec_, stream_));
  } else {
    enqueue_step(count);
    if (count == max_batch_) warmed_up_ = true;
  }
  train_images_ += count;
}

void CudaBackend::enqueue_step(int n) {
  const Stored& data = train_;
  gather_batch(stream_, data.pixels.get(), data.labels.get(), model_.input.size(), order_.get(),
               step_params_.get(), n, act_[0], batch_labels_.get());
  forward(n);
  softmax_xent(stream_, n, classes_, act_.back(), batch_labels_.get(), grad_.back(),
               1.0f / float(n), loss_acc_.get() + kTrain, correct_acc_.get() + kTrain);
  backward(n);
  adam(stream_, model_.param_floats, params_.get(), grads_.get(), m_.get(), v_.get(),
       step_params_.get());
}

void CudaBackend::capture_step() {
  auto give_up = [&](const std::string& why) {
    cudaGraph_t partial = nullptr;
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream_, &capturing) == cudaSuccess &&
        capturing != cudaStreamCaptureStatusNone) {
      (void)cudaStreamEndCapture(stream_, &partial);
    }
    if (partial) (void)cudaGraphDestroy(partial);
    (void)cudaGetLastError();  // capture errors are not sticky; clear the last one
    release_graph();
    graph_failed_ = true;
    graph_note_ = "eager (CUDA graph capture failed: " + why + ")";
  };
  CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue_step(max_batch_);
  } catch (const std::exception& e) {
    give_up(e.what());
    return;
  }
  cudaError_t err = cudaStreamEndCapture(stream_, &graph_);
  if (err != cudaSuccess) {
    graph_ = nullptr;
    give_up(std::string("cudaStreamEndCapture: ") + cudaGetErrorString(err));
    return;
  }
  err = cudaGraphInstantiate(&exec_, graph_, 0);
  if (err != cudaSuccess) {
    exec_ = nullptr;
    give_up(std::string("cudaGraphInstantiate: ") + cudaGetErrorString(err));
    return;
  }
  graph_note_ = "cuda graph";
}

void CudaBackend::forward(int n) {
  for (size_t i = 0; i < model_.layers.size(); ++i) forward_layer(i, n);
}

void CudaBackend::forward_layer(size_t i, int n) {
  const Layer& l = model_.layers[i];
  NvtxRange range(nvtx_fwd_[i].c_str());
  const float* x = act_[i];  // n×in
  float* y = act_[i + 1];    // n×out
  const bool relu = l.spec.activation == Activation::Relu;
  switch (l.kind()) {
    case LayerKind::Conv:  // bias and activation included
      conv_[i]->forward(n, x, weight(l, params_), bias(l, params_), y);
      break;
    case LayerKind::MaxPool:
      maxpool_forward(stream_, pool_geom(l, n), x, y, argmax_[i].get());
      if (relu) relu_forward(stream_, int64_t(n) * l.out.size(), y);
      break;
    case LayerKind::Flatten:  // a view: y is x
      if (relu) relu_forward(stream_, int64_t(n) * l.out.size(), y);
      break;
    case LayerKind::Dense:
      dense_forward(cublas_, stream_, dense_geom(l, n), x, weight(l, params_), bias(l, params_),
                    relu, y);
      break;
  }
}

void CudaBackend::backward(int n) {
  for (size_t i = model_.layers.size(); i-- > 0;) backward_layer(i, n);
}

void CudaBackend::backward_layer(size_t i, int n) {
  const Layer& l = model_.layers[i];
  NvtxRange range(nvtx_bwd_[i].c_str());
  const float* x = act_[i];
  const float* y = act_[i + 1];
  float* dy = grad_[i + 1];
  // No layer before this one has parameters: its input gradient would go unused.
  float* dx = need_dx_[i] ? grad_[i] : nullptr;
  const bool relu = l.spec.activation == Activation::Relu;
  const int64_t out_count = int64_t(n) * l.out.size();
  switch (l.kind()) {
    case LayerKind::Conv:  // activation, bias, filter and data gradients
      conv_[i]->backward(n, x, y, dy, weight(l, params_), dx, weight(l, grads_), bias(l, grads_));
      break;
    case LayerKind::MaxPool:
      if (relu) relu_backward(stream_, out_count, y, dy);
      if (dx) maxpool_backward(stream_, pool_geom(l, n), dy, argmax_[i].get(), dx);
      break;
    case LayerKind::Flatten:  // a view: dx is dy
      if (relu) relu_backward(stream_, out_count, y, dy);
      break;
    case LayerKind::Dense:
      if (relu) relu_backward(stream_, out_count, y, dy);
      dense_backward(cublas_, stream_, dense_geom(l, n), x, weight(l, params_), dy, dx,
                     weight(l, grads_), bias(l, grads_));
      break;
  }
}

Metrics CudaBackend::evaluate(Split split, int64_t limit) {
  require_plan("evaluate");
  const Stored& data = split_data(split);
  NvtxRange range("evaluate");
  const int64_t total = limit > 0 ? std::min(limit, data.count) : data.count;
  const int64_t image = model_.input.size();
  CUDA_CHECK(cudaMemsetAsync(loss_acc_.get() + kEval, 0, sizeof(double), stream_));
  CUDA_CHECK(cudaMemsetAsync(correct_acc_.get() + kEval, 0, sizeof(unsigned long long), stream_));
  for (int64_t b = 0; b < total; b += max_batch_) {
    const int n = int(std::min<int64_t>(max_batch_, total - b));
    gather_batch(stream_, data.pixels.get() + b * image, data.labels.get() + b, image, nullptr,
                 nullptr, n, act_[0], batch_labels_.get());
    forward(n);
    softmax_xent(stream_, n, classes_, act_.back(), batch_labels_.get(), nullptr, 0.0f,
                 loss_acc_.get() + kEval, correct_acc_.get() + kEval);
  }
  return read_metrics(kEval, total);
}

void CudaBackend::predict(const ImageSet& images, std::span<float> probabilities) {
  require_plan("predict");
  const Shape& in = model_.input;
  if (images.h != in.h || images.w != in.w || images.c != in.c ||
      int64_t(images.pixels.size()) != images.count * in.size()) {
    throw Error("cuda backend: the images to predict do not match the model input");
  }
  if (int64_t(probabilities.size()) != images.count * classes_) {
    throw Error("cuda backend: room for " + std::to_string(probabilities.size()) +
                " probabilities, expected " + std::to_string(images.count * classes_));
  }
  if (images.count == 0) return;
  NvtxRange range("predict");
  const int64_t image = in.size();
  // Not the step loop: a buffer for these images only, freed on return.
  DeviceBuffer<uint8_t> pixels(images.pixels.size(), "the images to predict");
  CUDA_CHECK(cudaMemcpyAsync(pixels.get(), images.pixels.data(), images.pixels.size(),
                             cudaMemcpyHostToDevice, stream_));
  for (int64_t b = 0; b < images.count; b += max_batch_) {
    const int n = int(std::min<int64_t>(max_batch_, images.count - b));
    gather_batch(stream_, pixels.get() + b * image, nullptr, image, nullptr, nullptr, n, act_[0],
                 nullptr);
    forward(n);
    softmax(stream_, n, classes_, act_.back(), probs_.get());
    CUDA_CHECK(cudaMemcpyAsync(probabilities.data() + b * classes_, probs_.get(),
                               size_t(n) * size_t(classes_) * sizeof(float), cudaMemcpyDeviceToHost,
                               stream_));
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

}  // namespace splitconv::gpu
