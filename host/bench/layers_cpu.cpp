// `bench layers` on the CPU: the CPU engine's own pieces (cpu/cpu_engine.h), each run in one
// parallel section over the batch's slices as the engine's step runs them, timed by the host
// clock; the engine's whole step is timed in the same run, so the table shows what timing
// layers one by one adds (one hand-off to the threads per row).
#include <cstdio>
#include <numeric>

#include "bench/bench_internal.h"
#include "cpu/cpu_engine.h"
#include "splitconv/error.h"
#include "splitconv/tensor.h"
#include "splitconv/random.h"

namespace splitconv::bench {
namespace {

class CpuProbe final : public LayerProbe {
 public:
  CpuProbe(const Model& model, int batch, int threads, uint64_t seed)
      : e_(model, batch, threads), data_(random_images(model, batch, seed)),
        order_(size_t(batch)) {
    std::iota(order_.begin(), order_.end(), 0);
    const std::vector<float> init = init_parameters(model, 1);
    e_.params.assign(init.begin(), init.end());
  }
  const Model& model() const override { return e_.model(); }
  const StepPlan& plan() const override { return e_.plan(); }
  std::string device() const override { return "cpu"; }
  std::string description() const override {
    const int t = e_.threads();
    return "CPU, " + std::to_string(t) + (t == 1 ? " thread" : " threads");
  }
  std::string update_kind() const override { return "grad sum + adam"; }
  void gather() override {
    e_.slices(batch(), [&](int lo, int n, int) {
      e_.gather(data_.pixels.data(), data_.labels.data(), order_.data(), lo, n);
    });
  }
  void forward(const PlanOp& op) override {
    e_.slices(batch(), [&](int lo, int n, int t) { e_.forward_layer(op, lo, n, t); });
  }
  void loss() override {
    const float scale = 1.0f / float(batch());
    e_.slices(batch(), [&](int lo, int n, int t) { e_.loss(lo, n, t, scale); });
  }
  void backward(const PlanOp& op) override {
    e_.slices(batch(), [&](int lo, int n, int t) { e_.backward_layer(op, lo, n, t); });
  }
  void update() override {
    e_.update(batch(), 1e-4f, Hyper{});
  }
  void step() override {
    const Hyper h;
    const float lr_t = float(adam_step_size(h.lr, h.beta1, h.beta2, ++t_));
    e_.train_step(data_.pixels.data(), data_.labels.data(), order_.data(), batch(), lr_t, h,
                  nullptr);
  }
  double time_ms(const std::function<void()>& run, const TimingOptions& o) override {
    return median_ms(run, o);
  }
  double handoff_ms(const TimingOptions& o) override {
    return median_ms([&] { e_.slices(batch(), [](int, int, int) {}); }, o);
  }

 private:
  int batch() const { return e_.plan().max_batch; }
  cpu::CpuEngine e_;
  ImageSet data_;
  std::vector<int32_t> order_;
  int64_t t_ = 0;
};

}  // namespace

ImageSet random_images(const Model& model, int64_t count, uint64_t seed) {
  Rng rng(seed);
  ImageSet set;
  set.count = count;
  set.h = model.input.h, set.w = model.input.w, set.c = model.input.c;
  set.pixels.resize(size_t(count * set.image_size()));
  for (uint8_t& p : set.pixels) p = uint8_t(rng.below(256));
  set.labels.resize(size_t(count));
  for (uint8_t& l : set.labels) l = uint8_t(rng.below(uint64_t(model.classes)));
  return set;
}

LayerTime layer_row(const Layer& l) {
  LayerTime t;
  t.name = l.name();
  t.kind = to_string(l.kind());
  if (l.kind() == LayerKind::Conv || l.kind() == LayerKind::MaxPool) {
    char window[32];
    std::snprintf(window, sizeof window, " %dx%d", l.spec.kh, l.spec.kw);
    t.kind += window;
  }
  t.out = l.out;
  t.params = l.params;
  t.macs = l.macs;
  return t;
}

LayersResult bench_layers_cpu(const Model& model, int batch, const TimingOptions& o) {
  if (batch < 1) throw InputError("--batch must be positive");
  CpuProbe probe(model, batch, cpu_threads(o), o.seed);
  return time_layers(probe, o);
}

}  // namespace splitconv::bench
