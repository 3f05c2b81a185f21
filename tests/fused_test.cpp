// The fused engine's program and its ops, run on the CPU by the emulator (the twin of the GPU
// kernels): lock-step against the CPU engine on the seed models and on odd shapes, the same
// bits whatever the thread count and order (the barrier contract), arenas that nothing
// overruns, and the programs it refuses.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/cpu_engine.h"
#include "cpu/cpu_ops.h"
#include "fused/emulate.h"
#include "fused/program.h"
#include "grad_bound.h"
#include "splitconv/error.h"
#include "splitconv/model.h"
#include "splitconv/random.h"
#include "splitconv/spec.h"
#include "splitconv/tensor.h"

namespace splitconv::fused {
namespace {

using splitconv::testing::grad_diff;
using splitconv::testing::kGradTolerance;

Model from_file(const char* name) {
  return build_model(load_spec(std::string(SPLITCONV_SOURCE_DIR "/models/") + name));
}
Model from_text(const char* text) { return build_model(parse_spec(text, "test.net")); }

// Odd shapes: a 1-channel 11×9 input, an even kernel with same padding (uneven), stride 2
// with same padding and an input gradient, an overlapping
// pool (3×3, stride 2) that does not divide its map, c ≠ m, an n×1 / 1×n pair and a dense
// layer in the middle.
constexpr const char* kOdd = R"(input 11x9x1
conv 5 2x2 relu padding=same
conv 7 3x3 relu stride=2 padding=same
conv 6 3x1 relu padding=same
conv 6 1x3 relu
maxpool 3x3 stride=2
conv 4 2x2 padding=same
flatten
dense 9 relu
dense 3 softmax
)";

constexpr const char* kColour = R"(input 12x10x3
conv 8 5x5
maxpool 2x3 stride=2
conv 6 1x1 relu
flatten
dense 5
)";

std::vector<uint8_t> random_bytes(int64_t n, uint64_t seed, int below) {
  Rng rng(seed);
  std::vector<uint8_t> out(static_cast<size_t>(n));
  for (auto& b : out) b = uint8_t(rng.below(uint64_t(below)));
  return out;
}

std::vector<int32_t> shuffled(int64_t count, uint64_t seed) {
  std::vector<int32_t> order(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) order[size_t(i)] = int32_t(i);
  Rng rng(seed);
  for (int64_t i = count - 1; i > 0; --i) std::swap(order[size_t(i)], order[size_t(rng.below(uint64_t(i + 1)))]);
  return order;
}

StepParams step_params(int64_t t) {
  StepParams sp;
  sp.lr_t = float(adam_step_size(1e-3, 0.9, 0.999, t));
  return sp;
}

// `steps` lock-step training steps of `batch` images (the last one partial when `count` is
// not a multiple): each step both start from the CPU engine's parameters and moments; the
// emulator's summed gradient is judged against the CPU's with the cancellation-aware bound
// (grad_bound.h), its loss within rounding and its hits exactly. (Adam: ReduceAdam… below.)
void lockstep(const Model& model, int batch, int64_t count, int steps, int threads) {
  SCOPED_TRACE(model.spec.source + " batch " + std::to_string(batch) + " threads " +
               std::to_string(threads));
  const int64_t image = model.input.size();
  const auto pixels = random_bytes(count * image, 5, 256);
  const auto labels = random_bytes(count, 6, model.classes);
  const auto order = shuffled(count, 7);
  cpu::CpuEngine ref(model, batch, 2);
  Emulator emu(model, batch, threads, 3);
  const auto init = init_parameters(model, 11);
  std::copy(init.begin(), init.end(), ref.params.begin());
  std::vector<float> magnitude(size_t(model.param_floats));
  double worst = 0;
  int64_t at = 0;
  for (int t = 1; t <= steps; ++t) {
    if (at >= count) at = 0;
    const int n = int(std::min<int64_t>(batch, count - at));
    std::copy(ref.params.begin(), ref.params.end(), emu.params.begin());
    std::copy(ref.m.begin(), ref.m.end(), emu.m.begin());
    std::copy(ref.v.begin(), ref.v.end(), emu.v.begin());
    const StepParams sp = step_params(t);
    Metrics mr, me;
    ref.train_step(pixels.data(), labels.data(), order.data() + at, n, sp.lr_t, Hyper{}, &mr);
    emu.train_step(pixels.data(), labels.data(), order.data(), at, n, sp, &me);
    ref.gradient_magnitude(n, magnitude.data());
    const auto d = grad_diff(model, emu.gradient, ref.gradients(), magnitude);
    EXPECT_LE(d.worst, kGradTolerance) << d.where << " at step " << t;
    worst = std::max(worst, d.worst);
    EXPECT_EQ(me.count, n);
    EXPECT_EQ(me.correct, mr.correct) << "step " << t;
    EXPECT_NEAR(me.loss_sum, mr.loss_sum, 1e-5 * mr.loss_sum) << "step " << t;
    at += n;
  }
  EXPECT_TRUE(emu.guards_intact()) << "a phase wrote outside its image's arena";
  std::printf("%s batch %d: %d lock-step steps, largest difference %.2e of the absolute terms\n",
              model.spec.source.c_str(), batch, steps, worst);
}

