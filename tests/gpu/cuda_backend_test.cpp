// The CUDA backend against the CPU backend (the oracle) on the seed models: same data, same
// initial parameters, same order. Gradients after one step, the loss of every step for 50
// steps, evaluation and prediction; and the captured-graph step against the eager one.
#include "cuda_backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "splitconv/backend.h"
#include "splitconv/error.h"
#include "splitconv/model.h"
#include "splitconv/random.h"
#include "splitconv/spec.h"

namespace splitconv::gpu::testing {
namespace {

// The notebook's models (DESIGN.md's table), as in models/seed-v0.net and seed-v1.net.
const char* kSeedV0 = R"(input 28x28x1
conv 32 3x3 relu
maxpool 2x2
conv 64 3x3 relu
maxpool 2x2
conv 64 3x3 relu
flatten
dense 64 relu
dense 10 softmax
)";
const char* kSeedV1 = R"(input 28x28x1
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

const int kBatch = 32;

// 28×28 images of ten classes: a bright 8×8 square at a class-dependent place (jittered) over
// a noisy background, so that the loss falls within a few dozen steps.
ImageSet synthetic(int64_t count, uint64_t seed) {
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

Model model_of(const char* text, const char* name) { return build_model(parse_spec(text, name)); }

BackendOptions verbose_options() {
  BackendOptions o;
  o.verbose = true;
  return o;
}

// Plans, uploads and initialises a backend the same way for both devices.
void prepare(Backend& b, const Model& model, const ImageSet& train, const ImageSet& test,
             uint64_t seed) {
  b.plan(model, kBatch);
  b.upload(Split::Train, train);
  b.upload(Split::Test, test);
  b.set_parameters(init_parameters(model, seed));
  std::vector<float> zeros(size_t(model.param_floats), 0.0f);
  b.set_moments(zeros, zeros);
}

// Mean loss of each of `steps` steps over epochs of epoch_order, Adam's t counting from 1.
std::vector<double> step_losses(Backend& b, int64_t count, int steps, uint64_t order_seed) {
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

struct SeedModel {
  const char* name;
  const char* text;
};

void PrintTo(const SeedModel& m, std::ostream* os) { *os << m.name; }

class SeedModels : public ::testing::TestWithParam<SeedModel> {
 protected:
  void SetUp() override { SPLITCONV_REQUIRE_GPU(); }
};

// After one step Adam's first moment is (1−β1)·g: the gradient itself, per tensor, compared
// with the CPU's. A full batch (the captured path's warm-up) and a partial one.
TEST_P(SeedModels, OneStepGradientsMatchCpu) {
  SCOPED_TRACE("SPLITCONV_TEST_SEED=" + std::to_string(test_seed()));
  const Model model = model_of(GetParam().text, GetParam().name);
  const ImageSet train = synthetic(64, test_seed()), test = synthetic(40, test_seed() + 1);
  for (int count : {kBatch, 20}) {
    auto cpu = make_cpu_backend({});
    auto gpu = make_cuda_backend(verbose_options());
    prepare(*cpu, model, train, test, 5);
    prepare(*gpu, model, train, test, 5);
    const auto order = epoch_order(train.count, 3, 0);
    for (Backend* b : {cpu.get(), gpu.get()}) {
      b->set_order(order);
      b->train_step(0, count, 1, Hyper{});
    }
    const size_t floats = size_t(model.param_floats);
    std::vector<float> m_cpu(floats), v_cpu(floats), m_gpu(floats), v_gpu(floats);
    cpu->get_moments(m_cpu, v_cpu);
    gpu->get_moments(m_gpu, v_gpu);
    for (const ParamSlot& s : model.slots) {
      auto slice = [&](const std::vector<float>& v) {
        return std::vector<float>(v.begin() + s.offset, v.begin() + s.offset + s.size);
      };
      // Each gradient is a float32 sum over the batch and the image (≤ 32·26·26 terms for
      // conv1's filter), ordered differently by cuDNN and Eigen: kOpTolerance as for the ops.
      EXPECT_LE(rel_error(slice(m_gpu), slice(m_cpu)), kOpTolerance)
          << s.name << ", batch of " << count;
    }
    EXPECT_NEAR(cpu->train_metrics().loss(), gpu->train_metrics().loss(),
                1e-5 * cpu->train_metrics().loss());
  }
}

// 50 steps (6¼ epochs of 256 images). Tolerance 1e-3 of the loss: the per-op differences
// (~1e-6) compound over the steps, and Adam's normalised update turns tiny differences in
// near-zero gradients into full-size steps, so the trajectories drift apart slowly; a fault
// (a wrong index, scale or sign) moves the loss by far more than 1e-3 within a few steps.
TEST_P(SeedModels, FiftyStepsMatchCpu) {
  SCOPED_TRACE("SPLITCONV_TEST_SEED=" + std::to_string(test_seed()));
  const Model model = model_of(GetParam().text, GetParam().name);
  const ImageSet train = synthetic(256, test_seed()), test = synthetic(100, test_seed() + 1);
  auto cpu = make_cpu_backend({});
  auto gpu = make_cuda_backend(verbose_options());
  prepare(*cpu, model, train, test, 11);
  prepare(*gpu, model, train, test, 11);
  const auto loss_cpu = step_losses(*cpu, train.count, 50, 17);
  const auto loss_gpu = step_losses(*gpu, train.count, 50, 17);
  ASSERT_EQ(loss_cpu.size(), loss_gpu.size());
  double worst = 0;
  for (size_t i = 0; i < loss_cpu.size(); ++i) {
    const double rel = std::abs(loss_gpu[i] - loss_cpu[i]) / std::abs(loss_cpu[i]);
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-3) << "step " << i + 1 << ": cpu " << loss_cpu[i] << ", cuda " << loss_gpu[i];
  }
  std::printf("%s: 50 steps, loss %.4f -> %.4f (cpu), largest relative difference %.2e\n",
              GetParam().name, loss_cpu.front(), loss_cpu.back(), worst);
  RecordProperty("largest_relative_loss_difference", std::to_string(worst));
  EXPECT_LT(loss_cpu.back(), loss_cpu.front()) << "the synthetic problem should be learnt";

  const Metrics e_cpu = cpu->evaluate(Split::Test), e_gpu = gpu->evaluate(Split::Test);
  EXPECT_EQ(e_gpu.count, e_cpu.count);
  EXPECT_NEAR(e_gpu.loss(), e_cpu.loss(), 1e-3 * e_cpu.loss());
  for (const auto& c : gpu->choices()) std::printf("  %s\n", c.c_str());
}

// Same parameters, no training: evaluation (with a partial last batch) and prediction agree
// to the ops' rounding.
TEST_P(SeedModels, EvaluateAndPredictMatchCpu) {
  SCOPED_TRACE("SPLITCONV_TEST_SEED=" + std::to_string(test_seed()));
  const Model model = model_of(GetParam().text, GetParam().name);
  const ImageSet train = synthetic(64, test_seed()), test = synthetic(100, test_seed() + 1);
  auto cpu = make_cpu_backend({});
  auto gpu = make_cuda_backend({});
  prepare(*cpu, model, train, test, 23);
  prepare(*gpu, model, train, test, 23);
  const Metrics e_cpu = cpu->evaluate(Split::Test, 70), e_gpu = gpu->evaluate(Split::Test, 70);
  EXPECT_EQ(e_gpu.count, 70);
  EXPECT_NEAR(e_gpu.loss_sum, e_cpu.loss_sum, 1e-5 * e_cpu.loss_sum);
  EXPECT_LE(std::abs(e_gpu.correct - e_cpu.correct), 1) << "only a near-tie may flip";

  const ImageSet images = synthetic(45, test_seed() + 2);
  std::vector<float> p_cpu(size_t(45 * model.classes)), p_gpu(p_cpu.size());
  cpu->predict(images, p_cpu);
  gpu->predict(images, p_gpu);
  EXPECT_LE(rel_error(p_gpu, p_cpu), kOpTolerance);
}

INSTANTIATE_TEST_SUITE_P(Seed, SeedModels,
                         ::testing::Values(SeedModel{"seed_v0", kSeedV0},
                                           SeedModel{"seed_v1", kSeedV1}),
                         [](const ::testing::TestParamInfo<SeedModel>& info) {
                           return std::string(info.param.name);
                         });

// The captured graph replays the eager step: 3 epochs of 250 images (7 full batches and a
// partial one of 26, which runs eagerly, in each). Tolerance 1e-4: both run the same kernels,
// but each backend times cuDNN's algorithms for itself and may choose differently, and some
// backward algorithms sum with atomics, so the rounding may differ and compound slowly.
TEST(CudaBackendGraph, ReplayMatchesEager) {
  SPLITCONV_REQUIRE_GPU();
  SCOPED_TRACE("SPLITCONV_TEST_SEED=" + std::to_string(test_seed()));
  const Model model = model_of(kSeedV1, "seed-v1.net");
  const ImageSet train = synthetic(250, test_seed()), test = synthetic(40, test_seed() + 1);
  CudaBackend graph({}, Tuning{true}), eager({}, Tuning{false});
  prepare(graph, model, train, test, 31);
  prepare(eager, model, train, test, 31);
  const auto loss_graph = step_losses(graph, train.count, 24, 37);
  const auto loss_eager = step_losses(eager, train.count, 24, 37);
  EXPECT_TRUE(graph.graph_ready()) << graph.graph_note();
  EXPECT_EQ(graph.graph_note(), "cuda graph");
  EXPECT_FALSE(eager.graph_ready());
  for (size_t i = 0; i < loss_graph.size(); ++i)
    EXPECT_NEAR(loss_graph[i], loss_eager[i], 1e-4 * loss_eager[i]) << "step " << i + 1;
}

TEST(CudaBackend, MetricsCountImagesAndReset) {
  SPLITCONV_REQUIRE_GPU();
  const Model model = model_of(kSeedV0, "seed-v0.net");
  const ImageSet train = synthetic(80, 1), test = synthetic(50, 2);
  auto gpu = make_cuda_backend({});
  prepare(*gpu, model, train, test, 3);
  gpu->set_order(epoch_order(train.count, 4, 0));
  gpu->train_step(0, kBatch, 1, Hyper{});
  gpu->train_step(32, kBatch, 2, Hyper{});
  gpu->train_step(64, 16, 3, Hyper{});
  Metrics m = gpu->train_metrics();
  EXPECT_EQ(m.count, 80);
  EXPECT_GT(m.loss_sum, 0.0);
  EXPECT_TRUE(std::isfinite(m.loss_sum));
  EXPECT_LE(m.correct, 80);
  gpu->reset_train_metrics();
  m = gpu->train_metrics();
  EXPECT_EQ(m.count, 0);
  EXPECT_EQ(m.loss_sum, 0.0);
  EXPECT_EQ(m.correct, 0);
  EXPECT_EQ(gpu->evaluate(Split::Test).count, 50);
  EXPECT_EQ(gpu->evaluate(Split::Train, 33).count, 33);
}

TEST(CudaBackend, ParametersRoundTripAndBadInputIsRefused) {
  SPLITCONV_REQUIRE_GPU();
  const Model model = model_of(kSeedV0, "seed-v0.net");
  auto gpu = make_cuda_backend({});
  EXPECT_EQ(gpu->name(), "cuda");
  EXPECT_FALSE(gpu->description().empty());
  gpu->plan(model, kBatch);
  const auto params = init_parameters(model, 9);
  gpu->set_parameters(params);
  std::vector<float> back(params.size());
  gpu->get_parameters(back);
  EXPECT_EQ(back, params);
  EXPECT_THROW(gpu->set_parameters(std::vector<float>(3)), Error);
  ImageSet bad = synthetic(4, 1);
  bad.labels[2] = 10;  // not below the 10 classes
  EXPECT_THROW(gpu->upload(Split::Train, bad), InputError);
  EXPECT_THROW(gpu->train_step(0, 1, 1, Hyper{}), Error) << "no training split uploaded";
}

TEST(CudaBackend, UnknownConvImplIsRefusedBeforeAnyDeviceWork) {
  BackendOptions o;
  o.conv_impl = "fastest";
  EXPECT_THROW(make_cuda_backend(o), InputError);
}

// The own n×1 / 1×n kernels against cuDNN inside whole training steps of seed-v1 (issue:
// 50 steps agree to 1e-3 relative, the same bound and reasoning as FiftyStepsMatchCpu).
TEST(CudaBackendOwnKernels, FiftyStepsOfSeedV1MatchCudnn) {
  SPLITCONV_REQUIRE_GPU();
  const Model model = model_of(kSeedV1, "seed-v1");
  const ImageSet train = synthetic(256, test_seed()), test = synthetic(100, test_seed() + 1);
  BackendOptions own = verbose_options(), cudnn = verbose_options();
  own.conv_impl = "own";
  cudnn.conv_impl = "cudnn";
  auto a = make_cuda_backend(own), b = make_cuda_backend(cudnn);
  prepare(*a, model, train, test, 11);
  prepare(*b, model, train, test, 11);
  bool own_used = false;
  for (const auto& c : a->choices()) own_used = own_used || c.find(": own") != std::string::npos;
  EXPECT_TRUE(own_used) << "no layer ran on the own kernels";
  const auto la = step_losses(*a, train.count, 50, 17), lb = step_losses(*b, train.count, 50, 17);
  ASSERT_EQ(la.size(), lb.size());
  double worst = 0;
  for (size_t i = 0; i < la.size(); ++i) {
    const double rel = std::abs(la[i] - lb[i]) / std::abs(lb[i]);
    worst = std::max(worst, rel);
    EXPECT_LE(rel, 1e-3) << "step " << i + 1 << ": own " << la[i] << ", cudnn " << lb[i];
  }
  std::printf("seed-v1 own vs cudnn: 50 steps, largest relative loss difference %.2e\n", worst);
  for (const auto& c : a->choices()) std::printf("  %s\n", c.c_str());
}

TEST(CudaStatus, ListsDevicesAndVersions) {
  SPLITCONV_REQUIRE_GPU();
  const CudaStatus st = cuda_status();
  EXPECT_TRUE(st.compiled);
  EXPECT_TRUE(st.why_none.empty());
  for (const auto& d : st.devices) {
    EXPECT_FALSE(d.name.empty());
    EXPECT_GT(d.memory_bytes, 0);
    EXPECT_GT(d.multiprocessors, 0);
    EXPECT_GE(d.major, 5);
  }
  EXPECT_FALSE(st.cudnn_version.empty());
  EXPECT_NE(st.cublas_version, "unknown");
  EXPECT_NE(st.driver_version, "none");
}

TEST(CudaStatus, SaysWhyThereIsNoDevice) {
  const CudaStatus st = cuda_status();
  EXPECT_TRUE(st.compiled);
  EXPECT_EQ(st.devices.empty(), !st.why_none.empty()) << st.why_none;
}

}  // namespace
}  // namespace splitconv::gpu::testing
