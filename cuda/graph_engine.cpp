// The CUDA graph engine (graph_engine.h): the step plan run with cuDNN, cuBLAS and own kernels,
// a full-batch step captured once as a CUDA graph and replayed.
#include "graph_engine.h"

#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <string>

#include "capture.h"
#include "ops.h"
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

GraphEngine::GraphEngine(DeviceState& state, const StepPlan& plan, bool graphs)
    : state_(state), plan_(plan), graphs_(graphs), model_(state.model()) {
  const int batch = plan_.max_batch;
  for (const PlanBuffer& b : plan_.buffers) {
    act_.emplace_back(size_t(b.floats(batch)), (b.name + " activations").c_str());
    grad_.emplace_back(b.needs_grad ? size_t(b.floats(batch)) : 0,
                       (b.name + " gradients").c_str());
  }
  for (const Shape& s : plan_.argmax_shapes)
    argmax_.emplace_back(size_t(batch) * size_t(s.size()), "the pooling argmax");
  const size_t layers = model_.layers.size();
  nvtx_fwd_.resize(layers);
  nvtx_bwd_.resize(layers);
  for (size_t i = 0; i < layers; ++i) {
    nvtx_fwd_[i] = model_.layers[i].name() + ".fwd";
    nvtx_bwd_[i] = model_.layers[i].name() + ".bwd";
  }
  conv_ctx_.cudnn = state.cudnn();
  conv_ctx_.stream = state.stream();
  conv_ctx_.tf32 = state.options().tf32;
  conv_ctx_.deterministic = state.options().deterministic;
  // Convolutions last: cudnnFind times every algorithm, with the other buffers already taken.
  conv_.resize(layers);
  size_t workspace = 0;
  for (const PlanOp& op : plan_.forward) {
    if (op.kind != LayerKind::Conv) continue;
    auto& impl = conv_[size_t(op.layer)];
    impl = make_conv_impl(model_.layers[size_t(op.layer)], batch, op.need_dx,
                          state.options().conv_impl, conv_ctx_);
    workspace = std::max(workspace, impl->workspace_bytes());
  }
  conv_workspace_ = DeviceBuffer<uint8_t>(workspace, "the convolution workspace");
  conv_ctx_.workspace = conv_workspace_.get();
  conv_ctx_.workspace_bytes = conv_workspace_.bytes();
  CUDA_CHECK(cudaStreamSynchronize(state.stream()));
}

std::vector<std::string> GraphEngine::choices() const {
  std::vector<std::string> out;
  for (const auto& c : conv_)
    if (c) out.push_back(c->describe());
  return out;
}

void GraphEngine::release_graph() noexcept {
  exec_.reset();
  graph_.reset();
}

void GraphEngine::train_step(int64_t begin, int count, float lr_t, const Hyper& h) {
  NvtxRange range("train_step");
  StepParams sp;
  sp.begin = begin;
  sp.lr_t = lr_t;
  sp.beta1 = h.beta1;
  sp.beta2 = h.beta2;
  sp.eps = h.eps;
  state_.write_step_params(sp);
  const bool full = count == plan_.max_batch;
  const bool graph = full && graphs_ && !graph_failed_;
  if (graph && exec_ && graph_generation_ != state_.generation()) release_graph();  // stale
  // The first full step runs eagerly: cuDNN and cuBLAS do their lazy set-up (module loads,
  // kernel attributes) outside the capture, where it is allowed. The next one is captured.
  if (graph && !exec_ && warmed_up_) capture_step();
  if (graph && exec_) {
    CUDA_CHECK(cudaGraphLaunch(exec_, state_.stream()));
  } else {
    enqueue_step(count);
    if (full) warmed_up_ = true;
  }
}

void GraphEngine::gather(int n) {
  const StoredSplit& data = state_.split(Split::Train);
  gather_batch(state_.stream(), data.pixels.get(), data.labels.get(), plan_.input.size(),
               state_.order(), state_.step_params(), n, act_[0].get(),
               state_.batch_labels.get());
}

void GraphEngine::loss(int n) {
  softmax_xent(state_.stream(), n, plan_.classes, act_[size_t(plan_.logits)].get(),
               state_.batch_labels.get(), grad_[size_t(plan_.logits)].get(), 1.0f / float(n),
               state_.loss_acc(DeviceState::kTrain), state_.correct_acc(DeviceState::kTrain));
}

void GraphEngine::adam() {
  gpu::adam(state_.stream(), model_.param_floats, state_.params.get(), state_.grads.get(),
            state_.m.get(), state_.v.get(), state_.step_params());
}

void GraphEngine::enqueue_step(int n) {
  gather(n);
  forward(n);
  loss(n);
  backward(n);
  adam();
}

void GraphEngine::capture_step() {
  const std::string why =
      capture_graph(state_.stream(), [&] { enqueue_step(plan_.max_batch); }, graph_, exec_);
  if (!why.empty()) {
    graph_failed_ = true;
    graph_note_ = "eager (CUDA graph capture failed: " + why + ")";
    return;
  }
  graph_generation_ = state_.generation();
  graph_note_ = "cuda graph";
}

void GraphEngine::forward(int n) {
  for (const PlanOp& op : plan_.forward) forward_layer(op, n);
}

