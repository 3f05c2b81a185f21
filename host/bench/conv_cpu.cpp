// `bench conv` on the CPU: each side runs on the CPU engine as training runs a layer — its
// plan's conv ops over one slice of the batch per thread, one parallel section for the
// forward and one for the backward, the per-thread weight gradients summed in thread order —
// and is checked against the plain ops (cpu/cpu_ops.h) on the whole batch before it is timed.
#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>

#include "bench/bench_internal.h"
#include "cpu/cpu_engine.h"
#include "splitconv/error.h"

namespace splitconv::bench {
namespace {

// The engine's ops on slices of the batch: only the order of the sums (per-thread gradients,
// several images per GEMM, Eigen's kernels) differs from the reference, at the rounding level
// (~1e-7 relative); 1e-5 leaves room and still catches any misplaced image or slice.
constexpr double kCpuTolerance = 1e-5;

// One side run by the CPU engine (cpu/cpu_engine.h) on its plan of the side model, planned with
// the input's gradient (every conv computes its input gradient, as one inside a network does):
// the conv ops by the engine's forward_layer / backward_layer in one parallel section over the
// batch's slices each way, the per-thread weight gradients summed by the engine in thread
// order. The model's pooling head is planned but never run.
class CpuSide {
 public:
  CpuSide(const Model& model, int batch, int threads) : e_(model, batch, threads, true) {
    for (const PlanOp& op : e_.plan().forward)
      if (op.kind == LayerKind::Conv) convs_.push_back(op);
  }

  void load(const SideTensors& t) {
    std::copy(t.x.begin(), t.x.end(), e_.activation(0, 0));
    std::copy(t.dy.begin(), t.dy.end(), e_.gradient(convs_.back().y, 0));
    for (size_t i = 0; i < convs_.size(); ++i) {
      const Layer& l = layer(i);
      std::copy(t.w[i].begin(), t.w[i].end(), e_.slot(e_.params, l.weight));
      std::copy(t.b[i].begin(), t.b[i].end(), e_.slot(e_.params, l.bias));
    }
  }

  void forward(int n) {
    e_.slices(n, [&](int lo, int count, int thread) {
      for (const PlanOp& op : convs_) e_.forward_layer(op, lo, count, thread);
    });
  }

  void backward(int n) {
    e_.slices(n, [&](int lo, int count, int thread) {
      for (size_t i = convs_.size(); i-- > 0;) e_.backward_layer(convs_[i], lo, count, thread);
    });
    e_.sum_gradients(n);
  }

  // The first n images' activations and input gradient, and the weight gradients.
  SideOutputs outputs(int n) {
    SideOutputs o;
    auto floats = [](const float* p, int64_t count) { return std::vector<float>(p, p + count); };
    for (size_t i = 0; i < convs_.size(); ++i) {
      const Layer& l = layer(i);
      o.act.push_back(floats(e_.activation(convs_[i].y, 0), int64_t(n) * l.out.size()));
      o.dw.push_back(floats(e_.slot(e_.gradients(0), l.weight), slot(l.weight).size));
      o.db.push_back(floats(e_.slot(e_.gradients(0), l.bias), slot(l.bias).size));
    }
    o.dx = floats(e_.gradient(0, 0), int64_t(n) * layer(0).in.size());
    return o;
  }

  // The backward is checked on the reference's activations, so that a ReLU which rounds to
  // the other side of zero here cannot flip a gradient; dy is restored (it is masked in place).
  void set_backward_inputs(const SideOutputs& ref, const SideTensors& t) {
    for (size_t i = 0; i < convs_.size(); ++i)
      std::copy(ref.act[i].begin(), ref.act[i].end(), e_.activation(convs_[i].y, 0));
    std::copy(t.dy.begin(), t.dy.end(), e_.gradient(convs_.back().y, 0));
  }

 private:
  const Layer& layer(size_t i) const { return e_.model().layers[size_t(convs_[i].layer)]; }
  const ParamSlot& slot(int index) const { return e_.model().slots[size_t(index)]; }

