// `bench conv` on the CPU: each side runs as the CPU backend runs a layer — the batch split
// into one slice per thread, the engine's single-threaded ops (cpu/engine_ops.h) on each
// slice, one parallel section for the forward and one for the backward, the per-thread weight
// gradients summed in thread order — and is checked against the plain ops (cpu/cpu_ops.h) on
// the whole batch before it is timed.
#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>

#include "bench/bench_internal.h"
#include "cpu/aligned.h"
#include "cpu/cpu_ops.h"
#include "cpu/engine_ops.h"
#include "cpu/workers.h"
#include "splitconv/error.h"

namespace splitconv::bench {
namespace {

using cpu::AlignedFloats;

// The engine's ops on slices of the batch: only the order of the sums (per-thread gradients,
// several images per GEMM, Eigen's kernels) differs from the reference, at the rounding level
// (~1e-7 relative); 1e-5 leaves room and still catches any misplaced image or slice.
constexpr double kCpuTolerance = 1e-5;

class CpuSide {
 public:
  CpuSide(std::vector<Layer> layers, int batch, cpu::Workers& workers)
      : layers_(std::move(layers)), workers_(workers) {
    const int threads = workers.threads();
    act_.emplace_back(size_t(batch) * size_t(layers_.front().in.size()));
    grad_.emplace_back(act_[0].size());
    const int slice = (batch + threads - 1) / threads;
    int64_t ws = 0;
    for (const Layer& l : layers_) {
      act_.emplace_back(size_t(batch) * size_t(l.out.size()));
      grad_.emplace_back(act_.back().size());
      const ConvGeom g = conv_geom(l, 1);
      w_.emplace_back(size_t(g.w_size()));
      b_.emplace_back(size_t(g.m));
      dw_.emplace_back(size_t(g.w_size()));
      db_.emplace_back(size_t(g.m));
      ws = std::max(ws, cpu::conv_fast_workspace(conv_geom(l, slice)));
    }
    workspace_.assign(size_t(threads), AlignedFloats(size_t(ws)));
    dw_part_.assign(size_t(threads), dw_);
    db_part_.assign(size_t(threads), db_);
  }

  void load(const SideTensors& t) {
    std::copy(t.x.begin(), t.x.end(), act_[0].begin());
    std::copy(t.dy.begin(), t.dy.end(), grad_.back().begin());
    for (size_t i = 0; i < layers_.size(); ++i) {
      std::copy(t.w[i].begin(), t.w[i].end(), w_[i].begin());
      std::copy(t.b[i].begin(), t.b[i].end(), b_[i].begin());
    }
  }

  // As CpuBackend::forward on a slice: conv (with bias), then ReLU, layer after layer.
  void forward(int n) {
    cpu::for_slices(workers_, n, [&](int lo, int count, int thread) {
      for (size_t i = 0; i < layers_.size(); ++i) {
        const Layer& l = layers_[i];
        float* y = act_[i + 1].data() + int64_t(lo) * l.out.size();
        cpu::conv_forward_fast(conv_geom(l, count), act_[i].data() + int64_t(lo) * l.in.size(),
                               w_[i].data(), b_[i].data(), true, y,
                               workspace_[size_t(thread)].data());
      }
    });
  }

  // As CpuBackend::backward on a slice (every layer computes its input gradient, as a layer
  // with parameters before it does), then the per-thread sums as train_step adds them.
  void backward(int n) {
    const int parts = std::min(n, workers_.threads());  // as for_slices splits the batch
    cpu::for_slices(workers_, n, [&](int lo, int count, int thread) {
      for (size_t i = layers_.size(); i-- > 0;) {
        const Layer& l = layers_[i];
        const ConvGeom g = conv_geom(l, count);
        const float* x = act_[i].data() + int64_t(lo) * l.in.size();
        float* dy = grad_[i + 1].data() + int64_t(lo) * l.out.size();
        float* ws = workspace_[size_t(thread)].data();
        cpu::conv_backward_fast(g, x, act_[i + 1].data() + int64_t(lo) * l.out.size(), dy,
                                w_[i].data(), dw_part_[size_t(thread)][i].data(),
                                db_part_[size_t(thread)][i].data(),
                                grad_[i].data() + int64_t(lo) * l.in.size(), ws);
      }
    });
    for (size_t i = 0; i < layers_.size(); ++i) {
      std::copy(dw_part_[0][i].begin(), dw_part_[0][i].end(), dw_[i].begin());
      std::copy(db_part_[0][i].begin(), db_part_[0][i].end(), db_[i].begin());
      for (int p = 1; p < parts; ++p) {
        for (size_t j = 0; j < dw_[i].size(); ++j) dw_[i][j] += dw_part_[size_t(p)][i][j];
        for (size_t j = 0; j < db_[i].size(); ++j) db_[i][j] += db_part_[size_t(p)][i][j];
      }
    }
  }

  // The first n images' activations and input gradient, and the weight gradients.
  SideOutputs outputs(int n) const {
    SideOutputs o;
    for (size_t i = 0; i < layers_.size(); ++i) {
      o.act.emplace_back(act_[i + 1].begin(), act_[i + 1].begin() + int64_t(n) * layers_[i].out.size());
      o.dw.emplace_back(dw_[i].begin(), dw_[i].end());
      o.db.emplace_back(db_[i].begin(), db_[i].end());
    }
    o.dx.assign(grad_[0].begin(), grad_[0].begin() + int64_t(n) * layers_.front().in.size());
    return o;
  }

  // The backward is checked on the reference's activations, so that a ReLU which rounds to
  // the other side of zero here cannot flip a gradient; dy is restored (it is masked in place).
  void set_backward_inputs(const SideOutputs& ref, const SideTensors& t) {
    for (size_t i = 0; i < layers_.size(); ++i)
      std::copy(ref.act[i].begin(), ref.act[i].end(), act_[i + 1].begin());
    std::copy(t.dy.begin(), t.dy.end(), grad_.back().begin());
  }

 private:
  std::vector<Layer> layers_;
  cpu::Workers& workers_;
  std::vector<AlignedFloats> act_, grad_;  // [0]: input / input gradient; [i+1]: layer i's output
  std::vector<AlignedFloats> w_, b_, dw_, db_;
  std::vector<std::vector<AlignedFloats>> dw_part_, db_part_;  // per thread, per layer
  std::vector<AlignedFloats> workspace_;                      // per thread
};

// One side, checked: the forward on the first vb images against the reference, then the
// backward from the reference's activations. Times are filled in later, with the other side's.
struct CheckedSide {
  std::unique_ptr<CpuSide> run;
  SideTensors tensors;
  VariantResult result;
};

CheckedSide check_side(const std::string& side, const std::vector<Layer>& layers,
                       const ConvCase& s, int vb, cpu::Workers& workers, const TimingOptions& o) {
  CheckedSide c;
  VariantResult& v = c.result;
  v.side = side;
  v.impl = "cpu";
  v.tolerance = kCpuTolerance;
  c.tensors = random_tensors(layers, s.batch, o.seed + (side == "nxn" ? 0 : 1));
  const SideOutputs ref = reference_outputs(layers, vb, c.tensors);
  c.run = std::make_unique<CpuSide>(layers, s.batch, workers);
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
  Eigen::initParallel();  // before threads share Eigen's GEMM set-up, as the backend does
  cpu::Workers workers(threads);
  std::vector<CheckedSide> sides;
  sides.push_back(check_side("nxn", nxn, s, r.validated_batch, workers, o));
  sides.push_back(check_side("pair", pair, s, r.validated_batch, workers, o));
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
