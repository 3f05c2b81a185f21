// The CPU backend: the reference implementation of a training step. A batch is split into one
// contiguous slice per thread; each thread runs forward, loss and backward on its slice (the
// ops are single-threaded), writing parameter gradients into its own flat buffer. The buffers
// are summed in thread order, so a step is deterministic for a given thread count.
#include <Eigen/Core>
#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

#include "cpu/aligned.h"
#include "cpu/cpu_ops.h"
#include "cpu/workers.h"
#include "splitconv/backend.h"
#include "splitconv/error.h"
#include "splitconv/tensor.h"

namespace splitconv {
namespace {

using cpu::Aligned64;
using Floats = std::vector<float, Aligned64<float>>;

struct Stored {  // an uploaded split: uint8 pixels, normalised when a batch is gathered
  int64_t count = 0;
  int h = 0, w = 0, c = 0;
  std::vector<uint8_t> pixels, labels;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const BackendOptions& opts) : opts_(opts) {
    threads_ = opts.threads > 0 ? opts.threads : int(std::thread::hardware_concurrency());
    threads_ = std::max(threads_, 1);
  }
  std::string name() const override { return "cpu"; }
  std::string description() const override {
    return "CPU, " + std::to_string(threads_) + (threads_ == 1 ? " thread" : " threads");
  }
  std::vector<std::string> choices() const override { return choices_; }

  void plan(const Model& model, int max_batch) override;
  void upload(Split split, const ImageSet& set) override;

