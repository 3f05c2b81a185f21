// The CPU backend: the Backend interface over the CPU engine (cpu_engine.h), which runs the
// step plan; this file holds the uploaded data, the epoch's order and the argument checks.
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <thread>

#include "cpu/cpu_engine.h"
#include "cpu/cpu_ops.h"
#include "splitconv/backend.h"
#include "splitconv/error.h"
#include "splitconv/format.h"
#include "splitconv/tensor.h"

namespace splitconv {
namespace {

using Floats = cpu::AlignedFloats;

// Physical memory available to a new allocation: MemAvailable of /proc/meminfo where there is
// one (free memory plus what the kernel can reclaim), else the free pages sysconf reports;
// 0 when neither is known.
int64_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * 1024;
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? int64_t(pages) * page : 0;
}

struct Stored {  // an uploaded split: uint8 pixels, normalised when a batch is gathered
  int64_t count = 0;
  int h = 0, w = 0, c = 0;
  std::vector<uint8_t> pixels, labels;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& opts) : opts_(opts) {
    if (opts.threads < 0 || opts.threads > kMaxThreads)
      throw InputError("threads " + std::to_string(opts.threads) + ": expected 1 to " +
                       thousands(kMaxThreads) + " (0: all cores)");
    threads_ = opts.threads > 0 ? opts.threads : int(std::thread::hardware_concurrency());
    threads_ = std::max(threads_, 1);
  }
  std::string name() const override { return "cpu"; }
  std::string description() const override {
    return "CPU, " + std::to_string(threads_) + (threads_ == 1 ? " thread" : " threads");
  }
  std::vector<std::string> choices() const override { return choices_; }

  void check_plan(const Model& model, int max_batch) const override;
  std::optional<MemoryEstimate> memory_estimate(const Model& model, int max_batch) const override {
    const cpu::CpuMemory m = cpu::CpuEngine::memory_needed(model, max_batch, threads_);
    return MemoryEstimate{m.parameters, m.activations, m.workspace};
  }
  void plan(const Model& model, int max_batch) override;
  void upload(Split split, const ImageSet& set) override;

  void set_parameters(std::span<const float> p) override { copy_in(p, engine("parameters").params, "parameters"); }
  void get_parameters(std::span<float> p) override { copy_out(engine("parameters").params, p, "parameters"); }
  void set_moments(std::span<const float> m, std::span<const float> v) override {
    copy_in(m, engine("moments").m, "first moments");
    copy_in(v, engine("moments").v, "second moments");
  }
  void get_moments(std::span<float> m, std::span<float> v) override {
    copy_out(engine("moments").m, m, "first moments");
    copy_out(engine("moments").v, v, "second moments");
  }

  void set_order(std::span<const int32_t> order) override {
    order_.assign(order.begin(), order.end());
  }
  void train_step(int64_t begin, int count, int64_t t, const Hyper& hyper) override;
  Metrics train_metrics() override { return train_metrics_; }
  void reset_train_metrics() override { train_metrics_ = {}; }
  Metrics evaluate(Split split, int64_t limit) override;
  void predict(const ImageSet& images, std::span<float> probabilities) override;

 private:
  cpu::CpuEngine& engine(const char* what = "this") const {
    if (!engine_) throw Error(std::string("cpu backend: ") + what + " before plan()");
    return *engine_;
  }
  void copy_in(std::span<const float> from, Floats& to, const char* what);
  void copy_out(const Floats& from, std::span<float> to, const char* what);
  const Stored& split_data(Split split, bool labels) const;

  BackendOptions opts_;
  int threads_ = 1;
  std::unique_ptr<cpu::CpuEngine> engine_;
  std::vector<std::string> choices_;
  Stored train_, test_;
  std::vector<int32_t> order_;
  Metrics train_metrics_;
};

void CpuBackend::check_plan(const Model& model, int max_batch) const {
  const cpu::CpuMemory need = cpu::CpuEngine::memory_needed(model, max_batch, threads_);
  const int64_t have = available_memory();
  if (have > 0 && need.total() > have)
    throw InputError(model.spec.source + ": the CPU engine needs " + bytes_text(need.total()) +
                     " at batch " + std::to_string(max_batch) + " with " +
                     std::to_string(threads_) + (threads_ == 1 ? " thread" : " threads") +
                     " (parameters, gradients and Adam state " + bytes_text(need.parameters) +
                     ", activations " + bytes_text(need.activations) + ", workspace " +
                     bytes_text(need.workspace) + "), " + bytes_text(have) + " available");
}

void CpuBackend::plan(const Model& model, int max_batch) {
  engine_.reset();  // the old engine's memory goes before the new one's is taken
  check_plan(model, max_batch);
  engine_ = std::make_unique<cpu::CpuEngine>(model, max_batch, threads_);
  choices_.clear();
  if (opts_.verbose)
    for (const PlanOp& op : engine_->plan().forward)
      if (op.kind == LayerKind::Conv)
        choices_.push_back(model.layers[size_t(op.layer)].name() + ": im2col + Eigen GEMM");
  train_metrics_ = {};
}

