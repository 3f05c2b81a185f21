// The CPU engine's convolutions (cpu/engine_ops.h) against the reference ops of cpu_ops.h:
// forward with and without ReLU, and the fused backward, on odd shapes, every stride and
// padding, batch 1, odd batches and batches that split into several GEMM chunks.
#include "cpu/engine_ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cpu/aligned.h"
#include "cpu/cpu_ops.h"
#include "splitconv/random.h"

namespace splitconv {
namespace {

using Floats = std::vector<float>;
const float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kGuard = 1234.5f;
constexpr int64_t kGuardFloats = 64;

// A conv geometry from explicit padding on all four sides (bottom/right are implied by oh/ow).
ConvGeom conv(int n, int c, int h, int w, int m, int kh, int kw, int stride, int pt, int pb, int pl,
              int pr) {
  const int oh = (h + pt + pb - kh) / stride + 1, ow = (w + pl + pr - kw) / stride + 1;
  return {n, c, h, w, m, kh, kw, stride, pt, pl, oh, ow};
}

struct Case {
  std::string name;
  ConvGeom g;
};

std::vector<Case> cases() {
  std::vector<Case> all = {
      {"3x1 valid", conv(2, 3, 7, 6, 4, 3, 1, 1, 0, 0, 0, 0)},
      {"1x3 valid", conv(3, 2, 5, 7, 3, 1, 3, 1, 0, 0, 0, 0)},
      {"3x1 same", conv(5, 4, 9, 7, 6, 3, 1, 1, 1, 1, 0, 0)},
      {"1x3 same", conv(5, 6, 9, 7, 4, 1, 3, 1, 0, 0, 1, 1)},
      {"5x1 same, 1 channel", conv(3, 1, 11, 9, 5, 5, 1, 1, 2, 2, 0, 0)},
      {"1x5 valid, 1 channel", conv(3, 1, 11, 9, 5, 1, 5, 1, 0, 0, 0, 0)},
      {"5x3 valid", conv(2, 2, 8, 6, 3, 5, 3, 1, 0, 0, 0, 0)},
      {"4x4 same (pad 1 top/left, 2 bottom/right)", conv(3, 2, 7, 6, 3, 4, 4, 1, 1, 2, 1, 2)},
      {"3x3 stride 2 same (pad 0/1 on the right)", conv(2, 2, 7, 8, 3, 3, 3, 2, 1, 1, 0, 1)},
      {"3x3 stride 2 valid, remainder dropped", conv(3, 2, 8, 7, 2, 3, 3, 2, 0, 0, 0, 0)},
      {"2x5 stride 3 same (pad 2 left and right)", conv(1, 3, 9, 10, 2, 2, 5, 3, 0, 0, 2, 2)},
      {"1x1", conv(2, 4, 3, 5, 3, 1, 1, 1, 0, 0, 0, 0)},
      {"1x1 stride 2", conv(3, 3, 6, 5, 2, 1, 1, 2, 0, 0, 0, 0)},
      {"3x3 valid, 1 channel (conv1's shape, smaller)", conv(7, 1, 12, 11, 8, 3, 3, 1, 0, 0, 0, 0)},
      {"3x3 same, 1 channel", conv(3, 1, 10, 13, 5, 3, 3, 1, 1, 1, 1, 1)},
      {"3x3 stride 2, 1 channel", conv(3, 1, 10, 13, 5, 3, 3, 2, 0, 1, 0, 0)},
      {"5x5 same, 1 channel, 9 filters", conv(3, 1, 12, 19, 9, 5, 5, 1, 2, 2, 2, 2)},
      {"3x3 valid, 1 image", conv(1, 5, 9, 9, 7, 3, 3, 1, 0, 0, 0, 0)},
      // Maps at least 16 wide, stride 1, several channels: the direct path (forward and dx),
      // odd row counts, filters not a multiple of 8, chunks of several images for dw.
      {"3x3 same, direct, 11 filters, 18x20", conv(5, 5, 18, 20, 11, 3, 3, 1, 1, 1, 1, 1)},
      {"3x1 valid, direct, odd rows", conv(3, 3, 21, 17, 9, 3, 1, 1, 0, 0, 0, 0)},
      {"1x3 same, direct, 16 wide", conv(2, 4, 7, 16, 8, 1, 3, 1, 0, 0, 1, 1)},
      {"5x5 valid, direct", conv(2, 3, 22, 21, 6, 5, 5, 1, 0, 0, 0, 0)},
      {"4x4 same, direct (pad 1 top/left, 2 bottom/right)", conv(2, 2, 9, 19, 5, 4, 4, 1, 1, 2, 1, 2)},
      {"2x5 same, direct, any window", conv(2, 3, 6, 33, 17, 2, 5, 1, 1, 0, 2, 2)},
      {"1x1, direct, 40 wide", conv(3, 6, 2, 40, 3, 1, 1, 1, 0, 0, 0, 0)},
      // dw without im2col (16 and 8 lanes, the listed windows on the direct path): tiles of 1
      // to 3 vectors of filters (70 with 16 lanes: 3 + 2), channels not a multiple of a tile's.
      {"3x3 valid, direct, 70 filters", conv(2, 3, 14, 34, 70, 3, 3, 1, 0, 0, 0, 0)},
      {"3x1 same, direct, 37 filters, 11 channels", conv(2, 11, 16, 33, 37, 3, 1, 1, 1, 1, 0, 0)},
      {"7x1 valid, direct, 20 filters", conv(2, 4, 20, 33, 20, 7, 1, 1, 0, 0, 0, 0)},
      {"5x1 valid, direct, 18 filters, 5 channels", conv(2, 5, 20, 33, 18, 5, 1, 1, 0, 0, 0, 0)},
      {"1x5 same, direct, 33 filters", conv(2, 3, 9, 40, 33, 1, 5, 1, 0, 0, 2, 2)},
      {"1x7 same, direct, 17 filters", conv(2, 3, 8, 40, 17, 1, 7, 1, 0, 0, 3, 3)},
      {"5x5 valid, direct, 20 filters (dw: 16 lanes)", conv(2, 3, 20, 36, 20, 5, 5, 1, 0, 0, 0, 0)},
      // Windows without a dw tile whose rows have one (16 lanes): dw as kh row windows 1 × kw.
      {"7x7 valid, direct, 20 filters (dw: 7 rows of 1x7)", conv(2, 3, 20, 33, 20, 7, 7, 1, 0, 0, 0, 0)},
      {"3x5 same, direct, 9 filters (dw: 3 rows of 1x5)", conv(2, 4, 12, 36, 9, 3, 5, 1, 1, 1, 2, 2)},
      // 14×14 outputs: chunks of 6 images, the last one partial (dw: a GEMM per chunk with 4
      // lanes, the direct tiles on each chunk's images with 8 and 16).
      {"3x3 same, 13 images in 3 chunks", conv(13, 3, 14, 14, 5, 3, 3, 1, 1, 1, 1, 1)},
      {"1x3 same, 13 images", conv(13, 4, 14, 14, 3, 1, 3, 1, 0, 0, 1, 1)},
      // A map larger than a chunk: one image per GEMM (dw: the direct tiles with 8 and 16 lanes).
      {"3x3 valid, 36x36 map", conv(3, 2, 36, 36, 4, 3, 3, 1, 0, 0, 0, 0)},
      {"3x3 valid, 36x36 map, 1 channel", conv(3, 1, 36, 36, 4, 3, 3, 1, 0, 0, 0, 0)},
      // Images large enough that dw's im2col runs in pieces of output rows (the last partial):
      // a window dw's direct tiles do not list; the 3×3s take those tiles.
      {"4x4 valid, 32 channels, 40x40: dw in pieces", conv(2, 32, 40, 40, 3, 4, 4, 1, 0, 0, 0, 0)},
      {"3x3 valid, 64 channels, 36x36", conv(2, 64, 36, 36, 4, 3, 3, 1, 0, 0, 0, 0)},
      {"3x3 same, 48 channels, 40x40", conv(1, 48, 40, 40, 5, 3, 3, 1, 1, 1, 1, 1)},
      // Small maps on the GEMM path: the forward's columns in blocks of the GEMM's depth
      // (c·kh·kw > 256); planes of outputs narrower than a vector gathered by permutes (with 8
      // and 16 lanes), the last image's last rows read row by row (its vectors would pass x's end).
      {"3x3 valid, 64 channels, 5x5 (seed-v0's conv3)", conv(5, 64, 5, 5, 9, 3, 3, 1, 0, 0, 0, 0)},
      {"3x3 valid, 40 channels, 9x7, 3 images", conv(3, 40, 9, 7, 6, 3, 3, 1, 0, 0, 0, 0)},
      {"1x3 valid, 30 channels, 4x11", conv(2, 30, 4, 11, 5, 1, 3, 1, 0, 0, 0, 0)},
      // A first layer of stride 2 on a large 3-channel image: dw in pieces when no dx is asked.
      {"3x3 stride 2 same, 3 channels, 200x240: dw in pieces", conv(1, 3, 200, 240, 4, 3, 3, 2, 1, 1, 1, 1)},
  };
  return all;
}

// Integers in [lo, hi]: every product and sum of these cases is exact in float, so any
// summation order gives the reference's bits.
Floats random_ints(Rng& rng, int64_t n, int lo, int hi) {
  Floats v(static_cast<size_t>(n));
  for (auto& x : v) x = float(lo + int(rng.below(uint64_t(hi - lo + 1))));
  return v;
}

// A conv's x, w, b and dy as such integers (|x|, |w|, |dy| ≤ 3, |b| ≤ 4).
struct IntInputs {
  Floats x, w, b, dy;
};
IntInputs int_inputs(Rng& rng, const ConvGeom& g) {
  IntInputs in;
  in.x = random_ints(rng, g.x_size(), -3, 3);
  in.w = random_ints(rng, g.w_size(), -3, 3);
  in.b = random_ints(rng, g.m, -4, 4);
  in.dy = random_ints(rng, g.y_size(), -3, 3);
  return in;
}

Floats random_floats(Rng& rng, int64_t n) {
  Floats v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.uniform(-1.0f, 1.0f);
  return v;
}

Floats abs_of(const Floats& v) {
  Floats a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::abs(v[i]);
  return a;
}

// What the engine's kernels compute for one case, and the reference ops' answer.
struct Outputs {
  Floats y, dx, dw, db;
};

// Outputs of g's shapes, NaN everywhere: each value must be overwritten.
Outputs unwritten(const ConvGeom& g) {
  Outputs o;
  o.y.assign(size_t(g.y_size()), kNaN);
  o.dx.assign(size_t(g.x_size()), kNaN);
  o.dw.assign(size_t(g.w_size()), kNaN);
  o.db.assign(size_t(g.m), kNaN);
  return o;
}

// The reference: conv_forward (+ relu_forward); relu_backward, conv_backward_filter, _data.
Outputs reference(const ConvGeom& g, const Floats& x, const Floats& w, const Floats& b,
                  const Floats& dy_in, bool relu, bool want_dx) {
  Outputs o = unwritten(g);
  Floats ws(size_t(cpu::conv_workspace(g)));
  cpu::conv_forward(g, x.data(), w.data(), b.data(), o.y.data(), ws.data());
  if (relu) cpu::relu_forward(g.y_size(), o.y.data());
  Floats dy = dy_in;
  if (relu) cpu::relu_backward(g.y_size(), o.y.data(), dy.data());
  cpu::conv_backward_filter(g, x.data(), dy.data(), o.dw.data(), o.db.data(), ws.data());
  if (want_dx) cpu::conv_backward_data(g, dy.data(), w.data(), o.dx.data(), ws.data());
  return o;
}

// The engine's kernels, with NaN in every output (each must be overwritten) and a guard past
// the workspace they asked for; x where it is, or (line ≥ 0) copied `line` floats past the
// start of a 64-byte line, NaN around it.
Outputs fast(const ConvGeom& g, const Floats& x_in, const Floats& w, const Floats& b,
             const Floats& dy_in, bool relu, bool want_dx, int line = -1) {
  cpu::AlignedFloats moved;
  const float* x = x_in.data();
  if (line >= 0) {
    moved.assign(size_t(g.x_size() + 16), kNaN);
    std::copy(x_in.begin(), x_in.end(), moved.begin() + line);
    x = moved.data() + line;
  }
  Outputs o = unwritten(g);
  const int64_t room = cpu::conv_fast_workspace(g);
  cpu::AlignedFloats ws(size_t(room + kGuardFloats), kGuard);
  cpu::conv_forward_fast(g, x, w.data(), b.data(), relu, o.y.data(), ws.data());
  Floats dy = dy_in;
  cpu::conv_backward_fast(g, x, relu ? o.y.data() : nullptr, dy.data(), w.data(),
                          o.dw.data(), o.db.data(), want_dx ? o.dx.data() : nullptr, ws.data());
  EXPECT_TRUE(std::all_of(ws.begin() + room, ws.end(), [](float v) { return v == kGuard; }))
      << "wrote past its workspace";
  return o;
}

void expect_same_bits(const Floats& got, const Floats& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_EQ(got[i], want[i]) << what << "[" << i << "]";
}
void expect_same_outputs(const Outputs& got, const Outputs& want, bool with_dx) {
  expect_same_bits(got.y, want.y, "y");
  expect_same_bits(got.dw, want.dw, "dw");
  expect_same_bits(got.db, want.db, "db");
  if (with_dx) expect_same_bits(got.dx, want.dx, "dx");
}

TEST(EngineConv, ExactOnIntegersEveryShape) {
  Rng rng(1501);
  for (const Case& c : cases()) {
    for (bool relu : {false, true}) {
      for (bool want_dx : {true, false}) {
        SCOPED_TRACE(c.name + (relu ? ", relu" : "") + (want_dx ? "" : ", no dx"));
        const ConvGeom& g = c.g;
        const auto [x, w, b, dy] = int_inputs(rng, g);
        const Outputs want = reference(g, x, w, b, dy, relu, want_dx);
        const Outputs got = fast(g, x, w, b, dy, relu, want_dx);
        expect_same_outputs(got, want, want_dx);
        if (relu) {  // the integers make exact zeros: the mask's edge is exercised
          EXPECT_TRUE(std::count(want.y.begin(), want.y.end(), 0.0f) > 0);
        }
      }
    }
  }
}

// Random floats: the sums run in another order than the reference's, so each result is
// within terms·ε·Σ|terms| of it (the magnitudes: the same ops on |inputs|).
TEST(EngineConv, WithinRoundingOnFloats) {
  Rng rng(1502);
  for (const Case& c : cases()) {
    SCOPED_TRACE(c.name);
    const ConvGeom& g = c.g;
    const Floats x = random_floats(rng, g.x_size()), w = random_floats(rng, g.w_size()),
                 b = random_floats(rng, g.m), dy = random_floats(rng, g.y_size());
    const Outputs want = reference(g, x, w, b, dy, false, true);
    const Outputs got = fast(g, x, w, b, dy, false, true);
    const Outputs mag = reference(g, abs_of(x), abs_of(w), abs_of(b), abs_of(dy), false, true);
    const double patch_terms = double(g.c) * g.kh * g.kw + 1;
    const double image_terms = double(g.n) * g.oh * g.ow;
    const double filter_terms = double(g.m) * g.kh * g.kw;
    auto check = [](const Floats& a, const Floats& ref, const Floats& m, double terms,
                    const char* what) {
      for (size_t i = 0; i < a.size(); ++i)
        ASSERT_LE(std::abs(double(a[i]) - ref[i]), 2 * terms * FLT_EPSILON * m[i])
            << what << "[" << i << "]";
    };
    check(got.y, want.y, mag.y, patch_terms, "y");
    check(got.dw, want.dw, mag.dw, image_terms, "dw");
    check(got.db, want.db, mag.db, image_terms, "db");
    check(got.dx, want.dx, mag.dx, filter_terms, "dx");
  }
}

// The same inputs twice give the same bits (the engine's determinism rests on it).
TEST(EngineConv, Deterministic) {
  Rng rng(1503);
  const ConvGeom g = conv(13, 3, 14, 14, 5, 3, 3, 1, 1, 1, 1, 1);
  const Floats x = random_floats(rng, g.x_size()), w = random_floats(rng, g.w_size()),
               b = random_floats(rng, g.m), dy = random_floats(rng, g.y_size());
  const Outputs a = fast(g, x, w, b, dy, true, true);
  const Outputs b2 = fast(g, x, w, b, dy, true, true);
  expect_same_outputs(a, b2, true);
}

// x anywhere within a 64-byte line (the workspace is aligned, as conv_fast_workspace asks): the
// direct tiles of a 1×5 or 1×7 window start where no read of a channel but the tile's last
// starts on a line (16 lanes: a shifted tile grid, whose tiles overlap their neighbours; valid
// convs read x in place, the same ones a padded map in the workspace). Every offset gives the
// reference's exact answer.
TEST(EngineConv, ExactAtEveryOffsetInALine) {
  Rng rng(1504);
  const std::vector<Case> shapes = {
      {"1x5 valid, direct (x read in place)", conv(2, 3, 9, 40, 6, 1, 5, 1, 0, 0, 0, 0)},
      {"1x5 valid, direct, planes 8 floats past a line", conv(2, 3, 3, 40, 10, 1, 5, 1, 0, 0, 0, 0)},
      {"1x7 same, direct", conv(2, 3, 8, 40, 17, 1, 7, 1, 0, 0, 3, 3)},
      {"1x5 same, direct, 2 tiles a plane", conv(3, 4, 2, 28, 8, 1, 5, 1, 0, 0, 2, 2)},
      {"3x3 valid, direct", conv(2, 4, 14, 36, 9, 3, 3, 1, 0, 0, 0, 0)},
  };
  for (const Case& c : shapes) {
    const ConvGeom& g = c.g;
    const auto [x, w, b, dy] = int_inputs(rng, g);
    const Outputs want = reference(g, x, w, b, dy, true, true);
    for (int line = 0; line < 16; ++line) {
      SCOPED_TRACE(c.name + ", " + std::to_string(line) + " floats into a line");
      expect_same_outputs(fast(g, x, w, b, dy, true, true, line), want, true);
    }
  }
}

// The ReLU of a NaN is 0, as relu_forward (and the GPU's activation) has it, on every path:
// the GEMM path, the one-channel loop, and the direct tiles, both those that write the output
// planes and the wide rows' copy. A NaN in x reaches many outputs; each must have the
// reference's bits.
TEST(EngineConv, ReluOfNaNAsTheReference) {
  Rng rng(1505);
  const std::vector<Case> shapes = {
      {"3x3 same, direct (wide rows)", conv(2, 5, 18, 20, 11, 3, 3, 1, 1, 1, 1, 1)},
      {"3x1 valid, direct (into the planes)", conv(3, 3, 21, 17, 9, 3, 1, 1, 0, 0, 0, 0)},
      {"3x3 valid, GEMM path", conv(5, 6, 5, 5, 9, 3, 3, 1, 0, 0, 0, 0)},
      {"3x3 same, 1 channel", conv(3, 1, 10, 13, 5, 3, 3, 1, 1, 1, 1, 1)},
  };
  for (const Case& c : shapes) {
    SCOPED_TRACE(c.name);
    const ConvGeom& g = c.g;
    auto [x, w, b, dy] = int_inputs(rng, g);
    for (int64_t i = 0; i < g.x_size(); i += 37) x[size_t(i)] = kNaN;
    const Outputs want = reference(g, x, w, b, dy, true, false);
    const Outputs got = fast(g, x, w, b, dy, true, false);
    ASSERT_TRUE(std::none_of(want.y.begin(), want.y.end(), [](float v) { return std::isnan(v); }));
    EXPECT_TRUE(std::count(want.y.begin(), want.y.end(), 0.0f) > 0);
    for (size_t i = 0; i < got.y.size(); ++i)
      ASSERT_TRUE(got.y[i] == want.y[i] && std::signbit(got.y[i]) == std::signbit(want.y[i]))
          << "y[" << i << "] " << got.y[i] << " against " << want.y[i];
  }
}

PoolGeom pool(int n, int c, int h, int w, int ph, int pw, int stride) {
  return {n, c, h, w, ph, pw, stride, (h - ph) / stride + 1, (w - pw) / stride + 1};
}

// The pool gives the reference's values and arg-maxes bit for bit, ties included (few
// distinct values make many: the first maximum must win, as in the reference).
TEST(EngineMaxPool, SameAsReferenceTiesIncluded) {
  Rng rng(1504);
  const PoolGeom shapes[] = {pool(1, 1, 2, 2, 2, 2, 2),   pool(3, 5, 7, 7, 2, 2, 2),
                             pool(2, 3, 26, 26, 2, 2, 2), pool(2, 2, 9, 6, 2, 2, 2),
                             pool(2, 2, 7, 7, 3, 3, 2),   pool(1, 2, 5, 6, 2, 3, 1)};
  for (const PoolGeom& g : shapes) {
    SCOPED_TRACE(std::to_string(g.h) + "x" + std::to_string(g.w) + " pool " +
                 std::to_string(g.ph) + "x" + std::to_string(g.pw) + "/" + std::to_string(g.stride));
    for (int distinct : {2, 1000}) {
      const Floats x = random_ints(rng, g.x_size(), 0, distinct - 1);
      Floats y(size_t(g.y_size()), kNaN), y_ref(size_t(g.y_size()), kNaN);
      std::vector<int32_t> arg(size_t(g.y_size()), -1), arg_ref(size_t(g.y_size()), -1);
      cpu::maxpool_forward(g, x.data(), y_ref.data(), arg_ref.data());
      cpu::maxpool_forward_fast(g, x.data(), y.data(), arg.data());
      expect_same_bits(y, y_ref, "y");
      for (size_t i = 0; i < arg.size(); ++i) ASSERT_EQ(arg[i], arg_ref[i]) << "argmax[" << i << "]";
    }
  }
}

// The update by ranges gives the bits of the gradient sum and cpu::adam over the whole.
TEST(EngineUpdate, SumAndAdamByRangesIsTheReference) {
  Rng rng(1505);
  const int64_t count = 1000;
  const int parts = 3;
  StepParams sp;
  sp.lr_t = 1e-3f, sp.beta1 = 0.9f, sp.beta2 = 0.999f, sp.eps = 1e-7f;
  std::vector<Floats> grads(parts);
  for (auto& g : grads) g = random_floats(rng, count);
  const Floats p0 = random_floats(rng, count), m0 = random_floats(rng, count);
  Floats v0 = random_floats(rng, count);
  for (auto& x : v0) x = std::abs(x);
  // The reference: the sum in thread order, then Adam over everything.
  Floats sum = grads[0], p = p0, m = m0, v = v0;
  for (int t = 1; t < parts; ++t)
    for (int64_t i = 0; i < count; ++i) sum[size_t(i)] += grads[size_t(t)][size_t(i)];
  cpu::adam(count, p.data(), sum.data(), m.data(), v.data(), &sp);
  // By ranges of odd lengths.
  std::vector<Floats> g2 = grads;
  float* gp[parts] = {g2[0].data(), g2[1].data(), g2[2].data()};
  Floats p2 = p0, m2 = m0, v2 = v0;
  const int64_t cuts[] = {0, 1, 17, 400, 999, 1000};
  for (size_t k = 0; k + 1 < std::size(cuts); ++k)
    cpu::sum_and_adam(cuts[k], cuts[k + 1], gp, parts, p2.data(), m2.data(), v2.data(), &sp);
  expect_same_bits(g2[0], sum, "summed gradient");
  expect_same_bits(p2, p, "parameters");
  expect_same_bits(m2, m, "m");
  expect_same_bits(v2, v, "v");
}

}  // namespace
}  // namespace splitconv
