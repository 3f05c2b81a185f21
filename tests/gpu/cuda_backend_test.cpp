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

#include "backend_test_util.h"
#include "gpu_test_util.h"
#include "splitconv/backend.h"
#include "splitconv/error.h"
#include "splitconv/format.h"
#include "splitconv/model.h"
#include "splitconv/random.h"
#include "splitconv/spec.h"

namespace splitconv::gpu::testing {
namespace {

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

// 50 steps (6¼ epochs of 256 images) in lock-step. The loss is a float32 sum over ≤ 32 images
// of terms computed the same way on both sides: 1e-5 relative, as for one step; the gradients
// kGradTolerance of their terms' magnitudes (lockstep(), backend_test_util.h).
TEST_P(SeedModels, FiftyStepsMatchCpu) {
  SCOPED_TRACE("SPLITCONV_TEST_SEED=" + std::to_string(test_seed()));
  const Model model = model_of(GetParam().text, GetParam().name);
  const ImageSet train = synthetic(256, test_seed()), test = synthetic(100, test_seed() + 1);
  auto cpu = make_cpu_backend({});
  auto gpu = make_cuda_backend(verbose_options());
  prepare(*cpu, model, train, test, 11);
  prepare(*gpu, model, train, test, 11);
  const Metrics before = cpu->evaluate(Split::Train);
  const Lockstep w = lockstep(*cpu, *gpu, model, train, 50, 17);
  EXPECT_LE(w.loss, 1e-5);
  std::printf("%s: 50 lock-step steps, largest difference: loss %.2e relative, gradient %.2e of its "
              "magnitude\n",
              GetParam().name, w.loss, w.grad);
  EXPECT_LT(cpu->evaluate(Split::Train).loss(), before.loss()) << "the problem should be learnt";
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

// --deterministic: two backends (each finding its own cuDNN algorithms), the same seed, the
// same steps — a full epoch of graph replays and a partial batch — give the same bits in every
// parameter and moment, and the same loss sums. Run on both seed models, through cuDNN (seed-v0)
// and through the own n×1 / 1×n kernels (seed-v1's conv3/conv4); and the captured graph gives
// the same bits as the eager step.
TEST(CudaBackendDeterministic, SameSeedSameBits) {
  SPLITCONV_REQUIRE_GPU();
  BackendOptions det;
  det.deterministic = true;
  det.verbose = true;
  for (const char* text : {kSeedV0, kSeedV1}) {
    const Model model = model_of(text, "seed.net");
    const ImageSet train = synthetic(250, 11), test = synthetic(40, 12);
    CudaBackend a(det, Tuning{true}), b(det, Tuning{true}), eager(det, Tuning{false});
    std::vector<std::vector<double>> losses;
    for (CudaBackend* backend : {&a, &b, &eager}) {
      prepare(*backend, model, train, test, 21);
      losses.push_back(step_losses(*backend, train.count, 20, 23));
    }
    EXPECT_TRUE(a.graph_ready()) << a.graph_note();
    for (const auto& c : a.choices())
      if (c.find("cudnn") != std::string::npos) EXPECT_NE(c.find("deterministic"), std::string::npos) << c;
    const size_t floats = size_t(model.param_floats);
    std::vector<std::vector<float>> p(3, std::vector<float>(floats)), m = p, v = p;
    int i = 0;
    for (CudaBackend* backend : {&a, &b, &eager}) {
      backend->get_parameters(p[size_t(i)]);
      backend->get_moments(m[size_t(i)], v[size_t(i)]);
      ++i;
    }
    for (int k : {1, 2}) {
      EXPECT_EQ(losses[0], losses[size_t(k)]) << (k == 1 ? "second run" : "eager run");
      EXPECT_EQ(p[0], p[size_t(k)]) << (k == 1 ? "second run" : "eager run");
      EXPECT_EQ(m[0], m[size_t(k)]);
      EXPECT_EQ(v[0], v[size_t(k)]);
    }
    const Metrics ea = a.evaluate(Split::Test), eb = b.evaluate(Split::Test);
    EXPECT_EQ(ea.loss_sum, eb.loss_sum);
    EXPECT_EQ(ea.correct, eb.correct);
  }
}

// A replaced buffer moves the state's generation on: the graph captured before is not replayed
// (it would read the old order or images), a new one is captured, and the steps still match an
// eager backend that never captured anything.
TEST(CudaBackendGraph, ReplacedBuffersNeverReplayAStaleGraph) {
  SPLITCONV_REQUIRE_GPU();
  BackendOptions det;
  det.deterministic = true;
  const Model model = model_of(kSeedV0, "seed-v0.net");
  const ImageSet train = synthetic(96, 31), test = synthetic(40, 32);
  const ImageSet more = synthetic(160, 33);  // a bigger split: new buffers
  CudaBackend graph(det, Tuning{true}), eager(det, Tuning{false});
  for (CudaBackend* backend : {&graph, &eager}) {
    prepare(*backend, model, train, test, 7);
    backend->set_order(epoch_order(train.count, 5, 0));
    for (int step = 0; step < 3; ++step) backend->train_step(step * kBatch, kBatch, step + 1, Hyper{});
  }
  EXPECT_TRUE(graph.graph_ready());
  const uint64_t before = graph.state().generation();
  graph.upload(Split::Train, more);
  EXPECT_NE(graph.state().generation(), before);
  EXPECT_FALSE(graph.graph_ready());  // captured against the old images
  for (CudaBackend* backend : {&graph, &eager}) {
    if (backend == &eager) backend->upload(Split::Train, more);
    backend->set_order(epoch_order(more.count, 6, 0));  // longer: a new order buffer too
    for (int step = 0; step < 5; ++step) backend->train_step(step * kBatch, kBatch, step + 4, Hyper{});
  }
  EXPECT_TRUE(graph.graph_ready()) << graph.graph_note();
  const size_t floats = size_t(model.param_floats);
  std::vector<float> pg(floats), pe(floats);
  graph.get_parameters(pg);
  eager.get_parameters(pe);
  EXPECT_EQ(pg, pe);
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

// The own n×1 / 1×n kernels against cuDNN inside 50 lock-step training steps of seed-v1
// (bounds and reasoning as in FiftyStepsMatchCpu).
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
  const Lockstep w = lockstep(*b, *a, model, train, 50, 17);
  EXPECT_LE(w.loss, 1e-5);
  std::printf("seed-v1 own vs cudnn: 50 lock-step steps, largest difference: loss %.2e relative, "
              "gradient %.2e of its magnitude\n", w.loss, w.grad);
  for (const auto& c : a->choices()) std::printf("  %s\n", c.c_str());
}

// The device memory check: a plan far past the card's memory is refused before anything is
// allocated, with the bytes; the seed plans pass it, and what plan() then takes from the
// free memory is at least the estimate (cuDNN's workspace and rounding come on top).
TEST(CudaBackendMemory, APlanPastTheDevicesMemoryIsRefusedWithTheBytes) {
  SPLITCONV_REQUIRE_GPU();
  // Within the size limits (each step buffer under 2^31 elements at batch 2000) and far past
  // any card: twelve 64×64×256 maps, each 7.8 GiB, with its gradient 15.6 GiB, 187 GiB in all.
  std::string text = "input 64x64x256\n";
  for (int i = 0; i < 12; ++i) text += "conv 256 3x3 relu padding=same\n";
  text += "flatten\ndense 10 softmax\n";
  const Model big = model_of(text.c_str(), "big.net");
  const Model model = model_of(kSeedV0, "seed-v0.net");
  auto gpu = make_cuda_backend({});
  const MemoryEstimate huge = graph_engine_memory(big, 2000);
  size_t free_bytes = 0, total_bytes = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total_bytes), cudaSuccess);
  ASSERT_GT(huge.total(), int64_t(total_bytes)) << "the test's plan must exceed the card";
  try {
    gpu->check_plan(big, 2000);
    ADD_FAILURE() << "a plan of " << huge.total() << " bytes passed the check";
  } catch (const InputError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("big.net: the CUDA engine needs at least " + bytes_text(huge.total()) +
                        " at batch 2000"),
              std::string::npos)
        << what;
    EXPECT_NE(what.find(" free on "), std::string::npos) << what;
  }
  gpu->check_plan(model, 32);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total_bytes), cudaSuccess);
  const size_t before = free_bytes;
  gpu->plan(model, 32);
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  ASSERT_EQ(cudaMemGetInfo(&free_bytes, &total_bytes), cudaSuccess);
  EXPECT_GE(int64_t(before) - int64_t(free_bytes), graph_engine_memory(model, 32).total());
  const auto shown = gpu->memory_estimate(model, 32);
  ASSERT_TRUE(shown.has_value());
  EXPECT_EQ(shown->total(), graph_engine_memory(model, 32).total());
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