  void set_parameters(std::span<const float> p) override { copy_in(p, params_, "parameters"); }
  void get_parameters(std::span<float> p) override { copy_out(params_, p, "parameters"); }
  void set_moments(std::span<const float> m, std::span<const float> v) override {
    copy_in(m, m_, "first moments");
    copy_in(v, v_, "second moments");
  }
  void get_moments(std::span<float> m, std::span<float> v) override {
    copy_out(m_, m, "first moments");
    copy_out(v_, v, "second moments");
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
  void require_plan(const char* what) const {
    if (!planned_) throw Error(std::string("cpu backend: ") + what + " before plan()");
  }
  void copy_in(std::span<const float> from, Floats& to, const char* what);
  void copy_out(const Floats& from, std::span<float> to, const char* what);
  const Stored& split_data(Split split, bool labels) const;
  // Runs f(lo, n, thread) on one contiguous slice of [0, count) per thread.
  template <class F>
  void slices(int count, F f);
  // Adds the per-thread metrics of the last section of `count` images, in thread order.
  void add_partials(int count, Metrics* into) const {
    for (int p = 0; p < std::min(threads_, count); ++p) {
      into->loss_sum += partial_[p].loss_sum;
      into->correct += partial_[p].correct;
      into->count += partial_[p].count;
    }
  }
  void forward(int lo, int n, int thread);   // images [lo, lo+n) of act_[0] → logits
  void backward(int lo, int n, int thread);  // from grad_.back() into grads_[thread]
  float* weight(const Layer& l, Floats& flat) const {
    return flat.data() + model_.slots[l.weight].offset;
  }
  float* bias(const Layer& l, Floats& flat) const {
    return flat.data() + model_.slots[l.bias].offset;
  }

  BackendOptions opts_;
  int threads_ = 1;
  bool planned_ = false;
  Model model_;
  int max_batch_ = 0, classes_ = 0;
  std::vector<Floats> act_store_, grad_store_;
  std::vector<float*> act_, grad_;             // per layer output (index 0: the input batch)
  std::vector<std::vector<int32_t>> argmax_;   // per pooling layer
  std::vector<bool> need_dx_;                  // some earlier layer has parameters
  std::vector<Floats> workspace_;  // per thread
  Floats params_, m_, v_;
  std::vector<Floats> grads_;  // per thread; grads_[0] gets the sum
  std::vector<Metrics> partial_;           // per thread
  std::vector<int32_t> iota_;              // 0, 1, … max_batch−1
  std::vector<uint8_t> batch_labels_;
  std::vector<std::string> choices_;
  std::unique_ptr<cpu::Workers> workers_;
  Stored train_, test_;
  std::vector<int32_t> order_;
  Metrics train_metrics_;
};

void CpuBackend::plan(const Model& model, int max_batch) {
  if (max_batch < 1) throw Error("cpu backend: max_batch must be at least 1");
  if (model.layers.empty()) throw Error("cpu backend: the model has no layers");
  const Layer& last = model.layers.back();
  if (last.kind() != LayerKind::Dense || last.spec.activation == Activation::Relu ||
      last.out.size() != model.classes) {
    throw Error("cpu backend: the last layer must be dense with softmax or no activation");
  }
  model_ = model;
  max_batch_ = max_batch;
  classes_ = model.classes;
  const size_t layers = model.layers.size();
  auto batch_of = [&](const Shape& s) { return size_t(max_batch) * size_t(s.size()); };
  act_store_.reserve(layers + 1);  // act_ and grad_ point into these
  grad_store_.reserve(layers + 1);
  act_store_.assign(1, Floats(batch_of(model.input)));
  grad_store_.assign(1, Floats(batch_of(model.input)));
  act_.assign(1, act_store_[0].data());
  grad_.assign(1, grad_store_[0].data());
  argmax_.assign(layers, {});
  need_dx_.assign(layers, false);
  choices_.clear();
  int64_t workspace = 0;
  bool params_before = false;
  for (size_t i = 0; i < layers; ++i) {
    const Layer& l = model.layers[i];
    need_dx_[i] = params_before;
    params_before = params_before || l.weight >= 0;
    if (l.spec.activation == Activation::Softmax && i + 1 != layers) {
      throw Error("cpu backend: softmax is only supported on the last layer (" + l.name() + ")");
    }
    const bool has_params = l.kind() == LayerKind::Conv || l.kind() == LayerKind::Dense;
    if (has_params && (l.weight < 0 || l.bias < 0)) {
      throw Error("cpu backend: " + l.name() + " has no weight or bias slot");
    }
    if (l.kind() == LayerKind::Flatten) {  // NCHW is already the flattened order: a view
      act_.push_back(act_.back());
      grad_.push_back(grad_.back());
      continue;
    }
    act_store_.emplace_back(batch_of(l.out));
    grad_store_.emplace_back(batch_of(l.out));
    act_.push_back(act_store_.back().data());
    grad_.push_back(grad_store_.back().data());
    if (l.kind() == LayerKind::MaxPool) argmax_[i].resize(batch_of(l.out));
    if (l.kind() == LayerKind::Conv) {
      workspace = std::max(workspace, cpu::conv_workspace(conv_geom(l, 1)));
      choices_.push_back(l.name() + ": im2col + Eigen GEMM");
    }
  }
  if (!opts_.verbose) choices_.clear();
  workspace_.assign(threads_, Floats(workspace));
  const size_t floats = size_t(model.param_floats);
  params_.assign(floats, 0.0f);
  m_.assign(floats, 0.0f);
  v_.assign(floats, 0.0f);
  grads_.assign(threads_, Floats(floats, 0.0f));
  partial_.assign(threads_, {});
  iota_.resize(max_batch);
  std::iota(iota_.begin(), iota_.end(), 0);
  batch_labels_.assign(max_batch, 0);
  // Eigen's GEMM keeps the CPU's cache sizes in a static set up on first use: set it up here,
  // before threads share it.
  Eigen::initParallel();
  if (!workers_) workers_ = std::make_unique<cpu::Workers>(threads_);
  train_metrics_ = {};
  planned_ = true;
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
  require_plan(what);
  if (from.size() != to.size()) {
    throw Error(std::string("cpu backend: ") + what + " of " + std::to_string(from.size()) +
                " floats, expected " + std::to_string(to.size()));
  }
  std::copy(from.begin(), from.end(), to.begin());
}

void CpuBackend::copy_out(const Floats& from, std::span<float> to, const char* what) {
  require_plan(what);
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
  if (s.h != model_.input.h || s.w != model_.input.w || s.c != model_.input.c) {
    throw Error(std::string("cpu backend: the ") + name + " images do not match the model input");
  }
  if (labels && s.labels.empty()) {
    throw Error(std::string("cpu backend: the ") + name + " split has no labels");
  }
  return s;
}

template <class F>
void CpuBackend::slices(int count, F f) {
  const int parts = std::min(threads_, count);
  auto part = [&](int i) {
    const int lo = int(int64_t(count) * i / parts), hi = int(int64_t(count) * (i + 1) / parts);
    f(lo, hi - lo, i);
  };
  workers_->run(parts, part);
}

void CpuBackend::forward(int lo, int n, int thread) {
  float* ws = workspace_[thread].data();
  for (size_t i = 0; i < model_.layers.size(); ++i) {
    const Layer& l = model_.layers[i];
    const float* x = act_[i] + int64_t(lo) * l.in.size();  // n×in
    float* y = act_[i + 1] + int64_t(lo) * l.out.size();   // n×out
    switch (l.kind()) {
      case LayerKind::Conv:
        cpu::conv_forward(conv_geom(l, n), x, weight(l, params_), bias(l, params_), y, ws);
        break;
      case LayerKind::MaxPool:
        cpu::maxpool_forward(pool_geom(l, n), x, y, argmax_[i].data() + int64_t(lo) * l.out.size());
        break;
      case LayerKind::Flatten:
        break;
      case LayerKind::Dense:
        cpu::dense_forward(dense_geom(l, n), x, weight(l, params_), bias(l, params_), y);
        break;
    }
    if (l.spec.activation == Activation::Relu) cpu::relu_forward(int64_t(n) * l.out.size(), y);
  }
}

void CpuBackend::backward(int lo, int n, int thread) {
  float* ws = workspace_[thread].data();
  Floats& g = grads_[thread];
  for (size_t i = model_.layers.size(); i-- > 0;) {
    const Layer& l = model_.layers[i];
    const float* x = act_[i] + int64_t(lo) * l.in.size();
    const float* y = act_[i + 1] + int64_t(lo) * l.out.size();
    float* dy = grad_[i + 1] + int64_t(lo) * l.out.size();
    // No layer before this one has parameters: its input gradient would go unused.
    float* dx = need_dx_[i] ? grad_[i] + int64_t(lo) * l.in.size() : nullptr;
    if (l.spec.activation == Activation::Relu) cpu::relu_backward(int64_t(n) * l.out.size(), y, dy);
    switch (l.kind()) {
      case LayerKind::Conv:
        cpu::conv_backward_filter(conv_geom(l, n), x, dy, weight(l, g), bias(l, g), ws);
        if (dx) cpu::conv_backward_data(conv_geom(l, n), dy, weight(l, params_), dx, ws);
        break;
      case LayerKind::MaxPool:
        if (dx) {
          cpu::maxpool_backward(pool_geom(l, n), dy, argmax_[i].data() + int64_t(lo) * l.out.size(),
                                dx);
        }
        break;
      case LayerKind::Flatten:
        break;
      case LayerKind::Dense:
        cpu::dense_backward(dense_geom(l, n), x, weight(l, params_), dy, dx, weight(l, g),
                            bias(l, g));
        break;
    }
  }
}

void CpuBackend::train_step(int64_t begin, int count, int64_t t, const Hyper& hyper) {
  require_plan("train_step");
  const Stored& data = split_data(Split::Train, true);
  if (count < 1 || count > max_batch_) {
    throw Error("cpu backend: a step of " + std::to_string(count) + " images, planned for 1 to " +
                std::to_string(max_batch_));
  }
  if (begin < 0 || begin + count > int64_t(order_.size())) {
    throw Error("cpu backend: step images [" + std::to_string(begin) + ", " +
                std::to_string(begin + count) + ") outside the order of " +
                std::to_string(order_.size()));
  }
  if (t < 1) throw Error("cpu backend: Adam steps count from 1");
  for (int i = 0; i < count; ++i) {
    const int32_t index = order_[begin + i];
    if (index < 0 || index >= data.count) {
      throw Error("cpu backend: order names image " + std::to_string(index) + " of " +
                  std::to_string(data.count));
    }
  }
  const int64_t image = model_.input.size();
  const float scale = 1.0f / float(count);  // mean cross-entropy over the batch
  slices(count, [&](int lo, int n, int thread) {
    const int32_t* order = order_.data() + begin + lo;
    cpu::gather_batch(data.pixels.data(), image, order, n, act_[0] + lo * image);
    for (int r = 0; r < n; ++r) batch_labels_[lo + r] = data.labels[order[r]];
    forward(lo, n, thread);
    Metrics& part = partial_[thread];
    part = {0.0, 0, n};
    cpu::softmax_xent(n, classes_, act_.back() + int64_t(lo) * classes_, &batch_labels_[lo],
                      grad_.back() + int64_t(lo) * classes_, scale, &part.loss_sum, &part.correct);
    backward(lo, n, thread);
  });
  add_partials(count, &train_metrics_);
  float* sum = grads_[0].data();
  for (int p = 1; p < std::min(threads_, count); ++p) {
    const float* part = grads_[p].data();
    for (size_t i = 0; i < grads_[p].size(); ++i) sum[i] += part[i];
  }
  const double lr_t = adam_step_size(hyper.lr, hyper.beta1, hyper.beta2, t);
  cpu::adam(int64_t(params_.size()), params_.data(), sum, m_.data(), v_.data(), float(lr_t),
            hyper.beta1, hyper.beta2, hyper.eps);
}

Metrics CpuBackend::evaluate(Split split, int64_t limit) {
  require_plan("evaluate");
  const Stored& data = split_data(split, true);
  const int64_t total = limit > 0 ? std::min(limit, data.count) : data.count;
  const int64_t image = model_.input.size();
  Metrics result;
  for (int64_t b = 0; b < total; b += max_batch_) {
    const int count = int(std::min<int64_t>(max_batch_, total - b));
    slices(count, [&](int lo, int n, int thread) {
      const uint8_t* pixels = data.pixels.data() + (b + lo) * image;
      cpu::gather_batch(pixels, image, iota_.data(), n, act_[0] + lo * image);
      forward(lo, n, thread);
      Metrics& part = partial_[thread];
      part = {0.0, 0, n};
      cpu::softmax_xent(n, classes_, act_.back() + int64_t(lo) * classes_,
                        data.labels.data() + b + lo, nullptr, 0.0f, &part.loss_sum, &part.correct);
    });
    add_partials(count, &result);
  }
  return result;
}

void CpuBackend::predict(const ImageSet& images, std::span<float> probabilities) {
  require_plan("predict");
  const Shape& in = model_.input;
  if (images.h != in.h || images.w != in.w || images.c != in.c ||
      int64_t(images.pixels.size()) != images.count * in.size()) {
    throw Error("cpu backend: the images to predict do not match the model input");
  }
  if (int64_t(probabilities.size()) != images.count * classes_) {
    throw Error("cpu backend: room for " + std::to_string(probabilities.size()) +
                " probabilities, expected " + std::to_string(images.count * classes_));
  }
  const int64_t image = in.size();
  for (int64_t b = 0; b < images.count; b += max_batch_) {
    const int count = int(std::min<int64_t>(max_batch_, images.count - b));
    slices(count, [&](int lo, int n, int thread) {
      const uint8_t* pixels = images.pixels.data() + (b + lo) * image;
      cpu::gather_batch(pixels, image, iota_.data(), n, act_[0] + lo * image);
      forward(lo, n, thread);
      cpu::softmax(n, classes_, act_.back() + int64_t(lo) * classes_,
                   probabilities.data() + (b + lo) * classes_);
    });
  }
}

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& opts) {
  return std::make_unique<CpuBackend>(opts);
}

}  // namespace splitconv
