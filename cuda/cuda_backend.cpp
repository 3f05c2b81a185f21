// The CUDA backend's set-up: device, stream and library handles, the memory plan, the data and
// the parameter buffers. The step itself is in cuda_step.cpp.
#include "cuda_backend.h"

#include <algorithm>
#include <string>

#include "splitconv/error.h"
#include "splitconv/tensor.h"

namespace splitconv::gpu {
namespace {

constexpr size_t kCublasWorkspace = size_t(32) << 20;  // NVIDIA's advice for Hopper
constexpr size_t kStepSlots = 16;                      // pinned ring for the step parameters

}  // namespace

CudaBackend::CudaBackend(const BackendOptions& opts, Tuning tuning) : opts_(opts), tuning_(tuning) {
  check_conv_impl(opts.conv_impl);
  const CudaStatus status = cuda_status();
  if (status.devices.empty()) throw Error("no CUDA device: " + status.why_none);
  try {
    CUDA_CHECK(cudaGetDevice(&device_));
    CUDA_CHECK(cudaSetDevice(device_));
    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
    description_ = std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
                   std::to_string(prop.minor) + ")";
    // A stream of our own: graph capture is not allowed on the legacy default stream.
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDNN_CHECK(cudnnCreate(&cudnn_));
    CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
    CUBLAS_CHECK(cublasCreate(&cublas_));
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    CUBLAS_CHECK(
        cublasSetMathMode(cublas_, opts.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    // A workspace of our own, so cuBLAS never allocates while a graph is being captured.
    cublas_workspace_ = DeviceBuffer<uint8_t>(kCublasWorkspace, "the cuBLAS workspace");
    CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_.get(), cublas_workspace_.bytes()));
    conv_ctx_.cudnn = cudnn_;
    conv_ctx_.stream = stream_;
    conv_ctx_.tf32 = opts.tf32;

    loss_acc_ = DeviceBuffer<double>(2, "the loss accumulators");
    correct_acc_ = DeviceBuffer<unsigned long long>(2, "the accuracy accumulators");
    CUDA_CHECK(cudaMemsetAsync(loss_acc_.get(), 0, loss_acc_.bytes(), stream_));
    CUDA_CHECK(cudaMemsetAsync(correct_acc_.get(), 0, correct_acc_.bytes(), stream_));
    step_params_ = DeviceBuffer<StepParams>(1, "the step parameters");
    step_host_ = PinnedBuffer<StepParams>(kStepSlots, "the step parameters");
    for (size_t i = 0; i < kStepSlots; ++i) {
      cudaEvent_t ev = nullptr;
      CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
      step_copied_.push_back(ev);
    }
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  } catch (...) {
    destroy();
    throw;
  }
}

CudaBackend::~CudaBackend() { destroy(); }

void CudaBackend::destroy() noexcept {
  if (stream_) (void)cudaStreamSynchronize(stream_);
  release_graph();
  for (cudaEvent_t ev : step_copied_) (void)cudaEventDestroy(ev);
  step_copied_.clear();
  if (cublas_) (void)cublasDestroy(cublas_);
  if (cudnn_) (void)cudnnDestroy(cudnn_);
  if (stream_) (void)cudaStreamDestroy(stream_);
  cublas_ = nullptr;
  cudnn_ = nullptr;
  stream_ = nullptr;
}

void CudaBackend::release_graph() noexcept {
  if (exec_) (void)cudaGraphExecDestroy(exec_);
  if (graph_) (void)cudaGraphDestroy(graph_);
  exec_ = nullptr;
  graph_ = nullptr;
}

std::vector<std::string> CudaBackend::choices() const {
  std::vector<std::string> out = opts_.verbose ? choices_ : std::vector<std::string>{};
  if (graph_failed_) out.push_back("train_step: " + graph_note_);
  return out;
}

void CudaBackend::require_plan(const char* what) const {
  if (!planned_) throw Error(std::string("cuda backend: ") + what + " before plan()");
}

void CudaBackend::plan(const Model& model, int max_batch) {
  if (max_batch < 1) throw Error("cuda backend: max_batch must be at least 1");
  if (model.layers.empty()) throw Error("cuda backend: the model has no layers");
  const Layer& last = model.layers.back();
  if (last.kind() != LayerKind::Dense || last.spec.activation == Activation::Relu ||
      last.out.size() != model.classes) {
    throw Error("cuda backend: the last layer must be dense with softmax or no activation");
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  release_graph();  // it names the buffers about to be replaced
  planned_ = false;
  warmed_up_ = graph_failed_ = false;
  graph_note_.clear();
  choices_.clear();
  conv_.clear();

  model_ = model;
  max_batch_ = max_batch;
  classes_ = model.classes;
  const size_t layers = model.layers.size();
  auto batch_of = [&](const Shape& s) { return size_t(max_batch) * size_t(s.size()); };
  act_store_.clear();
  grad_store_.clear();
  act_store_.emplace_back(batch_of(model.input), "the input batch");
  act_.assign(1, act_store_.back().get());
  grad_.assign(1, nullptr);  // no layer wants the gradient of the input
  argmax_.clear();
  argmax_.resize(layers);
  conv_.resize(layers);
  need_dx_.assign(layers, false);
  nvtx_fwd_.assign(layers, {});
  nvtx_bwd_.assign(layers, {});
  bool params_before = false;
  for (size_t i = 0; i < layers; ++i) {
    const Layer& l = model.layers[i];
    need_dx_[i] = params_before;
    params_before = params_before || l.weight >= 0;
    nvtx_fwd_[i] = l.name() + ".fwd";
    nvtx_bwd_[i] = l.name() + ".bwd";
    if (l.spec.activation == Activation::Softmax && i + 1 != layers)
      throw Error("cuda backend: softmax is only supported on the last layer (" + l.name() + ")");
    const bool has_params = l.kind() == LayerKind::Conv || l.kind() == LayerKind::Dense;
    if (has_params && (l.weight < 0 || l.bias < 0))
      throw Error("cuda backend: " + l.name() + " has no weight or bias slot");
    if (l.kind() == LayerKind::Flatten) {  // NCHW is already the flattened order: a view
      act_.push_back(act_.back());
      grad_.push_back(grad_.back());
      continue;
    }
    const std::string what = l.name() + " activations";
    act_store_.emplace_back(batch_of(l.out), what.c_str());
    grad_store_.emplace_back(batch_of(l.out), (l.name() + " gradients").c_str());
    act_.push_back(act_store_.back().get());
    grad_.push_back(grad_store_.back().get());
    if (l.kind() == LayerKind::MaxPool)
      argmax_[i] = DeviceBuffer<int32_t>(batch_of(l.out), (l.name() + " argmax").c_str());
  }

  const size_t floats = size_t(model.param_floats);
  params_ = DeviceBuffer<float>(floats, "the parameters");
  grads_ = DeviceBuffer<float>(floats, "the gradients");
  m_ = DeviceBuffer<float>(floats, "the first moments");
  v_ = DeviceBuffer<float>(floats, "the second moments");
  for (auto* b : {&params_, &grads_, &m_, &v_})  // alignment padding must start (and stay) 0
    CUDA_CHECK(cudaMemsetAsync(b->get(), 0, b->bytes(), stream_));
  batch_labels_ = DeviceBuffer<uint8_t>(size_t(max_batch), "the batch labels");
  probs_ = DeviceBuffer<float>(size_t(max_batch) * size_t(classes_), "the probabilities");
  CUDA_CHECK(cudaMemsetAsync(loss_acc_.get(), 0, loss_acc_.bytes(), stream_));
  CUDA_CHECK(cudaMemsetAsync(correct_acc_.get(), 0, correct_acc_.bytes(), stream_));
  train_images_ = 0;
  CUDA_CHECK(cudaStreamSynchronize(stream_));

  // Convolutions last: cudnnFind times every algorithm, with the other buffers already taken.
  size_t workspace = 0;
  for (size_t i = 0; i < layers; ++i) {
    const Layer& l = model.layers[i];
    if (l.kind() != LayerKind::Conv) continue;
    conv_[i] = make_conv_impl(l, max_batch, need_dx_[i], opts_.conv_impl, conv_ctx_);
    workspace = std::max(workspace, conv_[i]->workspace_bytes());
  }
  conv_workspace_ = DeviceBuffer<uint8_t>(workspace, "the convolution workspace");
  conv_ctx_.workspace = conv_workspace_.get();
  conv_ctx_.workspace_bytes = conv_workspace_.bytes();
  for (const auto& c : conv_)
    if (c) choices_.push_back(c->describe());
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  planned_ = true;
}

void CudaBackend::upload(Split split, const ImageSet& set) {
  require_plan("upload");
  if (int64_t(set.pixels.size()) != set.count * set.image_size() ||
      (!set.labels.empty() && int64_t(set.labels.size()) != set.count)) {
    throw Error("cuda backend: image set sizes disagree with its count");
  }
  const Shape& in = model_.input;
  if (set.h != in.h || set.w != in.w || set.c != in.c) {
    throw Error("cuda backend: images of " + std::to_string(set.h) + "x" + std::to_string(set.w) +
                "x" + std::to_string(set.c) + " for a model input of " + std::to_string(in.h) +
                "x" + std::to_string(in.w) + "x" + std::to_string(in.c));
  }
  for (size_t i = 0; i < set.labels.size(); ++i) {  // the loss kernel cannot throw
    if (set.labels[i] >= classes_) {
      throw InputError("label " + std::to_string(set.labels[i]) + " of image " + std::to_string(i) +
                       " is not below the model's " + std::to_string(classes_) + " classes");
    }
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  if (split == Split::Train) release_graph();  // the graph reads the old training images
  Stored& s = split == Split::Train ? train_ : test_;
  s = Stored{};
  s.count = set.count;
  s.pixels = DeviceBuffer<uint8_t>(set.pixels.size(), "the uploaded images");
  s.labels = DeviceBuffer<uint8_t>(set.labels.size(), "the uploaded labels");
  if (!set.pixels.empty())
    CUDA_CHECK(cudaMemcpyAsync(s.pixels.get(), set.pixels.data(), set.pixels.size(),
                               cudaMemcpyHostToDevice, stream_));
  if (!set.labels.empty())
    CUDA_CHECK(cudaMemcpyAsync(s.labels.get(), set.labels.data(), set.labels.size(),
                               cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

const CudaBackend::Stored& CudaBackend::split_data(Split split) const {
  const Stored& s = split == Split::Train ? train_ : test_;
  const char* name = split == Split::Train ? "train" : "test";
  if (s.count == 0) throw Error(std::string("cuda backend: no ") + name + " split uploaded");
  if (s.labels.size() == 0)
    throw Error(std::string("cuda backend: the ") + name + " split has no labels");
  return s;
}

void CudaBackend::copy_in(std::span<const float> from, float* to, const char* what) {
  require_plan(what);
  if (int64_t(from.size()) != model_.param_floats) {
    throw Error(std::string("cuda backend: ") + what + " of " + std::to_string(from.size()) +
                " floats, expected " + std::to_string(model_.param_floats));
  }
  // Ordered after any step still running on the stream; pageable source, so wait for it.
  CUDA_CHECK(cudaMemcpyAsync(to, from.data(), from.size_bytes(), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::copy_out(const float* from, std::span<float> to, const char* what) {
  require_plan(what);
  if (int64_t(to.size()) != model_.param_floats) {
    throw Error(std::string("cuda backend: room for ") + what + " is " + std::to_string(to.size()) +
                " floats, expected " + std::to_string(model_.param_floats));
  }
  CUDA_CHECK(cudaMemcpyAsync(to.data(), from, to.size_bytes(), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void CudaBackend::set_parameters(std::span<const float> p) {
  copy_in(p, params_.get(), "parameters");
}
void CudaBackend::get_parameters(std::span<float> p) { copy_out(params_.get(), p, "parameters"); }
void CudaBackend::set_moments(std::span<const float> m, std::span<const float> v) {
  copy_in(m, m_.get(), "first moments");
  copy_in(v, v_.get(), "second moments");
}
void CudaBackend::get_moments(std::span<float> m, std::span<float> v) {
  copy_out(m_.get(), m, "first moments");
  copy_out(v_.get(), v, "second moments");
}

void CudaBackend::set_order(std::span<const int32_t> order) {
  require_plan("set_order");
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // steps in flight read the old order
  if (order.size() > order_.size()) {
    release_graph();  // it names the old buffer
    order_ = DeviceBuffer<int32_t>(order.size(), "the epoch order");
  }
  order_count_ = int64_t(order.size());
  order_min_ = 0;
  order_max_ = -1;
  if (!order.empty()) {
    const auto [lo, hi] = std::minmax_element(order.begin(), order.end());
    order_min_ = *lo;
    order_max_ = *hi;
    CUDA_CHECK(cudaMemcpyAsync(order_.get(), order.data(), order.size_bytes(),
                               cudaMemcpyHostToDevice, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
}

void CudaBackend::write_step_params(const StepParams& sp) {
  const size_t slot = step_slot_++ % step_host_.size();
  // The slot's previous copy must have read it before it is overwritten (long done, as a rule).
  CUDA_CHECK(cudaEventSynchronize(step_copied_[slot]));
  step_host_[slot] = sp;
  CUDA_CHECK(cudaMemcpyAsync(step_params_.get(), &step_host_[slot], sizeof(StepParams),
                             cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaEventRecord(step_copied_[slot], stream_));
}

Metrics CudaBackend::read_metrics(Acc which, int64_t count) {
  double loss = 0;
  unsigned long long correct = 0;
  CUDA_CHECK(cudaMemcpyAsync(&loss, loss_acc_.get() + which, sizeof loss, cudaMemcpyDeviceToHost,
                             stream_));
  CUDA_CHECK(cudaMemcpyAsync(&correct, correct_acc_.get() + which, sizeof correct,
                             cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  Metrics m;
  m.loss_sum = loss;
  m.correct = int64_t(correct);
  m.count = count;
  return m;
}

Metrics CudaBackend::train_metrics() {
  require_plan("train_metrics");
  return read_metrics(kTrain, train_images_);
}

void CudaBackend::reset_train_metrics() {
  require_plan("reset_train_metrics");
  CUDA_CHECK(cudaMemsetAsync(loss_acc_.get() + kTrain, 0, sizeof(double), stream_));
  CUDA_CHECK(cudaMemsetAsync(correct_acc_.get() + kTrain, 0, sizeof(unsigned long long), stream_));
  train_images_ = 0;
}

float* CudaBackend::weight(const Layer& l, const DeviceBuffer<float>& flat) const {
  return flat.get() + model_.slots[size_t(l.weight)].offset;
}

float* CudaBackend::bias(const Layer& l, const DeviceBuffer<float>& flat) const {
  return flat.get() + model_.slots[size_t(l.bias)].offset;
}

}  // namespace splitconv::gpu
