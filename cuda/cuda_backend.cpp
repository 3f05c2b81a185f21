// The CUDA backend (cuda_backend.h): argument checks, then the state or the engine.
#include "cuda_backend.h"

#include <algorithm>
#include <string>

#include "splitconv/error.h"
#include "splitconv/plan.h"
#include "splitconv/tensor.h"

namespace splitconv::gpu {
namespace {

// Refuses a conv_impl no build supports before any device work.
const BackendOptions& checked(const BackendOptions& opts) {
  check_conv_impl(opts.conv_impl);
  return opts;
}

}  // namespace

CudaBackend::CudaBackend(const BackendOptions& opts, Tuning tuning)
    : opts_(checked(opts)), tuning_(tuning), state_(opts) {}

CudaBackend::~CudaBackend() {
  if (state_.stream()) (void)cudaStreamSynchronize(state_.stream());
  engine_.reset();  // before the state it names
}

GraphEngine& CudaBackend::engine(const char* what) const {
  if (!engine_) throw Error(std::string("cuda backend: ") + what + " before plan()");
  return *engine_;
}

const std::string& CudaBackend::graph_note() const {
  static const std::string none = "no engine planned";
  return engine_ ? engine_->graph_note() : none;
}

std::vector<std::string> CudaBackend::choices() const {
  std::vector<std::string> out;
  if (!engine_) return out;
  if (opts_.verbose) out = engine_->choices();
  if (!engine_->graph_note().empty() && engine_->graph_note() != "cuda graph")
    out.push_back("train_step: " + engine_->graph_note());
  return out;
}

void CudaBackend::plan(const Model& model, int max_batch) {
  const StepPlan plan = make_plan(model, max_batch);  // refuses what no engine runs, first
  CUDA_CHECK(cudaStreamSynchronize(state_.stream()));
  engine_.reset();  // its graph and buffers go before the new ones are taken
  state_.plan(model, max_batch);
  engine_ = std::make_unique<GraphEngine>(state_, plan, tuning_.graphs);
  train_images_ = 0;
}

void CudaBackend::train_step(int64_t begin, int count, int64_t t, const Hyper& hyper) {
  GraphEngine& e = engine("train_step");
  state_.check_step(begin, count, t);
  e.train_step(begin, count, float(adam_step_size(hyper.lr, hyper.beta1, hyper.beta2, t)), hyper);
  train_images_ += count;
}

Metrics CudaBackend::train_metrics() {
  engine("train_metrics");
  return state_.read_metrics(DeviceState::kTrain, train_images_);
}

void CudaBackend::reset_train_metrics() {
  engine("reset_train_metrics");
  state_.reset_metrics(DeviceState::kTrain);
  train_images_ = 0;
}

Metrics CudaBackend::evaluate(Split split, int64_t limit) {
  GraphEngine& e = engine("evaluate");
  const StoredSplit& data = state_.split(split);
  const int64_t total = limit > 0 ? std::min(limit, data.count) : data.count;
  e.evaluate(data, total);
  return state_.read_metrics(DeviceState::kEval, total);
}

void CudaBackend::predict(const ImageSet& images, std::span<float> probabilities) {
  GraphEngine& e = engine("predict");
  const Shape& in = state_.model().input;
  const int classes = state_.model().classes;
  if (images.h != in.h || images.w != in.w || images.c != in.c ||
      int64_t(images.pixels.size()) != images.count * in.size()) {
    throw Error("cuda backend: the images to predict do not match the model input");
  }
  if (int64_t(probabilities.size()) != images.count * classes) {
    throw Error("cuda backend: room for " + std::to_string(probabilities.size()) +
                " probabilities, expected " + std::to_string(images.count * classes));
  }
  e.predict(images, probabilities);
}

}  // namespace splitconv::gpu