TEST(FusedProgram, SeedV0PhasesAndArena) {
  const Model model = from_file("seed-v0.net");
  std::string why;
  const auto prog = make_program(model, make_plan(model, 32), &why);
  ASSERT_TRUE(prog) << why;
  std::vector<OpCode> fwd, bwd;
  for (const auto& op : prog->forward) fwd.push_back(op.code);
  for (const auto& op : prog->backward) bwd.push_back(op.code);
  using C = OpCode;
  EXPECT_EQ(fwd, (std::vector<C>{C::Gather, C::ConvPoolFwd, C::ConvPoolFwd, C::ConvFwd,
                                 C::DenseFwd, C::DenseFwd, C::Loss}));
  EXPECT_EQ(bwd, (std::vector<C>{C::DenseBwd, C::DenseBwd, C::ConvBwd, C::PoolBwd, C::ConvBwd,
                                 C::PoolBwd, C::ConvBwd}));
  EXPECT_EQ(prog->backward.back().dx, -1) << "conv1 needs no input gradient";
  EXPECT_EQ(prog->backward[0].mask_dx, 1) << "dense1 had a ReLU";
  EXPECT_EQ(prog->backward[1].mask_dx, 1) << "conv3 (through the flatten) had a ReLU";
  EXPECT_EQ(prog->image_size, 784);
  EXPECT_EQ(prog->classes, 10);
  EXPECT_EQ(prog->param_floats, model.param_floats);
  // Activations of every buffer but the two conv outputs a pool follows (never stored); the
  // gradients placed by their lives: at most two are live at once, so conv1's (26·26·32) and
  // pool1's (13·13·32), live together while pool1's backward runs, bound the region.
  EXPECT_EQ(prog->arena_floats, (784 + 5408 + 1600 + 576 + 64 + 12) + (21632 + 5408));
  EXPECT_EQ(prog->arena_ints, 5408 + 1600);
  EXPECT_LE(prog->arena_bytes(), 227 * 1024) << "fits the shared memory of a block on sm_90";
  // forward + filter gradients + input gradients of all but conv1
  EXPECT_EQ(prog->macs, 3 * model.total_macs - model.layers[0].macs);
}

TEST(FusedEmulator, SeedModelsLockStepWithTheCpuEngine) {
  lockstep(from_file("seed-v0.net"), 8, 40, 6, 64);
  lockstep(from_file("seed-v1.net"), 8, 40, 6, 96);
}

TEST(FusedEmulator, OddShapesLockStepWithTheCpuEngine) {
  for (int batch : {1, 5, 33}) lockstep(from_text(kOdd), batch, 70, 4, 37);
  lockstep(from_text(kColour), 6, 20, 5, 16);
}

TEST(FusedEmulator, Wide5LockStepWithTheCpuEngine) {
  lockstep(from_file("wide5-v0.net"), 2, 4, 2, 256);
}

