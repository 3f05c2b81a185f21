// The CPU engine itself: a whole model's gradient against finite differences, and the memory
// it allocates against the estimate made before it allocates.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/cpu_engine.h"
#include "splitconv/model.h"
#include "splitconv/random.h"
#include "splitconv/spec.h"

namespace splitconv::cpu {
namespace {

// Every layer kind with parameters or kinks: same padding, ReLU, a max-pool, a split pair.
const char* kSpec = R"(input 6x6x2
conv 3 3x3 relu padding=same
maxpool 2x2
conv 4 2x1 relu
conv 4 1x2 relu
flatten
dense 5 relu
dense 3 softmax
)";

struct Batch {
  std::vector<uint8_t> pixels, labels;
};

Batch random_batch(const Model& model, int count, uint64_t seed) {
  Rng rng(seed);
  Batch b;
  b.pixels.resize(size_t(count * model.input.size()));
  for (auto& p : b.pixels) p = uint8_t(rng.below(256));
  for (int i = 0; i < count; ++i) b.labels.push_back(uint8_t(rng.below(uint64_t(model.classes))));
  return b;
}

// Glorot weights and small random biases (zero biases would put ReLU inputs on their kink).
std::vector<float> random_params(const Model& model, uint64_t seed) {
  std::vector<float> p = init_parameters(model, seed);
  Rng rng(seed + 1);
  for (const Layer& l : model.layers)
    if (l.bias >= 0) {
      const ParamSlot& s = model.slots[size_t(l.bias)];
      for (int64_t i = 0; i < s.size; ++i) p[size_t(s.offset + i)] = rng.uniform(-0.1f, 0.1f);
    }
  return p;
}

// What decides the piece of the piecewise-smooth loss: every ReLU's on/off pattern and every
// max-pool's choice.
std::vector<int32_t> kinks(const CpuEngine& e, int count) {
  std::vector<int32_t> out;
  const StepPlan& plan = e.plan();
  for (const PlanOp& op : plan.forward) {
    if (!op.relu) continue;
    const float* y = e.activation(op.y, 0);
    for (int64_t i = 0; i < count * plan.buffers[size_t(op.y)].shape.size(); ++i)
      out.push_back(y[i] > 0);
  }
  for (size_t p = 0; p < plan.argmax_shapes.size(); ++p) {
    const int32_t* a = e.argmax(int(p));
    out.insert(out.end(), a, a + count * plan.argmax_shapes[p].size());
  }
  return out;
}

// The mean loss of the batch; with `grad`, also its gradient (the per-thread gradients summed).
double loss(CpuEngine& e, const Batch& b, int count, std::vector<float>* grad = nullptr) {
  const float scale = 1.0f / float(count);
  e.slices(count, [&](int lo, int n, int thread) {
    e.gather(b.pixels.data(), b.labels.data(), nullptr, lo, n);
    e.forward(lo, n, thread);
    e.loss(lo, n, thread, grad ? scale : 0.0f);
    if (grad) e.backward(lo, n, thread);
  });
  Metrics m;
  e.add_partials(count, &m);
  if (grad) {
    e.sum_gradients(count);
    grad->assign(e.gradients().begin(), e.gradients().end());
  }
  return m.loss();
}

// Central differences of the loss against the engine's gradient, parameter by parameter; a
// parameter whose ±h moves a ReLU or a max-pool across its kink is skipped (as Caffe's
// gradient checker skips kinks), since the difference quotient there is no derivative.
void check_gradient(int threads) {
  const Model model = build_model(parse_spec(kSpec, "grad.net"));
  const int count = 5;
  CpuEngine e(model, count, threads);
  const Batch b = random_batch(model, count, 11);
  const std::vector<float> params = random_params(model, 12);
  std::copy(params.begin(), params.end(), e.params.begin());
  std::vector<float> grad;
  loss(e, b, count, &grad);
  const std::vector<int32_t> base = kinks(e, count);

  // h: small enough that few parameters move a kink, large enough that float rounding of the
  // loss (~1e-7) stays far below the quotient's precision.
  const float h = 1e-3f;
  int checked = 0, skipped = 0;
  for (const ParamSlot& s : model.slots) {
    int slot_checked = 0;
    for (int64_t i = 0; i < s.size; ++i) {
      const size_t at = size_t(s.offset + i);
      e.params[at] = params[at] + h;
      const double up = loss(e, b, count);
      const bool same_up = kinks(e, count) == base;
      e.params[at] = params[at] - h;
      const double down = loss(e, b, count);
      const bool same_down = kinks(e, count) == base;
      e.params[at] = params[at];
      if (!same_up || !same_down) {
        ++skipped;
        continue;
      }
      const double fd = (up - down) / (2.0 * double(h));
      const double g = grad[at];
      // float32 forward passes: the quotient carries up to ~1e-5 of rounding and is within
      // 0.5% of the gradient where it is large (measured); a gradient off by a factor (a
      // slice divided, a term missing) is not.
      EXPECT_NEAR(g, fd, 3e-5 + 1e-2 * std::max(std::abs(g), std::abs(fd)))
          << s.name << "[" << i << "], " << threads << " thread(s)";
      ++checked, ++slot_checked;
    }
    EXPECT_GT(slot_checked, 0) << s.name << ": every element sat on a kink";
  }
  EXPECT_GT(checked, 4 * skipped) << checked << " checked, " << skipped << " skipped at kinks";
}

TEST(CpuEngineGradient, WholeModelMatchesFiniteDifferencesOneThread) { check_gradient(1); }

TEST(CpuEngineGradient, WholeModelMatchesFiniteDifferencesThreeThreads) {
  check_gradient(3);  // slices of 1, 2 and 2 images: the per-thread gradients are summed
}

TEST(CpuEngineMemory, EstimateIsWhatTheEngineAllocates) {
  const Model model = build_model(parse_spec(kSpec, "grad.net"));
  for (int threads : {1, 3}) {
    for (int batch : {1, 32}) {
      const CpuMemory want = CpuEngine::memory_needed(model, batch, threads);
      CpuEngine e(model, batch, threads);
      const CpuMemory got = e.memory();
      EXPECT_EQ(got.parameters, want.parameters) << threads << " threads, batch " << batch;
      EXPECT_EQ(got.activations, want.activations) << threads << " threads, batch " << batch;
      EXPECT_EQ(got.workspace, want.workspace) << threads << " threads, batch " << batch;
      // Parameters, m, v and a gradient buffer per thread, two where a thread's slice runs
      // in more than one micro-batch (1 thread, batch 32).
      const int per_thread = (batch + threads - 1) / threads > CpuEngine::kMicroBatch ? 2 : 1;
      EXPECT_EQ(want.parameters,
                int64_t(sizeof(float)) * model.param_floats * (3 + threads * per_thread));
    }
  }
}

TEST(CpuEngineMemory, EstimateOfAHugePlanAllocatesNothing) {
  // 60 dense layers of 46340×46340 weights: terabytes, computed without asking for any.
  std::string spec = "input 28x28x1\nflatten\n";
  for (int i = 0; i < 60; ++i) spec += "dense 46340 relu\n";
  spec += "dense 10 softmax\n";
  const Model model = build_model(parse_spec(spec, "huge.net"));
  const CpuMemory need = CpuEngine::memory_needed(model, 32, 2);
  EXPECT_GT(need.parameters, int64_t(59) * 46340 * 46340 * 4 * 5);  // 59 of them square
  EXPECT_EQ(need.total(), need.parameters + need.activations + need.workspace);
}

}  // namespace
}  // namespace splitconv::cpu
