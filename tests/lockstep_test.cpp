// The lock-step comparison the GPU tests rely on (lockstep.h), exercised on the CPU: two CPU
// backends with different thread counts sum each gradient in a different order (per-thread
// partial sums, then the threads in order), so they differ by rounding only — and the
// cancellation-aware bound must hold over a real trajectory, while a gradient that is wrong
// (here: one backend's parameters nudged, so its gradients are those of another point) fails it.
#include <gtest/gtest.h>
#include <gtest/gtest-spi.h>

#include <string>

#include "lockstep.h"
#include "splitconv/spec.h"

namespace splitconv::testing {
namespace {

Model seed_v1() { return build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v1.net")); }

ImageSet noise(int64_t count, uint64_t seed) {
  Rng rng(seed);
  ImageSet set;
  set.count = count, set.h = 28, set.w = 28, set.c = 1;
  set.pixels.resize(size_t(count) * 784);
  set.labels.resize(size_t(count));
  for (auto& p : set.pixels) p = uint8_t(rng.below(256));
  for (auto& l : set.labels) l = uint8_t(rng.below(10));
  return set;
}

std::unique_ptr<Backend> cpu_backend(const Model& model, int threads, const ImageSet& train,
                                     int batch = 16) {
  BackendOptions o;
  o.threads = threads;
  auto b = make_cpu_backend(o);
  b->plan(model, batch);
  b->upload(Split::Train, train);
  b->upload(Split::Test, train);
  b->set_parameters(init_parameters(model, 3));
  std::vector<float> zeros(size_t(model.param_floats), 0.0f);
  b->set_moments(zeros, zeros);
  return b;
}

TEST(Lockstep, ThreadCountsDifferByRoundingOnly) {
  const Model model = seed_v1();
  const ImageSet train = noise(40, 5);
  auto one = cpu_backend(model, 1, train), three = cpu_backend(model, 3, train);
  const Lockstep w = lockstep(*one, *three, model, train, 8, 7, 16);
  EXPECT_LE(w.loss, 1e-6);
  EXPECT_GT(w.grad, 0.0) << "the thread counts should sum in different orders";
  std::printf("1 vs 3 threads: gradient %.2e of its magnitude\n", w.grad);
}

// The seed-v0 model (the direct first conv, chunked GEMMs, the vector pool) at an odd batch:
// 1 thread (a slice of 37 images: micro-batches of 16, 16 and 5) and 5 threads (slices of
// 7 and 8) differ by rounding only, and the same thread count twice gives the same bits.
TEST(Lockstep, SeedV0OddBatchThreadCounts) {
  const Model model = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v0.net"));
  const ImageSet train = noise(80, 6);
  const int batch = 37;
  auto one = cpu_backend(model, 1, train, batch), five = cpu_backend(model, 5, train, batch);
  const Lockstep w = lockstep(*one, *five, model, train, 4, 8, batch);
  EXPECT_LE(w.loss, 1e-6);
  EXPECT_GT(w.grad, 0.0) << "the thread counts should sum in different orders";

  for (int threads : {1, 2}) {
    auto a = cpu_backend(model, threads, train, batch), b = cpu_backend(model, threads, train, batch);
    std::vector<int32_t> order(size_t(train.count));
    for (size_t i = 0; i < order.size(); ++i) order[i] = int32_t(order.size() - 1 - i);
    a->set_order(order);
    b->set_order(order);
    const Hyper hyper;
    for (int64_t t = 1; t <= 2; ++t) {
      a->train_step((t - 1) * batch, batch, t, hyper);
      b->train_step((t - 1) * batch, batch, t, hyper);
    }
    std::vector<float> pa(size_t(model.param_floats)), pb(pa.size());
    a->get_parameters(pa);
    b->get_parameters(pb);
    for (size_t i = 0; i < pa.size(); ++i)
      ASSERT_EQ(pa[i], pb[i]) << "parameter " << i << ", " << threads << " thread(s)";
  }
}

// A backend whose step starts from other parameters computes another gradient: the bound
// catches it even when the change is a tenth of a per cent.
class Nudged : public Backend {
 public:
  explicit Nudged(std::unique_ptr<Backend> b) : b_(std::move(b)) {}
  std::string name() const override { return b_->name(); }
  std::string description() const override { return b_->description(); }
  void plan(const Model& m, int batch) override { b_->plan(m, batch); }
  void upload(Split s, const ImageSet& set) override { b_->upload(s, set); }
  void set_parameters(std::span<const float> p) override {
    std::vector<float> q(p.begin(), p.end());
    for (auto& x : q) x *= 1.001f;
    b_->set_parameters(q);
  }
  void get_parameters(std::span<float> p) override { b_->get_parameters(p); }
  void set_moments(std::span<const float> m, std::span<const float> v) override { b_->set_moments(m, v); }
  void get_moments(std::span<float> m, std::span<float> v) override { b_->get_moments(m, v); }
  void set_order(std::span<const int32_t> o) override { b_->set_order(o); }
  void train_step(int64_t begin, int count, int64_t t, const Hyper& h) override {
    b_->train_step(begin, count, t, h);
  }
  Metrics train_metrics() override { return b_->train_metrics(); }
  void reset_train_metrics() override { b_->reset_train_metrics(); }
  Metrics evaluate(Split s, int64_t limit) override { return b_->evaluate(s, limit); }
  void predict(const ImageSet& i, std::span<float> p) override { b_->predict(i, p); }

 private:
  std::unique_ptr<Backend> b_;
};

TEST(Lockstep, CatchesAGradientOfOtherParameters) {
  const Model model = seed_v1();
  const ImageSet train = noise(16, 9);
  auto ref = cpu_backend(model, 1, train);
  Nudged off(cpu_backend(model, 1, train));
  Lockstep w;
  EXPECT_NONFATAL_FAILURE(w = lockstep(*ref, off, model, train, 1, 7, 16), "at step 1");
  EXPECT_GT(w.grad, kGradTolerance);
}

}  // namespace
}  // namespace splitconv::testing
