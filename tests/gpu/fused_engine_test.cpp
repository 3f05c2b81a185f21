// The fused engine (--engine fused) against the CPU backend: 50 lock-step steps of the seed
// models, wide5-v0 and a model of odd shapes, with the cancellation-aware gradient bound;
// evaluation and prediction; the captured graph against eager launches and one run against
// another, bit for bit (every sum has a fixed order). The same op code runs on the CPU in the
// emulator (tests/fused_test.cpp), which checks the program and the barrier contract there.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "backend_test_util.h"
#include "cuda_backend.h"
#include "gpu_test_util.h"
#include "splitconv/backend.h"
#include "splitconv/error.h"
#include "splitconv/model.h"
#include "splitconv/spec.h"

namespace splitconv::gpu::testing {
namespace {

// Odd shapes on 28×28 inputs: an even kernel with same padding (uneven), stride 2 with an
// input gradient, an n×1 / 1×n pair, an overlapping pool that does not divide its map, c ≠ m.
const char* kOdd = R"(input 28x28x1
conv 5 2x2 relu padding=same
conv 7 3x3 relu stride=2 padding=same
conv 6 3x1 relu padding=same
conv 6 1x3 relu
maxpool 3x3 stride=2
conv 4 2x2 padding=same
flatten
dense 9 relu
dense 10 softmax
)";

BackendOptions fused_options() {
  BackendOptions o;
  o.engine = "fused";
  o.verbose = true;
  return o;
}

Model wide5() { return build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/wide5-v0.net")); }

struct FusedModel {
  const char* name;
  const char* text;  // null: wide5-v0 from models/
};
void PrintTo(const FusedModel& m, std::ostream* os) { *os << m.name; }

class FusedModels : public ::testing::TestWithParam<FusedModel> {
 protected:
  void SetUp() override { SPLITCONV_REQUIRE_GPU(); }
  Model model() const {
    return GetParam().text ? model_of(GetParam().text, GetParam().name) : wide5();
  }
};

TEST_P(FusedModels, FiftyStepsMatchCpu) {
  SCOPED_TRACE("SPLITCONV_TEST_SEED=" + std::to_string(test_seed()));
  const Model m = model();
  const ImageSet train = synthetic(256, test_seed()), test = synthetic(100, test_seed() + 1);
  auto cpu = make_cpu_backend({});
  CudaBackend gpu(fused_options());
  prepare(*cpu, m, train, test, 11);
  prepare(gpu, m, train, test, 11);
  ASSERT_EQ(gpu.engine(), "fused") << gpu.engine_note();
  const Lockstep w = lockstep(*cpu, gpu, m, train, 50, 17);
  EXPECT_LE(w.loss, 1e-5);
  std::printf("%s fused: 50 lock-step steps, largest difference: loss %.2e relative, gradient "
              "%.2e of its magnitude\n", GetParam().name, w.loss, w.grad);
  for (const auto& c : gpu.choices()) std::printf("  %s\n", c.c_str());
}

// Evaluation and prediction in chunks of 32 images (70 and 45 images: three and two chunks,
// the last ones partial), as the CPU computes them.
TEST_P(FusedModels, EvaluateAndPredictMatchCpu) {
  SCOPED_TRACE("SPLITCONV_TEST_SEED=" + std::to_string(test_seed()));
  const Model m = model();
  const ImageSet train = synthetic(64, test_seed()), test = synthetic(100, test_seed() + 1);
  auto cpu = make_cpu_backend({});
  Tuning chunked;
  chunked.fused_eval_chunk = 32;
  CudaBackend gpu(fused_options(), chunked);
  prepare(*cpu, m, train, test, 23);
  prepare(gpu, m, train, test, 23);
  ASSERT_EQ(gpu.engine(), "fused") << gpu.engine_note();
  const Metrics e_cpu = cpu->evaluate(Split::Test, 70), e_gpu = gpu.evaluate(Split::Test, 70);
  EXPECT_EQ(e_gpu.count, 70);
  EXPECT_NEAR(e_gpu.loss_sum, e_cpu.loss_sum, 1e-5 * e_cpu.loss_sum);
  EXPECT_LE(std::abs(e_gpu.correct - e_cpu.correct), 1) << "only a near-tie may flip";
  const ImageSet images = synthetic(45, test_seed() + 2);
  std::vector<float> p_cpu(size_t(45 * m.classes)), p_gpu(p_cpu.size());
  cpu->predict(images, p_cpu);
  gpu.predict(images, p_gpu);
  EXPECT_LE(rel_error(p_gpu, p_cpu), kOpTolerance);
}

INSTANTIATE_TEST_SUITE_P(Fused, FusedModels,
                         ::testing::Values(FusedModel{"seed_v0", kSeedV0},
                                           FusedModel{"seed_v1", kSeedV1},
                                           FusedModel{"odd", kOdd},
                                           FusedModel{"wide5_v0", nullptr}),
                         [](const ::testing::TestParamInfo<FusedModel>& info) {
                           return std::string(info.param.name);
                         });

// Replayed graph and eager launches, and two backends: the same bits in every parameter and
// moment and the same loss sums, over 3 epochs of 250 images (partial last batches eager).
TEST(FusedEngine, SameBitsGraphOrEagerAndRunToRun) {
  SPLITCONV_REQUIRE_GPU();
  for (const char* text : {kSeedV0, kSeedV1}) {
    const Model model = model_of(text, "seed.net");
    const ImageSet train = synthetic(250, 11), test = synthetic(40, 12);
    CudaBackend a(fused_options(), Tuning{true}), b(fused_options(), Tuning{true}),
        eager(fused_options(), Tuning{false});
    for (CudaBackend* be : {&a, &b, &eager}) prepare(*be, model, train, test, 31);
    const auto la = step_losses(a, train.count, 24, 37);
    const auto lb = step_losses(b, train.count, 24, 37);
    const auto le = step_losses(eager, train.count, 24, 37);
    EXPECT_TRUE(a.graph_ready()) << a.graph_note();
    EXPECT_EQ(la, lb);
    EXPECT_EQ(la, le);
    const size_t floats = size_t(model.param_floats);
    std::vector<float> pa(floats), pb(floats), pe(floats), ma(floats), va(floats), me(floats),
        ve(floats);
    a.get_parameters(pa);
    b.get_parameters(pb);
    eager.get_parameters(pe);
    EXPECT_EQ(pa, pb);
    EXPECT_EQ(pa, pe);
    a.get_moments(ma, va);
    eager.get_moments(me, ve);
    EXPECT_EQ(ma, me);
    EXPECT_EQ(va, ve);
  }
}

// Many steps in one persistent launch (train_steps, one block per image) against a launch per
// step: the same bits
// in every parameter and moment and the same metric sums, with each step's own learning rate
// (a schedule) and a partial last batch after the run.
TEST(FusedEngine, ManyStepsPerLaunchChangeNoBit) {
  SPLITCONV_REQUIRE_GPU();
  for (const char* text : {kSeedV0, kSeedV1, kOdd}) {
    const Model model = model_of(text, "steps.net");
    // 40 full steps and a partial one, in three runs: both pinned slots of step parameters and
    // the wait before the first is reused; every hyper-parameter changes from step to step.
    const ImageSet train = synthetic(1300, 21), test = synthetic(40, 22);
    const int full = int(train.count / kBatch);
    std::vector<Hyper> hypers(static_cast<size_t>(full));
    for (int i = 0; i < full; ++i) {
      Hyper& h = hypers[size_t(i)];
      h.lr = 0.001f * float(1 + i % 3);
      h.beta1 = 0.9f - 0.01f * float(i % 4);
      h.beta2 = 0.999f - 0.001f * float(i % 5);
      h.eps = 1e-7f * float(1 + i % 2);
    }
    const Hyper last;
    BackendOptions o = fused_options();
    o.fused_blocks = 1;  // the persistent kernel runs a block per image
    CudaBackend one(o, Tuning{true}), many(o, Tuning{true});
    for (CudaBackend* be : {&one, &many}) {
      prepare(*be, model, train, test, 41);
      be->set_order(epoch_order(train.count, 43, 0));
      be->reset_train_metrics();
    }
    ASSERT_NE(many.fused_engine(), nullptr);
    EXPECT_TRUE(many.fused_engine()->multi_step()) << many.fused_engine()->describe();
    EXPECT_GT(many.steps_per_call(), 1);
    for (int i = 0; i < full; ++i)
      one.train_step(int64_t(i) * kBatch, kBatch, 1 + i, hypers[size_t(i)]);
    const std::span<const Hyper> all(hypers);
    const int runs[] = {0, 13, 26, full};
    for (int r = 0; r < 3; ++r)
      many.train_steps(int64_t(runs[r]) * kBatch, kBatch, 1 + runs[r],
                       all.subspan(size_t(runs[r]), size_t(runs[r + 1] - runs[r])));
    const int rest = int(train.count - int64_t(full) * kBatch);
    for (CudaBackend* be : {&one, &many}) be->train_step(int64_t(full) * kBatch, rest, full + 1, last);
    const Metrics mo = one.train_metrics(), mm = many.train_metrics();
    EXPECT_EQ(mo.loss_sum, mm.loss_sum);
    EXPECT_EQ(mo.correct, mm.correct);
    EXPECT_EQ(mo.count, mm.count);
    const size_t floats = size_t(model.param_floats);
    std::vector<float> po(floats), pm(floats), mo_(floats), vo(floats), mm_(floats), vm(floats);
    one.get_parameters(po);
    many.get_parameters(pm);
    EXPECT_EQ(po, pm);
    one.get_moments(mo_, vo);
    many.get_moments(mm_, vm);
    EXPECT_EQ(mo_, mm_);
    EXPECT_EQ(vo, vm);
  }
}

// A thread-block cluster per image (Hopper and later) only changes which thread computes an
// element, never how: the same bits as one block per image.
TEST(FusedEngine, ClusterPerImageChangesNoBit) {
  SPLITCONV_REQUIRE_GPU();
  const CudaStatus st = cuda_status();
  if (st.devices[0].major < 9) GTEST_SKIP() << "thread-block clusters need compute capability 9.0";
  const Model model = model_of(kSeedV1, "seed-v1.net");
  const ImageSet train = synthetic(100, 13), test = synthetic(40, 14);
  BackendOptions one = fused_options(), four = fused_options();
  one.fused_blocks = 1;
  four.fused_blocks = 4;
  CudaBackend a(one), b(four);
  prepare(a, model, train, test, 41);
  prepare(b, model, train, test, 41);
  ASSERT_NE(a.fused_engine(), nullptr);
  ASSERT_NE(b.fused_engine(), nullptr);
  EXPECT_EQ(b.fused_engine()->cluster(), 4);
  EXPECT_EQ(a.fused_engine()->cluster(), 1);
  EXPECT_EQ(step_losses(a, train.count, 6, 43), step_losses(b, train.count, 6, 43));
  std::vector<float> pa(size_t(model.param_floats)), pb(pa.size());
  a.get_parameters(pa);
  b.get_parameters(pb);
  EXPECT_EQ(pa, pb);
  const Metrics ea = a.evaluate(Split::Test), eb = b.evaluate(Split::Test);
  EXPECT_EQ(ea.loss_sum, eb.loss_sum);
  EXPECT_EQ(ea.correct, eb.correct);
}

// A captured step never replays stale buffers: after the training split is uploaded again (new
// device buffers) the graph is re-captured, and graph and eager agree to the bit.
TEST(FusedEngine, ReplacedBuffersNeverReplayAStaleGraph) {
  SPLITCONV_REQUIRE_GPU();
  const Model model = model_of(kSeedV0, "seed-v0.net");
  const ImageSet first = synthetic(96, 51), second = synthetic(96, 52), test = synthetic(40, 53);
  CudaBackend graph(fused_options(), Tuning{true}), eager(fused_options(), Tuning{false});
  for (CudaBackend* b : {&graph, &eager}) prepare(*b, model, first, test, 57);
  const Hyper h;
  int64_t t = 0;
  for (const ImageSet* set : {&first, &second}) {
    for (CudaBackend* b : {&graph, &eager}) {
      b->upload(Split::Train, *set);
      b->set_order(epoch_order(set->count, 59, int(t)));
    }
    for (int64_t at = 0; at < set->count; at += kBatch) {
      ++t;
      graph.train_step(at, kBatch, t, h);
      eager.train_step(at, kBatch, t, h);
    }
    EXPECT_TRUE(graph.graph_ready()) << graph.graph_note();
  }
  std::vector<float> pg(size_t(model.param_floats)), pe(pg.size());
  graph.get_parameters(pg);
  eager.get_parameters(pe);
  EXPECT_EQ(pg, pe);
}

TEST(FusedEngine, AutoRunsFusedAndSaysSo) {
  SPLITCONV_REQUIRE_GPU();
  BackendOptions o;
  o.engine = "auto";
  CudaBackend b(o);
  b.plan(model_of(kSeedV0, "seed-v0.net"), kBatch);
  EXPECT_EQ(b.engine(), "fused") << b.engine_note();
  ASSERT_NE(b.fused_engine(), nullptr);
  bool said = false;
  for (const auto& c : b.choices()) said = said || c.rfind("engine: fused", 0) == 0;
  EXPECT_TRUE(said);
  EXPECT_THROW(b.graph_engine("test"), Error);
}

}  // namespace
}  // namespace splitconv::gpu::testing