void CpuBackend::upload(Split split, const ImageSet& set) {
  if (int64_t(set.pixels.size()) != set.count * set.image_size() ||
      (!set.labels.empty() && int64_t(set.labels.size()) != set.count)) {
    throw Error("cpu backend: image set sizes disagree with its count");
  }
  Stored& s = split == Split::Train ? train_ : test_;
  s = {set.count, set.h, set.w, set.c, set.pixels, set.labels};
}

void CpuBackend::copy_in(std::span<const float> from, Floats& to, const char* what) {
  if (from.size() != to.size()) {
    throw Error(std::string("cpu backend: ") + what + " of " + std::to_string(from.size()) +
                " floats, expected " + std::to_string(to.size()));
  }
  std::copy(from.begin(), from.end(), to.begin());
}

void CpuBackend::copy_out(const Floats& from, std::span<float> to, const char* what) {
  if (from.size() != to.size()) {
    throw Error(std::string("cpu backend: room for ") + what + " is " + std::to_string(to.size()) +
                " floats, expected " + std::to_string(from.size()));
  }
  std::copy(from.begin(), from.end(), to.begin());
}

const Stored& CpuBackend::split_data(Split split, bool labels) const {
  const Stored& s = split == Split::Train ? train_ : test_;
  const char* name = split == Split::Train ? "train" : "test";
  if (s.count == 0) throw Error(std::string("cpu backend: no ") + name + " split uploaded");
  const Shape& in = engine().plan().input;
  if (s.h != in.h || s.w != in.w || s.c != in.c) {
    throw Error(std::string("cpu backend: the ") + name + " images do not match the model input");
  }
  if (labels && s.labels.empty()) {
    throw Error(std::string("cpu backend: the ") + name + " split has no labels");
  }
  return s;
}

void CpuBackend::train_step(int64_t begin, int count, int64_t t, const Hyper& hyper) {
  cpu::CpuEngine& e = engine("train_step");
  const Stored& data = split_data(Split::Train, true);
  const int max_batch = e.plan().max_batch;
  if (count < 1 || count > max_batch) {
    throw Error("cpu backend: a step of " + std::to_string(count) + " images, planned for 1 to " +
                std::to_string(max_batch));
  }
  if (begin < 0 || begin + count > int64_t(order_.size())) {
    throw Error("cpu backend: step images [" + std::to_string(begin) + ", " +
                std::to_string(begin + count) + ") outside the order of " +
                std::to_string(order_.size()));
  }
  if (t < 1) throw Error("cpu backend: Adam steps count from 1");
  for (int i = 0; i < count; ++i) {
    const int32_t index = order_[size_t(begin + i)];
    if (index < 0 || index >= data.count) {
      throw Error("cpu backend: order names image " + std::to_string(index) + " of " +
                  std::to_string(data.count));
    }
  }
  const double lr_t = adam_step_size(hyper.lr, hyper.beta1, hyper.beta2, t);
  e.train_step(data.pixels.data(), data.labels.data(), order_.data() + begin, count, float(lr_t),
               hyper, &train_metrics_);
}

Metrics CpuBackend::evaluate(Split split, int64_t limit) {
  cpu::CpuEngine& e = engine("evaluate");
  const Stored& data = split_data(split, true);
  const int64_t total = limit > 0 ? std::min(limit, data.count) : data.count;
  const int64_t image = e.plan().input.size();
  const int max_batch = e.plan().max_batch;
  Metrics result;
  for (int64_t b = 0; b < total; b += max_batch) {
    const int count = int(std::min<int64_t>(max_batch, total - b));
    e.slices(count, [&](int lo, int n, int thread) {
      e.gather(data.pixels.data() + b * image, data.labels.data() + b, nullptr, lo, n);
      e.forward(lo, n, thread);
      e.loss(lo, n, thread, 0.0f);
    });
    e.add_partials(count, &result);
  }
  return result;
}

void CpuBackend::predict(const ImageSet& images, std::span<float> probabilities) {
  cpu::CpuEngine& e = engine("predict");
  check_predict("cpu backend", e.model(), images, probabilities);
  const int classes = e.plan().classes;
  const int64_t image = e.plan().input.size();
  const int max_batch = e.plan().max_batch;
  for (int64_t b = 0; b < images.count; b += max_batch) {
    const int count = int(std::min<int64_t>(max_batch, images.count - b));
    e.slices(count, [&](int lo, int n, int thread) {
      e.gather(images.pixels.data() + b * image, nullptr, nullptr, lo, n);
      e.forward(lo, n, thread);
      cpu::softmax(n, classes, e.logits(lo), probabilities.data() + (b + lo) * classes);
    });
  }
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& opts) {
  return std::make_unique<CpuBackend>(opts);
}

}  // namespace splitconv
