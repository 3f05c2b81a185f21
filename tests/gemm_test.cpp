// The allocation-free GEMM (cpu/gemm.h) and the engine's dense ops built on it: the bits of
// the Eigen expressions they replace, within the packing space they ask for.
#include "cpu/gemm.h"
#include "cpu/gemm_tiles.h"

#include <gtest/gtest.h>

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cpu/aligned.h"
#include "cpu/cpu_ops.h"
#include "cpu/eigen_maps.h"
#include "cpu/engine_ops.h"
#include "splitconv/random.h"

namespace splitconv {
namespace {

using cpu::Strided;
using CMap = cpu::CStridedMapR;
using Map = cpu::StridedMapR;
constexpr float kGuard = 4321.5f;

cpu::AlignedFloats random_floats(Rng& rng, int64_t n) {
  cpu::AlignedFloats v(size_t(std::max<int64_t>(n, 1)));
  for (float& x : v) x = rng.uniform(-1.0f, 1.0f);
  return v;
}

// C (m×n, leading dim ldc) = / += A·B by the Eigen expression, A and B stored with the given
// leading dimensions, as stored or transposed.
void eigen_product(int64_t m, int64_t n, int64_t k, cpu::GemmOperand a, cpu::GemmOperand b,
                   float* c, int64_t ldc, bool accumulate) {
  Map cm(c, m, n, Strided(ldc));
  const CMap as = a.transposed ? CMap(a.p, k, m, Strided(a.ld)) : CMap(a.p, m, k, Strided(a.ld));
  const CMap bs = b.transposed ? CMap(b.p, n, k, Strided(b.ld)) : CMap(b.p, k, n, Strided(b.ld));
  auto run = [&](const auto& x, const auto& y) {
    if (accumulate) {
      cm.noalias() += x * y;
    } else {
      cm.noalias() = x * y;
    }
  };
  if (a.transposed && b.transposed) return run(as.transpose(), bs.transpose());
  if (a.transposed) return run(as.transpose(), bs);
  if (b.transposed) return run(as, bs.transpose());
  run(as, bs);
}

struct Dims {
  int64_t m, n, k;
};

TEST(Gemm, SameBitsAsEigenEveryShapeAndLayout) {
  Rng rng(2201);
  // Tiny (coefficient-based), a single row or column (matrix-vector), and products large
  // enough that Eigen blocks them (k past its kc, m and n past mc) — the conv shapes included.
  const Dims dims[] = {{3, 4, 5},     {1, 37, 19},   {29, 1, 41},   {7, 9, 3},   {16, 256, 800},
                       {16, 800, 256}, {256, 800, 16}, {64, 1024, 576}, {576, 1024, 64},
                       {64, 576, 1024}, {33, 517, 301}, {2, 2, 2000}};
  int checked = 0;
  for (const Dims& d : dims) {
    for (int layout = 0; layout < 4; ++layout) {
      for (bool accumulate : {false, true}) {
        const bool ta = layout & 1, tb = layout & 2;
        const int64_t pad = 3;  // leading dimensions past the rows, to check the strides
        const int64_t lda = (ta ? d.m : d.k) + pad, ldb = (tb ? d.k : d.n) + pad, ldc = d.n + pad;
        const cpu::AlignedFloats a = random_floats(rng, (ta ? d.k : d.m) * lda);
        const cpu::AlignedFloats b = random_floats(rng, (tb ? d.n : d.k) * ldb);
        const cpu::AlignedFloats c0 = random_floats(rng, d.m * ldc);
        cpu::AlignedFloats want = c0, got = c0;
        eigen_product(d.m, d.n, d.k, {a.data(), lda, ta}, {b.data(), ldb, tb}, want.data(), ldc,
                      accumulate);
        const int64_t room = cpu::gemm_space(d.m, d.n, d.k);
        cpu::AlignedFloats space(size_t(room + 64), kGuard);
        cpu::gemm(d.m, d.n, d.k, {a.data(), lda, ta}, {b.data(), ldb, tb}, got.data(), ldc,
                  accumulate, space.data());
        const std::string what = std::to_string(d.m) + "x" + std::to_string(d.n) + "x" +
                                 std::to_string(d.k) + " layout " + std::to_string(layout) +
                                 (accumulate ? " +=" : " =");
        ASSERT_TRUE(std::all_of(space.begin() + room, space.end(),
                                [](float v) { return v == kGuard; }))
            << what << ": wrote past its packing space";
        for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(got[i], want[i]) << what << " [" << i << "]";
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, int(std::size(dims)) * 8);
}

TEST(Gemm, EmptyDepthClearsOrKeeps) {
  cpu::AlignedFloats c(6, 2.0f), space(16);
  const float a = 0, b = 0;
  cpu::gemm(2, 3, 0, {&a, 1}, {&b, 3}, c.data(), 3, true, space.data());
  EXPECT_TRUE(std::all_of(c.begin(), c.end(), [](float v) { return v == 2.0f; }));
  cpu::gemm(2, 3, 0, {&a, 1}, {&b, 3}, c.data(), 3, false, space.data());
  EXPECT_TRUE(std::all_of(c.begin(), c.end(), [](float v) { return v == 0.0f; }));
}

// The convolutions' GEMM (cpu/gemm_tiles.h) at vector width L, checked against sums in double:
// exact on small integers (every partial sum is an integer below 2^24, so any order gives the
// same float), and on random floats within the bound of a float sum of k products in any order,
// k·u·Σ|a·b| (u = 2^-24, one rounding per product and per addition, to first order), doubled
// for the block sums added to C and to C's own value. Every layout of A and B, = and +=, tiles
// cut by m, n and the blocks of rows, columns and depth; nothing written past the workspace or
// outside C's m×n; the same bits for the same values whatever the layout.
template <int L>
void check_tiles(bool integers) {
  using T = cpu::tiles::Tile<L>;
  Rng rng(integers ? 2203 : 2204);
  const int64_t cols_block = cpu::tiles::cols_block<L>();
  const Dims dims[] = {{1, 1, 1},
                       {T::rows, T::cols, 3},
                       {T::rows + 1, T::cols + 1, 5},
                       {7, 9, 2 * cpu::tiles::kDepth + 3},  // three depth blocks
                       {cpu::tiles::kRows + 5, 40, 17},     // two row blocks
                       {3 * T::rows + 2, 50, 37},  // A's panels packed two, one and part at a time
                       {3, cols_block + 7, 4},              // two column blocks
                       {64, 1089, 288},                     // a conv's forward (seed-v0 conv2)
                       {2, 2, 1}};
  for (const Dims& d : dims) {
    const int64_t pad = 3;
    // A and B in row-major order, then copied into the layout under test.
    std::vector<float> a0(size_t(d.m * d.k)), b0(size_t(d.k * d.n)), c0(size_t(d.m * (d.n + pad)));
    auto draw = [&](std::vector<float>& v) {
      for (float& x : v) x = integers ? float(int(rng.uniform(-8.0f, 8.0f))) : rng.uniform(-1.0f, 1.0f);
    };
    draw(a0);
    draw(b0);
    draw(c0);
    std::vector<float> first;
    for (int layout = 0; layout < 4; ++layout) {
      for (bool accumulate : {false, true}) {
        const bool ta = layout & 1, tb = layout & 2;
        const int64_t lda = (ta ? d.m : d.k) + pad, ldb = (tb ? d.k : d.n) + pad, ldc = d.n + pad;
        cpu::AlignedFloats a(size_t((ta ? d.k : d.m) * lda), kGuard), b(size_t((tb ? d.n : d.k) * ldb), kGuard);
        for (int64_t i = 0; i < d.m; ++i)
          for (int64_t p = 0; p < d.k; ++p) a[ta ? p * lda + i : i * lda + p] = a0[i * d.k + p];
        for (int64_t p = 0; p < d.k; ++p)
          for (int64_t j = 0; j < d.n; ++j) b[tb ? j * ldb + p : p * ldb + j] = b0[p * d.n + j];
        cpu::AlignedFloats c(c0.begin(), c0.end());
        const int64_t room = cpu::tiles::space<L>(d.m, d.n, d.k);
        cpu::AlignedFloats space(size_t(room + 64), kGuard);
        cpu::tiles::gemm<L>(d.m, d.n, d.k, {a.data(), lda, ta}, {b.data(), ldb, tb}, c.data(), ldc,
                            accumulate, space.data());
        const std::string what = "L " + std::to_string(L) + ", " + std::to_string(d.m) + "x" +
                                 std::to_string(d.n) + "x" + std::to_string(d.k) + " layout " +
                                 std::to_string(layout) + (accumulate ? " +=" : " =");
        ASSERT_TRUE(std::all_of(space.begin() + room, space.end(), [](float v) { return v == kGuard; }))
            << what << ": wrote past its workspace";
        for (int64_t i = 0; i < d.m; ++i) {
          for (int64_t j = 0; j < ldc; ++j) {
            const float got = c[size_t(i * ldc + j)], before = c0[size_t(i * ldc + j)];
            if (j >= d.n) {
              ASSERT_EQ(got, before) << what << ": wrote C(" << i << ", " << j << ") past n";
              continue;
            }
            double want = accumulate ? before : 0.0, magnitude = accumulate ? std::abs(before) : 0.0;
            for (int64_t p = 0; p < d.k; ++p) {
              const double term = double(a0[size_t(i * d.k + p)]) * b0[size_t(p * d.n + j)];
              want += term;
              magnitude += std::abs(term);
            }
            if (integers) {
              ASSERT_EQ(got, float(want)) << what << " C(" << i << ", " << j << ")";
            } else {
              const double bound = 2.0 * double(d.k + 1) * std::ldexp(1.0, -24) * magnitude;
              ASSERT_LE(std::abs(got - want), bound) << what << " C(" << i << ", " << j << ")";
            }
          }
        }
        if (accumulate) continue;
        std::vector<float> bits(c.begin(), c.end());
        if (layout == 0) {
          first = bits;
        } else {
          ASSERT_EQ(bits, first) << what << ": other bits than layout 0";
        }
      }
    }
  }
}

TEST(GemmTiles, EveryWidthExactOnIntegers) {
  check_tiles<4>(true);
  check_tiles<8>(true);
  check_tiles<16>(true);
}

TEST(GemmTiles, EveryWidthWithinRoundingOnFloats) {
  check_tiles<4>(false);
  check_tiles<8>(false);
  check_tiles<16>(false);
}

TEST(GemmTiles, EmptyDepthClearsOrKeeps) {
  cpu::AlignedFloats c(6, 2.0f), space(16);
  const float a = 0, b = 0;
  cpu::tiles::gemm<16>(2, 3, 0, {&a, 1}, {&b, 3}, c.data(), 3, true, space.data());
  EXPECT_TRUE(std::all_of(c.begin(), c.end(), [](float v) { return v == 2.0f; }));
  cpu::tiles::gemm<16>(2, 3, 0, {&a, 1}, {&b, 3}, c.data(), 3, false, space.data());
  EXPECT_TRUE(std::all_of(c.begin(), c.end(), [](float v) { return v == 0.0f; }));
}

// The engine's dense ops give the reference's bits, for every row count up to the planned one.
TEST(EngineDense, SameBitsAsTheReference) {
  Rng rng(2202);
  struct Case {
    int n, in, out;
  };
  for (const Case& c : {Case{16, 800, 256}, Case{5, 256, 10}, Case{1, 33, 7}, Case{9, 3, 2}}) {
    const DenseGeom planned{c.n, c.in, c.out};
    const int64_t room = cpu::dense_fast_workspace(planned);
    for (int n = 1; n <= c.n; ++n) {
      const DenseGeom g{n, c.in, c.out};
      const cpu::AlignedFloats x = random_floats(rng, int64_t(n) * c.in);
      const cpu::AlignedFloats w = random_floats(rng, int64_t(c.out) * c.in);
      const cpu::AlignedFloats b = random_floats(rng, c.out);
      const cpu::AlignedFloats dy = random_floats(rng, int64_t(n) * c.out);
      cpu::AlignedFloats space(size_t(room + 64), kGuard);
      for (bool relu : {false, true}) {
        cpu::AlignedFloats y1(size_t(n) * c.out), y2(y1.size());
        cpu::dense_forward(g, x.data(), w.data(), b.data(), relu, y1.data());
        cpu::dense_forward_fast(g, x.data(), w.data(), b.data(), relu, y2.data(), space.data());
        ASSERT_EQ(y1, y2) << "forward, " << n << " rows of " << c.in << "->" << c.out;
      }
      cpu::AlignedFloats dx1(size_t(n) * c.in), dw1(size_t(c.out) * c.in), db1(size_t(c.out));
      cpu::AlignedFloats dx2 = dx1, dw2 = dw1, db2 = db1;
      cpu::dense_backward(g, x.data(), w.data(), dy.data(), dx1.data(), dw1.data(), db1.data());
      cpu::dense_backward_fast(g, x.data(), w.data(), dy.data(), dx2.data(), dw2.data(), db2.data(),
                               space.data());
      ASSERT_EQ(dx1, dx2) << "dx, " << n << " rows";
      ASSERT_EQ(dw1, dw2) << "dw, " << n << " rows";
      ASSERT_EQ(db1, db2) << "db, " << n << " rows";
      ASSERT_TRUE(std::all_of(space.begin() + room, space.end(), [](float v) { return v == kGuard; }))
          << "wrote past its workspace";
    }
  }
}

}  // namespace
}  // namespace splitconv
