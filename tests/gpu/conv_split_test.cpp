// The split-convolution kernels (cuda/conv_split.h) against the CPU ops on fresh random inputs:
// n×1 and 1×n, n ∈ {1, 2, 3, 5, 7} (the templated 3, 5, 7 and the generic path), valid and
// same padding (uneven for even n), odd map sizes, c ≠ m, batch 1 and 33, both block tiles.
#include "conv_split.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "resources.h"
#include "cpu/cpu_ops.h"
#include "splitconv/backend.h"
#include "splitconv/random.h"

namespace splitconv::gpu {
namespace {

using Floats = std::vector<float>;

// float32 on both sides; only the order of the sums differs, so the error is a few ulps of the
// largest terms, ~√(terms)·2⁻²⁴ ≈ 1e-6 of the largest output here: 1e-4 leaves room and still
// catches any misplaced tap, channel or pixel (those are O(1) relative errors).
constexpr double kTolerance = 1e-4;

const CudaStatus& status() {
  static const CudaStatus st = cuda_status();
  return st;
}

// tools/test.sh --gpu sets SPLITCONV_REQUIRE_GPU: there a missing device is a failure.
#define SKIP_WITHOUT_DEVICE()                                                                      \
  do {                                                                                             \
    if (status().devices.empty()) {                                                                \
      if (std::getenv("SPLITCONV_REQUIRE_GPU")) FAIL() << "no CUDA device: " << status().why_none; \
      GTEST_SKIP() << "no CUDA device: " << status().why_none;                                     \
    }                                                                                              \
  } while (0)

struct Case {
  bool vert;  // n×1, else 1×n
  int n;
  bool same;
  int batch, c, m, h, w;
};

std::string describe(const Case& k) {
  return std::string(k.vert ? "n×1" : "1×n") + " n=" + std::to_string(k.n) +
         (k.same ? " same" : " valid") + " batch " + std::to_string(k.batch) +
         " c=" + std::to_string(k.c) + " m=" + std::to_string(k.m) + " " + std::to_string(k.h) +
         "x" + std::to_string(k.w);
}

// Padding as the model computes it: pad_top = (k−1)/2, the odd one at the bottom/right.
ConvGeom split_geom(int batch, int c, int h, int w, int m, int kh, int kw, bool same) {
  if (same) return {batch, c, h, w, m, kh, kw, 1, (kh - 1) / 2, (kw - 1) / 2, h, w};
  return {batch, c, h, w, m, kh, kw, 1, 0, 0, h - kh + 1, w - kw + 1};
}

ConvGeom geom(const Case& k) {
  return split_geom(k.batch, k.c, k.h, k.w, k.m, k.vert ? k.n : 1, k.vert ? 1 : k.n, k.same);
}

// Every tap count, axis, padding and batch size on a small odd map with c ≠ m.
std::vector<Case> small_cases() {
  std::vector<Case> cases;
  for (bool vert : {true, false})
    for (int n : {1, 2, 3, 5, 7})
      for (bool same : {false, true})
        for (int batch : {1, 33}) cases.push_back({vert, n, same, batch, 6, 5, 9, 11});
  return cases;
}

// More channels than one block tile holds (70 > 64 rows, 37·n reduction with a remainder)
// and more pixels than one tile, for the templated and the generic path.
std::vector<Case> wide_cases() {
  std::vector<Case> cases;
  for (bool vert : {true, false})
    for (int n : {2, 5})
      for (bool same : {false, true}) cases.push_back({vert, n, same, 33, 37, 70, 7, 9});
  cases.push_back({true, 3, true, 1, 70, 37, 9, 7});
  return cases;
}

Floats random_floats(Rng& rng, int64_t count) {
  Floats v(static_cast<size_t>(count));
  for (float& f : v) f = rng.uniform(-1.0f, 1.0f);
  return v;
}

DeviceBuffer<float> to_device(const Floats& v) {
  DeviceBuffer<float> d(v.size(), "test input");
  CUDA_CHECK(cudaMemcpy(d.get(), v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
  return d;
}

// A device output preset to NaN, so that anything the kernel fails to write shows.
DeviceBuffer<float> nan_output(int64_t count) {
  DeviceBuffer<float> d(static_cast<size_t>(count), "test output");
  CUDA_CHECK(cudaMemset(d.get(), 0xff, d.bytes()));
  return d;
}

Floats to_host(const DeviceBuffer<float>& d) {
  CUDA_CHECK(cudaDeviceSynchronize());
  Floats v(d.size());
  CUDA_CHECK(cudaMemcpy(v.data(), d.get(), d.bytes(), cudaMemcpyDeviceToHost));
  return v;
}

// max |got − ref| / max |ref|; a NaN anywhere makes it infinite.
double relative_error(const Floats& got, const Floats& ref) {
  EXPECT_EQ(got.size(), ref.size());
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ref.size() && i < got.size(); ++i) {
    const double d = std::abs(double(got[i]) - double(ref[i]));
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    scale = std::max(scale, std::abs(double(ref[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

void expect_forward_matches(const Case& k, bool relu, SplitTile tile, uint64_t seed) {
  const ConvGeom g = geom(k);
  ASSERT_TRUE(split_conv_supports(g));
  Rng rng(seed);
  const Floats x = random_floats(rng, g.x_size()), w = random_floats(rng, g.w_size()),
               b = random_floats(rng, g.m);
  Floats ref(static_cast<size_t>(g.y_size())), ws(static_cast<size_t>(cpu::conv_workspace(g)));
  cpu::conv_forward(g, x.data(), w.data(), b.data(), ref.data(), ws.data());
  if (relu) cpu::relu_forward(g.y_size(), ref.data());

  const DeviceBuffer<float> dx = to_device(x), dw = to_device(w), db = to_device(b);
  DeviceBuffer<float> y = nan_output(g.y_size());
  split_conv_forward(g, dx.get(), dw.get(), db.get(), relu, y.get(), nullptr, tile);
  EXPECT_LE(relative_error(to_host(y), ref), kTolerance);
}

void expect_backward_data_matches(const Case& k, SplitTile tile, uint64_t seed) {
  const ConvGeom g = geom(k);
  Rng rng(seed);
  const Floats dy = random_floats(rng, g.y_size()), w = random_floats(rng, g.w_size());
  Floats ref(static_cast<size_t>(g.x_size())), ws(static_cast<size_t>(cpu::conv_workspace(g)));
  cpu::conv_backward_data(g, dy.data(), w.data(), ref.data(), ws.data());

  const DeviceBuffer<float> ddy = to_device(dy), dw = to_device(w);
  DeviceBuffer<float> dx = nan_output(g.x_size());
  split_conv_backward_data(g, ddy.get(), dw.get(), dx.get(), nullptr, tile);
  EXPECT_LE(relative_error(to_host(dx), ref), kTolerance);
}

void expect_backward_filter_matches(const Case& k, uint64_t seed) {
  const ConvGeom g = geom(k);
  Rng rng(seed);
  const Floats x = random_floats(rng, g.x_size()), dy = random_floats(rng, g.y_size());
  Floats dw_ref(static_cast<size_t>(g.w_size())), db_ref(static_cast<size_t>(g.m)),
      ws(static_cast<size_t>(cpu::conv_workspace(g)));
  cpu::conv_backward_filter(g, x.data(), dy.data(), dw_ref.data(), db_ref.data(), ws.data());

  const DeviceBuffer<float> dx = to_device(x), ddy = to_device(dy);
  DeviceBuffer<float> dw = nan_output(g.w_size()), db = nan_output(g.m);
  DeviceBuffer<float> work((split_conv_filter_workspace(g) + 3) / 4, "filter workspace");
  split_conv_backward_filter(g, dx.get(), ddy.get(), dw.get(), db.get(), work.get(), nullptr);
  EXPECT_LE(relative_error(to_host(dw), dw_ref), kTolerance) << "dw";
  EXPECT_LE(relative_error(to_host(db), db_ref), kTolerance) << "db";
}

TEST(CudaSplitConvForward, MatchesCpuForEveryTapCountPaddingAndBatch) {
  SKIP_WITHOUT_DEVICE();
  uint64_t seed = 100;
  for (const Case& k : small_cases()) {
    for (SplitTile tile : {SplitTile::Big, SplitTile::Small}) {
      SCOPED_TRACE(describe(k) + (tile == SplitTile::Big ? ", 64x64 tile" : ", 32x32 tile"));
      ++seed;
      expect_forward_matches(k, /*relu=*/seed % 2 == 0, tile, seed);
    }
  }
}

TEST(CudaSplitConvForward, MatchesCpuAcrossSeveralTiles) {
  SKIP_WITHOUT_DEVICE();
  uint64_t seed = 200;
  for (const Case& k : wide_cases()) {
    SCOPED_TRACE(describe(k));
    expect_forward_matches(k, true, SplitTile::Big, ++seed);
    expect_forward_matches(k, false, SplitTile::Small, ++seed);
    expect_forward_matches(k, true, SplitTile::Auto, ++seed);
  }
}

TEST(CudaSplitConvBackwardData, MatchesCpuForEveryTapCountPaddingAndBatch) {
  SKIP_WITHOUT_DEVICE();
  uint64_t seed = 300;
  for (const Case& k : small_cases()) {
    for (SplitTile tile : {SplitTile::Big, SplitTile::Small}) {
      SCOPED_TRACE(describe(k) + (tile == SplitTile::Big ? ", 64x64 tile" : ", 32x32 tile"));
      expect_backward_data_matches(k, tile, ++seed);
    }
  }
}

TEST(CudaSplitConvBackwardData, MatchesCpuAcrossSeveralTiles) {
  SKIP_WITHOUT_DEVICE();
  uint64_t seed = 400;
  for (const Case& k : wide_cases()) {
    SCOPED_TRACE(describe(k));
    expect_backward_data_matches(k, SplitTile::Big, ++seed);
    expect_backward_data_matches(k, SplitTile::Small, ++seed);
  }
}

TEST(CudaSplitConvBackwardFilter, MatchesCpuForEveryTapCountPaddingAndBatch) {
  SKIP_WITHOUT_DEVICE();
  uint64_t seed = 500;
  for (const Case& k : small_cases()) {
    SCOPED_TRACE(describe(k));
    expect_backward_filter_matches(k, ++seed);
  }
}

TEST(CudaSplitConvBackwardFilter, MatchesCpuAcrossSeveralTiles) {
  SKIP_WITHOUT_DEVICE();
  uint64_t seed = 600;
  for (const Case& k : wide_cases()) {
    SCOPED_TRACE(describe(k));
    expect_backward_filter_matches(k, ++seed);
  }
}

// The partial sums are added in a fixed order: two runs give the same bits.
TEST(CudaSplitConvBackwardFilter, IsDeterministic) {
  SKIP_WITHOUT_DEVICE();
  const ConvGeom g = geom({true, 3, true, 33, 37, 70, 7, 9});
  Rng rng(700);
  const DeviceBuffer<float> x = to_device(random_floats(rng, g.x_size())),
                            dy = to_device(random_floats(rng, g.y_size()));
  DeviceBuffer<float> work((split_conv_filter_workspace(g) + 3) / 4, "filter workspace");
  Floats first_dw, first_db;
  for (int run = 0; run < 2; ++run) {
    DeviceBuffer<float> dw = nan_output(g.w_size()), db = nan_output(g.m);
    split_conv_backward_filter(g, x.get(), dy.get(), dw.get(), db.get(), work.get(), nullptr);
    const Floats hw = to_host(dw), hb = to_host(db);
    if (run == 0) {
      first_dw = hw;
      first_db = hb;
      continue;
    }
    EXPECT_EQ(0, std::memcmp(hw.data(), first_dw.data(), hw.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(hb.data(), first_db.data(), hb.size() * sizeof(float)));
  }
}

// The backend sizes the workspace once, at the planned batch; the last batch may be smaller.
TEST(CudaSplitConvBackwardFilter, WorkspaceForTheBatchCoversEverySmallerBatch) {
  for (const Case& k : wide_cases()) {
    ConvGeom g = geom(k);
    g.n = 256;
    const size_t planned = split_conv_filter_workspace(g);
    for (int n = 1; n <= 256; ++n) {
      g.n = n;
      ASSERT_LE(split_conv_filter_workspace(g), planned) << describe(k) << ", batch " << n;
    }
  }
}

TEST(CudaSplitConvSupports, TakesOnlyStrideOneSplitKernels) {
  EXPECT_TRUE(split_conv_supports(split_geom(2, 3, 9, 9, 4, 3, 1, false)));
  EXPECT_TRUE(split_conv_supports(split_geom(2, 3, 9, 9, 4, 1, 5, true)));
  EXPECT_TRUE(split_conv_supports(split_geom(2, 3, 9, 9, 4, 1, 1, false)));
  EXPECT_FALSE(split_conv_supports(split_geom(2, 3, 9, 9, 4, 3, 3, false)));
  ConvGeom strided = split_geom(2, 3, 9, 9, 4, 3, 1, false);
  strided.stride = 2;
  strided.oh = 4;
  EXPECT_FALSE(split_conv_supports(strided));
  EXPECT_FALSE(split_conv_supports(split_geom(2, 3, 2, 9, 4, 3, 1, false)));  // empty output
}

// ---- the fused pair ----

struct PairCase {
  int n;
  bool same;
  int batch, c, m1, m2, h, w;
};

std::string describe(const PairCase& k) {
  return "n=" + std::to_string(k.n) + (k.same ? " same" : " valid") + " batch " +
         std::to_string(k.batch) + " c=" + std::to_string(k.c) + " m1=" + std::to_string(k.m1) +
         " m2=" + std::to_string(k.m2) + " " + std::to_string(k.h) + "x" + std::to_string(k.w);
}

void expect_pair_matches(const PairCase& k, bool relu1, bool relu2, bool keep_z, uint64_t seed) {
  const ConvGeom gv = split_geom(k.batch, k.c, k.h, k.w, k.m1, k.n, 1, k.same);
  const ConvGeom gh = split_geom(k.batch, k.m1, gv.oh, gv.ow, k.m2, 1, k.n, k.same);
  ASSERT_TRUE(split_pair_supports(gv, gh));
  Rng rng(seed);
  const Floats x = random_floats(rng, gv.x_size()), w1 = random_floats(rng, gv.w_size()),
               b1 = random_floats(rng, gv.m), w2 = random_floats(rng, gh.w_size()),
               b2 = random_floats(rng, gh.m);
  Floats z_ref(static_cast<size_t>(gv.y_size())), y_ref(static_cast<size_t>(gh.y_size()));
  Floats ws(static_cast<size_t>(std::max(cpu::conv_workspace(gv), cpu::conv_workspace(gh))));
  cpu::conv_forward(gv, x.data(), w1.data(), b1.data(), z_ref.data(), ws.data());
  if (relu1) cpu::relu_forward(gv.y_size(), z_ref.data());
  cpu::conv_forward(gh, z_ref.data(), w2.data(), b2.data(), y_ref.data(), ws.data());
  if (relu2) cpu::relu_forward(gh.y_size(), y_ref.data());

  const DeviceBuffer<float> dx = to_device(x), dw1 = to_device(w1), db1 = to_device(b1),
                            dw2 = to_device(w2), db2 = to_device(b2);
  DeviceBuffer<float> z = nan_output(gv.y_size()), y = nan_output(gh.y_size());
  split_pair_forward(gv, gh, dx.get(), dw1.get(), db1.get(), relu1, dw2.get(), db2.get(), relu2,
                     keep_z ? z.get() : nullptr, y.get(), nullptr);
  EXPECT_LE(relative_error(to_host(y), y_ref), kTolerance) << "y";
  if (keep_z) {
    EXPECT_LE(relative_error(to_host(z), z_ref), kTolerance) << "z";
  }
}

// Bands of rows cross image boundaries (7 rows an image, 2 or 3 rows a band).
TEST(CudaSplitPairForward, MatchesTwoCpuConvolutionsForEveryTapCountPaddingAndBatch) {
  SKIP_WITHOUT_DEVICE();
  uint64_t seed = 800;
  for (int n : {1, 2, 3, 5, 7})
    for (bool same : {false, true})
      for (int batch : {1, 33}) {
        const PairCase k{n, same, batch, 6, 9, 5, 9, 11};
        SCOPED_TRACE(describe(k));
        expect_pair_matches(k, true, true, /*keep_z=*/batch == 33, ++seed);
      }
}

TEST(CudaSplitPairForward, MatchesAcrossSeveralTilesAndWithoutReLU) {
  SKIP_WITHOUT_DEVICE();
  uint64_t seed = 900;
  for (int n : {2, 3})
    for (bool same : {false, true}) {
      const PairCase k{n, same, 33, 20, 70, 66, 7, 9};
      SCOPED_TRACE(describe(k));
      expect_pair_matches(k, true, true, true, ++seed);
      expect_pair_matches(k, false, true, false, ++seed);
      expect_pair_matches(k, true, false, true, ++seed);
    }
  const PairCase seed_shape{3, false, 32, 64, 64, 64, 5, 5};  // seed-v1's conv3 pair
  SCOPED_TRACE(describe(seed_shape));
  expect_pair_matches(seed_shape, true, true, true, ++seed);
}

TEST(CudaSplitPairSupports, TakesAnNx1ThenA1xnOnItsOutput) {
  const ConvGeom gv = split_geom(2, 3, 9, 11, 8, 3, 1, false);
  const ConvGeom gh = split_geom(2, 8, gv.oh, gv.ow, 5, 1, 3, false);
  EXPECT_TRUE(split_pair_supports(gv, gh));
  EXPECT_FALSE(split_pair_supports(gh, gv));  // 1×n first
  EXPECT_FALSE(split_pair_supports(gv, split_geom(2, 8, gv.oh, gv.ow, 5, 1, 5, false)));  // n
  EXPECT_FALSE(split_pair_supports(gv, split_geom(2, 7, gv.oh, gv.ow, 5, 1, 3, false)));  // c
  // One band row of z (m1 × width floats) must fit the shared memory set aside for it.
  const ConvGeom wide = split_geom(1, 3, 9, 4096, 64, 3, 1, false);
  EXPECT_FALSE(split_pair_supports(wide, split_geom(1, 64, wide.oh, wide.ow, 5, 1, 3, false)));
}

}  // namespace
}  // namespace splitconv::gpu
