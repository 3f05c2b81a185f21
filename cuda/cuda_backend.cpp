// The CUDA backend (cuda_backend.h): argument checks, then the state or the engine.
#include "cuda_backend.h"

#include <algorithm>
#include <string>

#include "splitconv/error.h"
#include "splitconv/format.h"
#include "splitconv/plan.h"
#include "splitconv/tensor.h"

namespace splitconv::gpu {
namespace {

// Refuses a conv_impl no build supports before any device work.
const BackendOptions& checked(const BackendOptions& opts) {
  check_conv_impl(opts.conv_impl);
  if (opts.fused_blocks < 0 || opts.fused_blocks > 8)
    throw InputError("--fused-blocks: expected 0 (choose) to 8, got " +
                     std::to_string(opts.fused_blocks));
  if (opts.steps_per_launch < 1 || opts.steps_per_launch > FusedEngine::kMaxStepsPerLaunch)
    throw InputError("--steps-per-launch: expected 1 to " +
                     std::to_string(FusedEngine::kMaxStepsPerLaunch) + ", got " +
                     std::to_string(opts.steps_per_launch));
  return opts;
}

}  // namespace

CudaBackend::CudaBackend(const BackendOptions& opts, Tuning tuning)
    : opts_(checked(opts)), tuning_(tuning), state_(opts) {}

CudaBackend::~CudaBackend() {
  if (state_.stream()) (void)cudaStreamSynchronize(state_.stream());
  engine_.reset();  // before the state they name
  fused_.reset();
}

GraphEngine& CudaBackend::graph_engine(const char* what) const {
  if (!engine_) {
    if (fused_) throw Error(std::string("cuda backend: ") + what + ": the fused engine is running");
    throw Error(std::string("cuda backend: ") + what + " before plan()");
  }
  return *engine_;
}

void CudaBackend::require_plan(const char* what) const {
  if (!engine_ && !fused_) throw Error(std::string("cuda backend: ") + what + " before plan()");
}

bool CudaBackend::graph_ready() const {
  return fused_ ? fused_->graph_ready() : engine_ && engine_->graph_ready();
}

const std::string& CudaBackend::graph_note() const {
  static const std::string none = "no engine planned";
  return fused_ ? fused_->graph_note() : engine_ ? engine_->graph_note() : none;
}

std::vector<std::string> CudaBackend::choices() const {
  std::vector<std::string> out;
  if (!engine_ && !fused_) return out;
  if (fused_) out.push_back("engine: " + fused_->describe());
  if (!engine_note_.empty()) out.push_back("engine: graph (" + engine_note_ + ")");
  if (engine_ && opts_.verbose)
    for (auto& c : engine_->choices()) out.push_back(c);
  const std::string& note = graph_note();
  if (!note.empty() && note != "cuda graph") out.push_back("train_step: " + note);
  return out;
}

void CudaBackend::check_plan(const Model& model, int max_batch) const {
  const MemoryEstimate need = graph_engine_memory(model, max_batch);
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  // What this backend holds now for an earlier plan goes before a new plan allocates.
  const int64_t held = planned_bytes_;
  const int64_t have = int64_t(free_bytes) + held;
  if (need.total() > have)
    throw InputError(model.spec.source + ": the CUDA engine needs at least " +
                     bytes_text(need.total()) + " at batch " + std::to_string(max_batch) +
                     " (parameters, gradients and Adam state " + bytes_text(need.parameters) +
                     ", activations " + bytes_text(need.activations) +
                     ", without the convolution workspace), " + bytes_text(have) + " free on " +
                     state_.description());
}

void CudaBackend::plan(const Model& model, int max_batch) {
  const StepPlan plan = make_plan(model, max_batch);  // refuses what no engine runs, first
  planned_bytes_ = graph_engine_memory(model, max_batch).total();
  CUDA_CHECK(cudaStreamSynchronize(state_.stream()));
  engine_.reset();  // their graphs and buffers go before the new ones are taken
  fused_.reset();
  engine_note_.clear();
  state_.plan(model, max_batch);
  if (opts_.engine == "fused" || opts_.engine == "auto") {
    std::string why;
    auto program = fused::make_program(model, plan, &why);
    if (program) why = FusedEngine::why_not(state_, *program, max_batch);
    if (why.empty()) {
      try {
        fused_ = std::make_unique<FusedEngine>(state_, plan, std::move(*program), tuning_.graphs,
                                               opts_.fused_blocks, tuning_.fused_eval_chunk);
      } catch (const InputError&) {
        throw;
      } catch (const Error& e) {  // an allocation or attribute the device refused
        CUDA_CHECK(cudaStreamSynchronize(state_.stream()));
        why = e.what();
      }
    }
    if (!fused_) engine_note_ = "the fused engine cannot run this model: " + why;
  }
  if (!fused_) engine_ = std::make_unique<GraphEngine>(state_, plan, tuning_.graphs);
  train_images_ = 0;
}

void CudaBackend::train_step(int64_t begin, int count, int64_t t, const Hyper& hyper) {
  require_plan("train_step");
  state_.check_step(begin, count, t);
  const float lr_t = float(adam_step_size(hyper.lr, hyper.beta1, hyper.beta2, t));
  if (fused_) fused_->train_step(begin, count, lr_t, hyper);
  else engine_->train_step(begin, count, lr_t, hyper);
  train_images_ += count;
}

int CudaBackend::steps_per_call() const {
  return fused_ && fused_->multi_step() ? opts_.steps_per_launch : 1;
}

void CudaBackend::train_steps(int64_t begin, int count, int64_t t, std::span<const Hyper> hypers) {
  require_plan("train_steps");
  if (hypers.empty()) return;
  if (!fused_ || hypers.size() == 1) return Backend::train_steps(begin, count, t, hypers);
  const int64_t n = int64_t(hypers.size());
  state_.check_step(begin + (n - 1) * count, count, t + n - 1);  // the last step, and so all
  state_.check_step(begin, count, t);
  std::vector<StepParams> sp(hypers.size());
  for (int64_t i = 0; i < n; ++i) {
    const Hyper& h = hypers[size_t(i)];
    StepParams& p = sp[size_t(i)];
    p.begin = begin + i * count;
    p.lr_t = float(adam_step_size(h.lr, h.beta1, h.beta2, t + i));
    p.beta1 = h.beta1;
    p.beta2 = h.beta2;
    p.eps = h.eps;
  }
  fused_->train_steps(count, sp);
  train_images_ += n * count;
}

Metrics CudaBackend::train_metrics() {
  require_plan("train_metrics");
  return state_.read_metrics(DeviceState::kTrain, train_images_);
}

void CudaBackend::reset_train_metrics() {
  require_plan("reset_train_metrics");
  state_.reset_metrics(DeviceState::kTrain);
  train_images_ = 0;
}

Metrics CudaBackend::evaluate(Split split, int64_t limit) {
  require_plan("evaluate");
  const StoredSplit& data = state_.split(split);
  const int64_t total = limit > 0 ? std::min(limit, data.count) : data.count;
  if (fused_) fused_->evaluate(data, total);
  else engine_->evaluate(data, total);
  return state_.read_metrics(DeviceState::kEval, total);
}

void CudaBackend::predict(const ImageSet& images, std::span<float> probabilities) {
  require_plan("predict");
  check_predict("cuda backend", state_.model(), images, probabilities);
  if (fused_) fused_->predict(images, probabilities);
  else engine_->predict(images, probabilities);
}

}  // namespace splitconv::gpu