// Every output is one thread's sum in a fixed order: the thread count, the order the threads
// run in and the blocks per image (a cluster, each block reading its own copy of the arena)
// change nothing, bit for bit. A phase that read what another thread of the same phase writes
// would break this, and so would a write that missed a copy.
TEST(FusedEmulator, SameBitsWhateverTheThreadsAndTheirOrder) {
  for (const char* text : {kOdd, kColour}) {
    const Model model = from_text(text);
    const int64_t count = 24;
    const auto pixels = random_bytes(count * model.input.size(), 21, 256);
    const auto labels = random_bytes(count, 22, model.classes);
    const auto order = shuffled(count, 23);
    const auto init = init_parameters(model, 24);
    std::vector<std::vector<float>> params, grads;
    std::vector<double> losses;
    // (threads per block, shuffle seed, blocks per image)
    for (auto [threads, shuffle, copies] : {std::tuple{1, 0, 1}, {32, 0, 1}, {32, 9, 1},
                                           {97, 4, 1}, {256, 1, 1}, {32, 5, 4}, {7, 3, 8}}) {
      Emulator emu(model, 12, threads, uint64_t(shuffle), copies);
      std::copy(init.begin(), init.end(), emu.params.begin());
      Metrics metrics;
      for (int t = 1; t <= 3; ++t)
        emu.train_step(pixels.data(), labels.data(), order.data(), (t - 1) * 8, t == 3 ? 8 : 12,
                       step_params(t), &metrics);
      params.push_back(emu.params);
      grads.push_back(emu.gradient);
      losses.push_back(metrics.loss_sum);
      EXPECT_TRUE(emu.guards_intact());
      EXPECT_TRUE(emu.copies_identical()) << copies << " copies";
    }
    for (size_t i = 1; i < params.size(); ++i) {
      EXPECT_EQ(params[i], params[0]) << text << " run " << i;
      EXPECT_EQ(grads[i], grads[0]) << text << " run " << i;
      EXPECT_EQ(losses[i], losses[0]) << text << " run " << i;
    }
  }
}

// Adam after the image phases: reduce_adam is the CPU adam op on the image-ordered sum.
TEST(FusedEmulator, ReduceAdamIsTheAdamOpOnTheOrderedSum) {
  const int count = 3;
  const int64_t n = 50;
  std::vector<float> partial(static_cast<size_t>(count * n)), p(static_cast<size_t>(n)),
      m(p.size()), v(p.size());
  Rng rng(31);
  for (auto& x : partial) x = float(rng.uniform() - 0.5);
  for (int64_t k = 0; k < n; ++k) {
    p[size_t(k)] = float(rng.uniform());
    m[size_t(k)] = float(rng.uniform() - 0.5) * 0.1f;
    v[size_t(k)] = float(rng.uniform()) * 0.01f;
  }
  std::vector<float> p2 = p, m2 = m, v2 = v, g(p.size()), g2(p.size());
  const StepParams sp = step_params(4);
  for (int64_t k = 0; k < n; ++k)
    reduce_adam(k, count, n, partial.data(), p.data(), m.data(), v.data(), sp, g.data());
  for (int64_t k = 0; k < n; ++k)
    g2[size_t(k)] = (partial[size_t(k)] + partial[size_t(n + k)]) + partial[size_t(2 * n + k)];
  EXPECT_EQ(g, g2);
  cpu::adam(n, p2.data(), g2.data(), m2.data(), v2.data(), &sp);
  for (int64_t k = 0; k < n; ++k) {
    EXPECT_NEAR(p[size_t(k)], p2[size_t(k)], 1e-6f * std::abs(p2[size_t(k)]) + 1e-9f);
    EXPECT_NEAR(m[size_t(k)], m2[size_t(k)], 1e-6f * std::abs(m2[size_t(k)]) + 1e-12f);
    EXPECT_NEAR(v[size_t(k)], v2[size_t(k)], 1e-6f * std::abs(v2[size_t(k)]) + 1e-15f);
  }
}

TEST(FusedEmulator, EvaluateMatchesTheCpuEngine) {
  const Model model = from_text(kOdd);
  const int64_t count = 30;
  const auto pixels = random_bytes(count * model.input.size(), 41, 256);
  const auto labels = random_bytes(count, 42, model.classes);
  const auto init = init_parameters(model, 43);
  cpu::CpuEngine ref(model, int(count), 1);
  std::copy(init.begin(), init.end(), ref.params.begin());
  Emulator emu(model, 4, 19);
  std::copy(init.begin(), init.end(), emu.params.begin());
  ref.gather(pixels.data(), labels.data(), nullptr, 0, int(count));
  ref.forward(0, int(count), 0);
  ref.loss(0, int(count), 0, 0.0f);
  Metrics mr;
  ref.add_partials(int(count), &mr);
  const Metrics me = emu.evaluate(pixels.data(), labels.data(), count);
  EXPECT_EQ(me.count, count);
  EXPECT_EQ(me.correct, mr.correct);
  EXPECT_NEAR(me.loss_sum, mr.loss_sum, 1e-5 * mr.loss_sum);
  EXPECT_TRUE(emu.guards_intact());
}

}  // namespace
}  // namespace splitconv::fused