void GraphEngine::backward(int n) {
  for (const PlanOp& op : plan_.backward) backward_layer(op, n);
}

void GraphEngine::forward_layer(const PlanOp& op, int n) {
  const Layer& l = model_.layers[size_t(op.layer)];
  NvtxRange range(nvtx_fwd_[size_t(op.layer)].c_str());
  const cudaStream_t s = state_.stream();
  const float* x = act_[size_t(op.x)].get();  // n×in
  float* y = act_[size_t(op.y)].get();        // n×out
  switch (op.kind) {
    case LayerKind::Conv:  // bias and activation included
      conv_[size_t(op.layer)]->forward(n, x, state_.weight(l, state_.params),
                                       state_.bias(l, state_.params), y);
      break;
    case LayerKind::MaxPool:
      maxpool_forward(s, pool_geom(l, n), x, y, argmax_[size_t(op.argmax)].get());
      if (op.relu) relu_forward(s, int64_t(n) * l.out.size(), y);
      break;
    case LayerKind::Flatten:  // a view: y is x
      if (op.relu) relu_forward(s, int64_t(n) * l.out.size(), y);
      break;
    case LayerKind::Dense:
      dense_forward(state_.cublas(), s, dense_geom(l, n), x, state_.weight(l, state_.params),
                    state_.bias(l, state_.params), op.relu, y);
      break;
  }
}

void GraphEngine::backward_layer(const PlanOp& op, int n) {
  const Layer& l = model_.layers[size_t(op.layer)];
  NvtxRange range(nvtx_bwd_[size_t(op.layer)].c_str());
  const cudaStream_t s = state_.stream();
  const float* x = act_[size_t(op.x)].get();
  const float* y = act_[size_t(op.y)].get();
  float* dy = grad_[size_t(op.y)].get();
  float* dx = op.need_dx ? grad_[size_t(op.x)].get() : nullptr;
  const int64_t out_count = int64_t(n) * l.out.size();
  const auto& P = state_.params;
  const auto& G = state_.grads;
  switch (op.kind) {
    case LayerKind::Conv:  // activation, bias, filter and data gradients
      conv_[size_t(op.layer)]->backward(n, x, y, dy, state_.weight(l, P), dx, state_.weight(l, G),
                                        state_.bias(l, G));
      break;
    case LayerKind::MaxPool:
      if (op.relu) relu_backward(s, out_count, y, dy);
      if (dx) maxpool_backward(s, pool_geom(l, n), dy, argmax_[size_t(op.argmax)].get(), dx);
      break;
    case LayerKind::Flatten:  // a view: dx is dy
      if (op.relu) relu_backward(s, out_count, y, dy);
      break;
    case LayerKind::Dense:
      if (op.relu) relu_backward(s, out_count, y, dy);
      dense_backward(state_.cublas(), s, dense_geom(l, n), x, state_.weight(l, P), dy, dx,
                     state_.weight(l, G), state_.bias(l, G));
      break;
  }
}

void GraphEngine::evaluate(const StoredSplit& data, int64_t total) {
  NvtxRange range("evaluate");
  const cudaStream_t s = state_.stream();
  const int64_t image = plan_.input.size();
  float* logits = act_[size_t(plan_.logits)].get();
  state_.reset_metrics(DeviceState::kEval);
  for (int64_t b = 0; b < total; b += plan_.max_batch) {
    const int n = int(std::min<int64_t>(plan_.max_batch, total - b));
    gather_batch(s, data.pixels.get() + b * image, data.labels.get() + b, image, nullptr, nullptr,
                 n, act_[0].get(), state_.batch_labels.get());
    forward(n);
    softmax_xent(s, n, plan_.classes, logits, state_.batch_labels.get(), nullptr, 0.0f,
                 state_.loss_acc(DeviceState::kEval), state_.correct_acc(DeviceState::kEval));
  }
}

void GraphEngine::predict(const ImageSet& images, std::span<float> probabilities) {
  if (images.count == 0) return;
  NvtxRange range("predict");
  const cudaStream_t s = state_.stream();
  const int64_t image = plan_.input.size();
  const int classes = plan_.classes;
  // Not the step loop: a buffer for these images only, freed on return.
  DeviceBuffer<uint8_t> pixels(images.pixels.size(), "the images to predict");
  CUDA_CHECK(cudaMemcpyAsync(pixels.get(), images.pixels.data(), images.pixels.size(),
                             cudaMemcpyHostToDevice, s));
  for (int64_t b = 0; b < images.count; b += plan_.max_batch) {
    const int n = int(std::min<int64_t>(plan_.max_batch, images.count - b));
    gather_batch(s, pixels.get() + b * image, nullptr, image, nullptr, nullptr, n, act_[0].get(),
                 nullptr);
    forward(n);
    softmax(s, n, classes, act_[size_t(plan_.logits)].get(), state_.probs.get());
    CUDA_CHECK(cudaMemcpyAsync(probabilities.data() + b * classes, state_.probs.get(),
                               size_t(n) * size_t(classes) * sizeof(float),
                               cudaMemcpyDeviceToHost, s));
  }
  CUDA_CHECK(cudaStreamSynchronize(s));
}

}  // namespace splitconv::gpu
