// What the backend tests share: the seed models, synthetic data, a prepared backend, step
// losses, and lock-step training against a reference backend with the cancellation-aware
// gradient bound (tests/grad_bound.h).
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../lockstep.h"
#include "gpu_test_util.h"
#include "splitconv/backend.h"
#include "splitconv/model.h"
#include "splitconv/random.h"
#include "splitconv/spec.h"

namespace splitconv::gpu::testing {

using splitconv::testing::Lockstep;

// The notebook's models, as in models/seed-v0.net and seed-v1.net.
inline const char* kSeedV0 = R"(input 28x28x1
conv 32 3x3 relu
maxpool 2x2
conv 64 3x3 relu
maxpool 2x2
conv 64 3x3 relu
flatten
dense 64 relu
dense 10 softmax
)";
inline const char* kSeedV1 = R"(input 28x28x1
conv 32 3x3 relu
maxpool 2x2
conv 64 3x3 relu
maxpool 2x2
conv 64 3x1 relu
conv 64 1x3 relu
flatten
dense 64 relu
dense 10 softmax
)";

inline constexpr int kBatch = 32;

// 28×28 images of ten classes: a bright 8×8 square at a class-dependent place (jittered) over
// a noisy background, so that the loss falls within a few dozen steps.
inline ImageSet synthetic(int64_t count, uint64_t seed) {
  Rng rng(seed);
  ImageSet set;
  set.count = count, set.h = 28, set.w = 28, set.c = 1;
  set.pixels.resize(size_t(count) * 784);
  set.labels.resize(size_t(count));
  for (int64_t n = 0; n < count; ++n) {
    const int label = int(rng.below(10));
    // A third of the labels are noise, so the loss stays near 1 for 50 steps: on a problem
    // learnt to a loss of 1e-4, float32 rounding alone moves the loss by more than 1e-3.
    set.labels[size_t(n)] = uint8_t(rng.below(3) == 0 ? rng.below(10) : uint64_t(label));
    const int top = (label / 5) * 12 + 2 + int(rng.below(4));
    const int left = (label % 5) * 5 + int(rng.below(2));
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        const bool on = y >= top && y < top + 8 && x >= left && x < left + 8;
        set.pixels[size_t(n * 784 + y * 28 + x)] =
            uint8_t(on ? 160 + rng.below(96) : rng.below(70));
      }
  }
  return set;
}

inline Model model_of(const char* text, const char* name) { return build_model(parse_spec(text, name)); }

inline BackendOptions verbose_options() {
  BackendOptions o;
  o.verbose = true;
  return o;
}

// Plans, uploads and initialises a backend the same way for both devices.
inline void prepare(Backend& b, const Model& model, const ImageSet& train, const ImageSet& test,
             uint64_t seed) {
  b.plan(model, kBatch);
  b.upload(Split::Train, train);
  b.upload(Split::Test, test);
  b.set_parameters(init_parameters(model, seed));
  std::vector<float> zeros(size_t(model.param_floats), 0.0f);
  b.set_moments(zeros, zeros);
}

// Mean loss of each of `steps` steps over epochs of epoch_order, Adam's t counting from 1.
inline std::vector<double> step_losses(Backend& b, int64_t count, int steps, uint64_t order_seed) {
  std::vector<double> losses;
  const Hyper hyper;
  int64_t t = 0;
  for (int epoch = 0; t < steps; ++epoch) {
    b.set_order(epoch_order(count, order_seed, epoch));
    for (int64_t at = 0; at < count && t < steps; at += kBatch) {
      b.reset_train_metrics();
      b.train_step(at, int(std::min<int64_t>(kBatch, count - at)), ++t, hyper);
      losses.push_back(b.train_metrics().loss());
    }
  }
  return losses;
}

inline Lockstep lockstep(Backend& ref, Backend& test, const Model& model, const ImageSet& train,
                         int steps, uint64_t order_seed) {
  return splitconv::testing::lockstep(ref, test, model, train, steps, order_seed, kBatch);
}

}  // namespace splitconv::gpu::testing
