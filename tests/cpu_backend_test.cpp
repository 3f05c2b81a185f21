// The CPU backend end to end on a tiny synthetic problem: it learns, its metrics mean what
// the interface says, and a step is a deterministic function of parameters and order.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/cpu_engine.h"
#include "splitconv/backend.h"
#include "splitconv/error.h"
#include "splitconv/model.h"
#include "splitconv/random.h"
#include "splitconv/spec.h"

namespace splitconv {
namespace {

// Every layer kind, same padding, a split n×1 / 1×n pair and a pool that drops a remainder.
const char* kSpec = R"(input 8x8x1
conv 6 3x3 relu padding=same
maxpool 2x2
conv 8 3x1 relu
conv 8 1x3 relu
maxpool 2x1 stride=1
flatten
dense 16 relu
dense 4 softmax
)";
const int kClasses = 4;

// 8×8 images of four classes: a bright row, column, diagonal or anti-diagonal at a random
// offset, over a noisy background.
ImageSet patterns(int64_t count, uint64_t seed) {
  Rng rng(seed);
  ImageSet set;
  set.count = count, set.h = 8, set.w = 8, set.c = 1;
  set.pixels.resize(count * 64);
  set.labels.resize(count);
  for (int64_t n = 0; n < count; ++n) {
    const int label = int(rng.below(kClasses)), at = int(rng.below(6)) + 1;
    set.labels[n] = uint8_t(label);
    for (int y = 0; y < 8; ++y)
      for (int x = 0; x < 8; ++x) {
        const bool on = (label == 0 && y == at) || (label == 1 && x == at) ||
                        (label == 2 && x - y == at - 3) || (label == 3 && x + y == at + 4);
        set.pixels[n * 64 + y * 8 + x] = uint8_t(on ? 170 + rng.below(86) : rng.below(90));
      }
  }
  return set;
}

Model tiny_model() { return build_model(parse_spec(kSpec, "tiny.net")); }

std::unique_ptr<Backend> planned(const Model& model, int batch, int threads, const ImageSet& train,
                                 const ImageSet& test) {
  BackendOptions opts;
  opts.threads = threads;
  auto b = make_cpu_backend(opts);
  b->plan(model, batch);
  b->upload(Split::Train, train);
  b->upload(Split::Test, test);
  b->set_parameters(init_parameters(model, 7));
  return b;
}

// Runs `steps` steps of epochs in epoch_order, Adam step t counting from 1.
void train(Backend& b, int64_t count, int batch, int steps, const Hyper& hyper) {
  int64_t t = 0;
  for (int epoch = 0; t < steps; ++epoch) {
    b.set_order(epoch_order(count, 99, epoch));
    for (int64_t at = 0; at < count && t < steps; at += batch)
      b.train_step(at, int(std::min<int64_t>(batch, count - at)), ++t, hyper);
  }
}

TEST(CpuBackend, LearnsSyntheticPatterns) {
  const Model model = tiny_model();
  const ImageSet train_set = patterns(600, 1), test_set = patterns(400, 2);
  auto b = planned(model, 20, 2, train_set, test_set);
  Hyper hyper;
  hyper.lr = 5e-3f;
  const double before = b->evaluate(Split::Test).accuracy();
  train(*b, train_set.count, 20, 300, hyper);  // 10 epochs
  const Metrics test = b->evaluate(Split::Test);
  EXPECT_EQ(test.count, 400);
  EXPECT_LT(before, 0.5);  // chance is 0.25
  EXPECT_GE(test.accuracy(), 0.98) << "loss " << test.loss();
  EXPECT_LT(b->train_metrics().loss(), 0.5);  // the running mean over all 300 steps
}

TEST(CpuBackend, TrainMetricsAreTheForwardPassBeforeTheStep) {
  const Model model = tiny_model();
  const ImageSet data = patterns(64, 3);
  auto b = planned(model, 24, 2, data, data);
  std::vector<int32_t> order(64);
  for (int i = 0; i < 64; ++i) order[i] = i;
  b->set_order(order);
  const Metrics first = b->evaluate(Split::Train, 24);
  b->train_step(0, 24, 1, Hyper{});
  const Metrics after = b->train_metrics();
  // Same images, parameters and slicing: the same computation, bit for bit.
  EXPECT_EQ(after.loss_sum, first.loss_sum);
  EXPECT_EQ(after.correct, first.correct);
  EXPECT_EQ(after.count, 24);
  const Metrics second = b->evaluate(Split::Train, 24);
  b->train_step(0, 24, 2, Hyper{});
  // Sums accumulate: the step adds its per-thread partials one by one to the running sum,
  // ((first + part0) + part1), where first + second associates them as first + (part0 + part1);
  // the two roundings of a double sum differ by an ulp or so, whichever the data (exact
  // equality held on one CPU and not on another).
  EXPECT_DOUBLE_EQ(b->train_metrics().loss_sum, first.loss_sum + second.loss_sum);
  EXPECT_EQ(b->train_metrics().count, 48);
  b->reset_train_metrics();
  EXPECT_EQ(b->train_metrics().count, 0);
}

TEST(CpuBackend, EvaluateAgreesWithPredict) {
  const Model model = tiny_model();
  const ImageSet data = patterns(300, 4), test_set = patterns(37, 5);
  auto b = planned(model, 16, 2, data, test_set);
  train(*b, data.count, 16, 40, Hyper{});  // somewhere between chance and perfect
  std::vector<float> probs(test_set.count * kClasses);
  b->predict(test_set, probs);
  for (int64_t limit : {int64_t(0), int64_t(20)}) {  // 37 and 20: a partial last batch
    const Metrics m = b->evaluate(Split::Test, limit);
    const int64_t count = limit > 0 ? limit : test_set.count;
    double loss = 0;
    int64_t correct = 0;
    for (int64_t n = 0; n < count; ++n) {
      const float* p = &probs[n * kClasses];
      double total = 0;
      for (int j = 0; j < kClasses; ++j) total += p[j];
      ASSERT_NEAR(total, 1.0, 1e-6);  // a few float roundings
      loss -= std::log(double(p[test_set.labels[n]]));
      correct += std::max_element(p, p + kClasses) - p == test_set.labels[n];
    }
    EXPECT_EQ(m.count, count);
    EXPECT_EQ(m.correct, correct);
    // The probabilities are rounded to float: −log p differs by ~1e-7 relative per image.
    EXPECT_NEAR(m.loss(), loss / double(count), 1e-5);
  }
}

TEST(CpuBackend, StepIsBitwiseDeterministic) {
  const Model model = tiny_model();
  const ImageSet data = patterns(200, 6), other = patterns(50, 7);
  auto a = planned(model, 16, 2, data, other);
  auto b = planned(model, 16, 2, data, other);
  // Different history in b's buffers: nothing stale may leak into a step.
  std::vector<float> scratch(other.count * kClasses);
  b->predict(other, scratch);
  b->evaluate(Split::Test);
  train(*a, data.count, 16, 20, Hyper{});
  train(*b, data.count, 16, 20, Hyper{});
  const size_t floats = size_t(model.param_floats);
  std::vector<float> pa(floats), pb(floats), ma(floats), mb(floats), va(floats), vb(floats);
  a->get_parameters(pa);
  b->get_parameters(pb);
  a->get_moments(ma, va);
  b->get_moments(mb, vb);
  EXPECT_EQ(std::memcmp(pa.data(), pb.data(), floats * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(ma.data(), mb.data(), floats * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(va.data(), vb.data(), floats * sizeof(float)), 0);
  EXPECT_EQ(a->train_metrics().loss_sum, b->train_metrics().loss_sum);
}

TEST(CpuBackend, ThreadCountChangesOnlyRounding) {
  const Model model = tiny_model();
  const ImageSet data = patterns(64, 8);
  // The gradient itself, compared element by element: Adam's first step is ≈ lr·sign(g) and
  // would hide per-thread gradients scaled (divided by the thread count instead of summed).
  const std::vector<float> init = init_parameters(model, 7);
  std::vector<std::vector<float>> grads;
  std::vector<Metrics> metrics;
  for (int threads : {1, 3}) {  // 3: slices of 10, 11 and 11 images
    cpu::CpuEngine e(model, 32, threads);
    std::copy(init.begin(), init.end(), e.params.begin());
    e.slices(32, [&](int lo, int n, int thread) {
      e.gather(data.pixels.data(), data.labels.data(), nullptr, lo, n);
      e.forward(lo, n, thread);
      e.loss(lo, n, thread, 1.0f / 32);
      e.backward(lo, n, thread);
    });
    Metrics m;
    e.add_partials(32, &m);
    e.sum_gradients(32);
    metrics.push_back(m);
    grads.emplace_back(e.gradients().begin(), e.gradients().end());
  }
  float largest = 0;
  for (float g : grads[0]) largest = std::max(largest, std::abs(g));
  ASSERT_GT(largest, 1e-3f);
  // Sums in another order differ by a few float roundings of the largest terms.
  for (size_t i = 0; i < grads[0].size(); ++i)
    ASSERT_NEAR(grads[0][i], grads[1][i], 1e-5f * largest) << i;
  EXPECT_NEAR(metrics[0].loss_sum, metrics[1].loss_sum, 1e-5);
  EXPECT_EQ(metrics[0].correct, metrics[1].correct);

  // And through the backend, several steps: the weights stay within rounding of each other.
  auto one = planned(model, 32, 1, data, data);
  auto three = planned(model, 32, 3, data, data);
  Hyper hyper;
  train(*one, data.count, 32, 4, hyper);
  train(*three, data.count, 32, 4, hyper);
  std::vector<float> p1(size_t(model.param_floats)), p3(p1.size());
  one->get_parameters(p1);
  three->get_parameters(p3);
  for (size_t i = 0; i < p1.size(); ++i) ASSERT_NEAR(p1[i], p3[i], 0.01 * hyper.lr) << i;
  EXPECT_NEAR(one->train_metrics().loss_sum, three->train_metrics().loss_sum, 1e-4);
  EXPECT_EQ(three->description(), "CPU, 3 threads");
}

TEST(CpuBackend, MisuseThrows) {
  const Model model = tiny_model();
  const ImageSet data = patterns(40, 9);
  BackendOptions opts;
  opts.threads = 2;
  auto fresh = make_cpu_backend(opts);
  EXPECT_THROW(fresh->train_step(0, 1, 1, Hyper{}), Error);  // before plan
  EXPECT_THROW(fresh->evaluate(Split::Test), Error);
  fresh->plan(model, 8);
  fresh->set_order(std::vector<int32_t>(8, 0));
  EXPECT_THROW(fresh->train_step(0, 8, 1, Hyper{}), Error);  // nothing uploaded

  auto b = planned(model, 8, 2, data, data);
  std::vector<int32_t> order(40);
  for (int i = 0; i < 40; ++i) order[i] = 39 - i;
  b->set_order(order);
  EXPECT_THROW(b->train_step(0, 9, 1, Hyper{}), Error);   // more than max_batch
  EXPECT_THROW(b->train_step(36, 8, 1, Hyper{}), Error);  // past the order's end
  EXPECT_THROW(b->train_step(0, 8, 0, Hyper{}), Error);   // Adam steps count from 1
  order[3] = 40;
  b->set_order(order);
  EXPECT_THROW(b->train_step(0, 8, 1, Hyper{}), Error);  // no such image
  EXPECT_THROW(b->set_parameters(std::vector<float>(3)), Error);
  std::vector<float> small(5);
  EXPECT_THROW(b->predict(data, small), Error);
  ImageSet wrong = data;
  wrong.labels[0] = kClasses;  // a label past the classes
  b->upload(Split::Test, wrong);
  EXPECT_THROW(b->evaluate(Split::Test), Error);
}

}  // namespace
}  // namespace splitconv