  cpu::CpuEngine e_;
  std::vector<PlanOp> convs_;  // the plan's conv ops, in forward order
};

// One side, checked: the forward on the first vb images against the reference, then the
// backward from the reference's activations. Times are filled in later, with the other side's.
struct CheckedSide {
  std::unique_ptr<CpuSide> run;
  SideTensors tensors;
  VariantResult result;
};

CheckedSide check_side(const std::string& side, const Model& model,
                       const std::vector<Layer>& layers, const ConvCase& s, int vb, int threads,
                       const TimingOptions& o) {
  CheckedSide c;
  VariantResult& v = c.result;
  v.side = side;
  v.impl = "cpu";
  v.tolerance = kCpuTolerance;
  c.tensors = random_tensors(layers, s.batch, o.seed + (side == "nxn" ? 0 : 1));
  const SideOutputs ref = reference_outputs(layers, vb, c.tensors);
  c.run = std::make_unique<CpuSide>(model, s.batch, threads);
  CpuSide& run = *c.run;
  run.load(c.tensors);
  run.forward(vb);
  SideOutputs got = run.outputs(vb);
  run.set_backward_inputs(ref, c.tensors);
  run.backward(vb);
  const SideOutputs back = run.outputs(vb);
  got.dx = back.dx, got.dw = back.dw, got.db = back.db;
  if (o.tamper) o.tamper(side, v.impl, got);
  const Mismatch mm = compare_outputs(got, ref);
  v.error = mm.error;
  v.worst = mm.tensor;
  v.valid = mm.error <= v.tolerance;
  run.load(c.tensors);
  return c;
}

int64_t sum_of(const std::vector<Layer>& side, int64_t Layer::*field) {
  int64_t total = 0;
  for (const Layer& l : side) total += l.*field;
  return total;
}

}  // namespace

ConvBenchResult new_result(const ConvCase& s, const std::string& device) {
  const std::vector<Layer> nxn = nxn_layers(s), pair = pair_layers(s);
  ConvBenchResult r;
  r.shape = s;
  r.device = device;
  r.params_nxn = sum_of(nxn, &Layer::params);
  r.params_pair = sum_of(pair, &Layer::params);
  r.macs_nxn = sum_of(nxn, &Layer::macs);
  r.macs_pair = sum_of(pair, &Layer::macs);
  return r;
}

int cpu_threads(const TimingOptions& o) {
  return std::max(1, o.threads > 0 ? o.threads : int(std::thread::hardware_concurrency()));
}

std::vector<double> median_ms(const std::vector<std::function<void()>>& runs,
                              const TimingOptions& o) {
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  const size_t k = runs.size();
  std::vector<int> reps(k, 1);
  for (size_t j = 0; j < k; ++j) {
    for (int i = 0; i < o.warmups; ++i) runs[j]();
    // Too short to time alone: repeat the call within each sample.
    for (double ms = 0; reps[j] < 1000;) {
      const Clock::time_point t0 = Clock::now();
      for (int i = 0; i < reps[j]; ++i) runs[j]();
      ms = ms_since(t0);
      if (ms >= o.min_sample_ms) break;
      reps[j] = std::min(1000, int(reps[j] * std::max(2.0, 1.2 * o.min_sample_ms / std::max(ms, 1e-3))));
    }
  }
  const Clock::time_point begin = Clock::now();
  std::vector<std::vector<double>> samples(k);
  while (int(samples[0].size()) < std::max(o.runs, 1)) {
    if (int(samples[0].size()) >= o.min_runs && ms_since(begin) >= 1000.0 * o.budget_s) break;
    for (size_t j = 0; j < k; ++j) {
      const Clock::time_point t0 = Clock::now();
      for (int i = 0; i < reps[j]; ++i) runs[j]();
      samples[j].push_back(ms_since(t0) / reps[j]);
    }
  }
  std::vector<double> medians;
  for (auto& v : samples) {
    std::sort(v.begin(), v.end());
    medians.push_back(v[v.size() / 2]);
  }
  return medians;
}

double median_ms(const std::function<void()>& run, const TimingOptions& o) {
  return median_ms(std::vector<std::function<void()>>{run}, o)[0];
}

ConvBenchResult bench_conv_cpu(const ConvCase& s, const TimingOptions& o) {
  check_case(s);
  const std::vector<Layer> nxn = nxn_layers(s), pair = pair_layers(s);
  const int threads = cpu_threads(o);
  ConvBenchResult r = new_result(s, "cpu");
  r.description = "CPU, " + std::to_string(threads) + (threads == 1 ? " thread" : " threads");
  // At least one image per thread, so that the slices and the gradient sums are checked too.
  r.validated_batch = validation_batch(s, threads);
  std::vector<CheckedSide> sides;
  sides.push_back(check_side("nxn", nxn_model(s), nxn, s, r.validated_batch, threads, o));
  sides.push_back(check_side("pair", pair_model(s), pair, s, r.validated_batch, threads, o));
  // The valid sides are timed in alternation, sample by sample: a drift of the machine (another
  // process, the clock) then moves both, and their ratio keeps.
  std::vector<std::function<void()>> forward, train;
  std::vector<VariantResult*> timed;
  for (CheckedSide& c : sides) {
    if (!c.result.valid) continue;
    CpuSide* run = c.run.get();
    forward.push_back([run, &s] { run->forward(s.batch); });
    train.push_back([run, &s] {
      run->forward(s.batch);
      run->backward(s.batch);
    });
    timed.push_back(&c.result);
  }
  if (!timed.empty()) {
    const std::vector<double> f = median_ms(forward, o), t = median_ms(train, o);
    for (size_t i = 0; i < timed.size(); ++i) timed[i]->forward_ms = f[i], timed[i]->train_ms = t[i];
  }
  for (CheckedSide& c : sides) r.variants.push_back(c.result);
  return r;
}

}  // namespace splitconv::bench
