// The device state shared by the GPU engines (device_state.h).
#include "device_state.h"

#include <algorithm>
#include <string>

#include "splitconv/error.h"

namespace splitconv::gpu {
namespace {

constexpr size_t kCublasWorkspace = size_t(32) << 20;  // NVIDIA's advice for Hopper
constexpr size_t kStepSlots = 16;                      // pinned ring for the step parameters

}  // namespace

DeviceState::DeviceState(const BackendOptions& opts) : opts_(opts) {
  const CudaStatus status = cuda_status();
  if (status.devices.empty()) throw Error("no CUDA device: " + status.why_none);
  CUDA_CHECK(cudaGetDevice(&device_));
  CUDA_CHECK(cudaSetDevice(device_));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device_));
  description_ = std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
                 std::to_string(prop.minor) + ")";
  stream_ = new_stream();
  cudnn_ = new_cudnn(stream_);
  cublas_ = new_cublas(stream_);
  CUBLAS_CHECK(
      cublasSetMathMode(cublas_, opts.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  // A workspace of our own, so cuBLAS never allocates while a graph is being captured.
  cublas_workspace_ = DeviceBuffer<uint8_t>(kCublasWorkspace, "the cuBLAS workspace");
  CUBLAS_CHECK(cublasSetWorkspace(cublas_, cublas_workspace_.get(), cublas_workspace_.bytes()));

  loss_acc_ = DeviceBuffer<double>(2, "the loss accumulators");
  correct_acc_ = DeviceBuffer<unsigned long long>(2, "the accuracy accumulators");
  CUDA_CHECK(cudaMemsetAsync(loss_acc_.get(), 0, loss_acc_.bytes(), stream_));
  CUDA_CHECK(cudaMemsetAsync(correct_acc_.get(), 0, correct_acc_.bytes(), stream_));
  step_params_ = DeviceBuffer<StepParams>(1, "the step parameters");
  step_host_ = PinnedBuffer<StepParams>(kStepSlots, "the step parameters");
  for (size_t i = 0; i < kStepSlots; ++i) step_copied_.push_back(new_event(false));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

DeviceState::~DeviceState() {
  if (stream_) (void)cudaStreamSynchronize(stream_);  // nothing in flight reads what goes now
}

void DeviceState::require_plan(const char* what) const {
  if (!planned_) throw Error(std::string("cuda backend: ") + what + " before plan()");
}

void DeviceState::plan(const Model& model, int max_batch) {
  if (max_batch < 1) throw Error("cuda backend: max_batch must be at least 1");
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  ++generation_;
  planned_ = false;
  model_ = model;
  max_batch_ = max_batch;
  const size_t floats = size_t(model.param_floats);
  params = DeviceBuffer<float>(floats, "the parameters");
  grads = DeviceBuffer<float>(floats, "the gradients");
  m = DeviceBuffer<float>(floats, "the first moments");
  v = DeviceBuffer<float>(floats, "the second moments");
  for (auto* b : {&params, &grads, &m, &v})  // alignment padding must start (and stay) 0
    CUDA_CHECK(cudaMemsetAsync(b->get(), 0, b->bytes(), stream_));
  batch_labels = DeviceBuffer<uint8_t>(size_t(max_batch), "the batch labels");
  probs = DeviceBuffer<float>(size_t(max_batch) * size_t(model.classes), "the probabilities");
  reset_metrics(kTrain);
  reset_metrics(kEval);
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  planned_ = true;
}

void DeviceState::upload(Split split, const ImageSet& set) {
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
    if (set.labels[i] >= model_.classes) {
      throw InputError("label " + std::to_string(set.labels[i]) + " of image " + std::to_string(i) +
                       " is not below the model's " + std::to_string(model_.classes) + " classes");
    }
  }
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  ++generation_;  // a graph may read the old images
  StoredSplit& s = split == Split::Train ? train_ : test_;
  s = StoredSplit{};
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

const StoredSplit& DeviceState::split(Split which) const {
  const StoredSplit& s = which == Split::Train ? train_ : test_;
  const char* name = which == Split::Train ? "train" : "test";
  if (s.count == 0) throw Error(std::string("cuda backend: no ") + name + " split uploaded");
  if (s.labels.size() == 0)
    throw Error(std::string("cuda backend: the ") + name + " split has no labels");
  return s;
}

void DeviceState::copy_in(std::span<const float> from, float* to, const char* what) {
  require_plan(what);
  if (int64_t(from.size()) != model_.param_floats) {
    throw Error(std::string("cuda backend: ") + what + " of " + std::to_string(from.size()) +
                " floats, expected " + std::to_string(model_.param_floats));
  }
  // Ordered after any step still running on the stream; pageable source, so wait for it.
  CUDA_CHECK(cudaMemcpyAsync(to, from.data(), from.size_bytes(), cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void DeviceState::copy_out(const float* from, std::span<float> to, const char* what) {
  require_plan(what);
  if (int64_t(to.size()) != model_.param_floats) {
    throw Error(std::string("cuda backend: room for ") + what + " is " + std::to_string(to.size()) +
                " floats, expected " + std::to_string(model_.param_floats));
  }
  CUDA_CHECK(cudaMemcpyAsync(to.data(), from, to.size_bytes(), cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
}

void DeviceState::set_moments(std::span<const float> m_in, std::span<const float> v_in) {
  copy_in(m_in, m.get(), "first moments");
  copy_in(v_in, v.get(), "second moments");
}

void DeviceState::get_moments(std::span<float> m_out, std::span<float> v_out) {
  copy_out(m.get(), m_out, "first moments");
  copy_out(v.get(), v_out, "second moments");
}

void DeviceState::set_order(std::span<const int32_t> order) {
  require_plan("set_order");
  CUDA_CHECK(cudaStreamSynchronize(stream_));  // steps in flight read the old order
  if (order.size() > order_.size()) {
    ++generation_;  // a graph names the old buffer
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

void DeviceState::check_step(int64_t begin, int count, int64_t t) const {
  require_plan("train_step");
  const StoredSplit& data = split(Split::Train);
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
}

void DeviceState::write_step_params(const StepParams& sp) {
  const size_t slot = step_slot_++ % step_host_.size();
  // The slot's previous copy must have read it before it is overwritten (long done, as a rule).
  CUDA_CHECK(cudaEventSynchronize(step_copied_[slot]));
  step_host_[slot] = sp;
  CUDA_CHECK(cudaMemcpyAsync(step_params_.get(), &step_host_[slot], sizeof(StepParams),
                             cudaMemcpyHostToDevice, stream_));
  CUDA_CHECK(cudaEventRecord(step_copied_[slot], stream_));
}

Metrics DeviceState::read_metrics(Acc which, int64_t count) {
  double loss = 0;
  unsigned long long correct = 0;
  CUDA_CHECK(cudaMemcpyAsync(&loss, loss_acc_.get() + which, sizeof loss, cudaMemcpyDeviceToHost,
                             stream_));
  CUDA_CHECK(cudaMemcpyAsync(&correct, correct_acc_.get() + which, sizeof correct,
                             cudaMemcpyDeviceToHost, stream_));
  CUDA_CHECK(cudaStreamSynchronize(stream_));
  Metrics out;
  out.loss_sum = loss;
  out.correct = int64_t(correct);
  out.count = count;
  return out;
}

void DeviceState::reset_metrics(Acc which) {
  CUDA_CHECK(cudaMemsetAsync(loss_acc_.get() + which, 0, sizeof(double), stream_));
  CUDA_CHECK(cudaMemsetAsync(correct_acc_.get() + which, 0, sizeof(unsigned long long), stream_));
}

}  // namespace splitconv::gpu
