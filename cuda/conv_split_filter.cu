// n×1 and 1×n convolutions, backward-filter: dw[m, k] = Σ_p dy[m, p]·x_col[k, p] and
// db[m] = Σ_p dy[m, p], reduced over every image and pixel p. The weights are small (m × c·n)
// and the reduction long (images·oh·ow), so the pixels are split into ranges: each block sums one
// range for one m × k tile into its own slice of the workspace, and a second kernel adds the
// slices in a fixed order. No atomics: the result is the same bits on every run.
#include <algorithm>

#include "check.h"
#include "conv_split.h"
#include "conv_split_tile.cuh"
#include "splitconv/error.h"

namespace splitconv::gpu {
namespace split {
namespace {

using FilterTile = BigTile;
static_assert(FilterTile::BK == 16, "db's lane sum below adds 16 neighbouring lanes");

// Enough blocks to fill a large GPU twice over; a range is at least 4 slices (64 pixels), so
// that the partial sums stay few for small maps.
constexpr int64_t kFilterTargetBlocks = 256;
constexpr int64_t kMinStepsPerRange = 4;
constexpr int64_t kMaxRanges = 256;


struct PixelRanges {
  int count = 1;  // ranges actually used (≤ bound)
  int bound = 1;  // what the workspace is sized for; never decreases with the batch
  int steps = 1;  // BK-slices of pixels per range
};

PixelRanges pixel_ranges(const ConvGeom& g) {
  const int64_t K = int64_t(g.c) * tap_count(g);
  const int64_t P = int64_t(g.n) * g.oh * g.ow;
  const int64_t steps = ceil_div(P, FilterTile::BK);
  const int64_t tiles = ceil_div(g.m, FilterTile::BM) * ceil_div(K, FilterTile::BN);
  int64_t r = std::max<int64_t>(1, kFilterTargetBlocks / std::max<int64_t>(1, tiles));
  r = std::min(r, std::max<int64_t>(1, steps / kMinStepsPerRange));
  r = std::min(r, kMaxRanges);
  PixelRanges pr;
  pr.bound = int(r);
  pr.steps = int(std::max<int64_t>(1, ceil_div(steps, r)));
  pr.count = int(std::max<int64_t>(1, ceil_div(steps, pr.steps)));  // ≤ r
  return pr;
}

// One block: rows m0.. of dw, columns k0.. (k = c·n + t), pixels of range blockIdx.z.
// partial: ranges × m × (K + 1), column K holding the range's Σ dy (from the blocks with
// blockIdx.x == 0, which see every pixel of every row of their tile).
template <int NT>
__global__ void __launch_bounds__(FilterTile::kThreads)
    filter_partial_kernel(ConvGeom g, const float* __restrict__ x, const float* __restrict__ dy,
                          int steps_per_range, float* __restrict__ partial) {
  using Cfg = FilterTile;
  __shared__ TileSmem<Cfg> s;
  const bool vert = is_vertical(g);
  const int n = taps<NT>(tap_count(g));
  const int K = g.c * n, plane = g.oh * g.ow, P = g.n * plane;
  const int m0 = int(blockIdx.y) * Cfg::BM, k0 = int(blockIdx.x) * Cfg::BN;
  const int p_begin = int(blockIdx.z) * steps_per_range * Cfg::BK;
  const int p_end = min(P, p_begin + steps_per_range * Cfg::BK);
  GradRowsA<Cfg> la(dy, g.m, plane, P, m0);
  PatchRowsB<Cfg, NT> lb(x, g.c, g.h, g.w, n, g.oh, g.ow, P, g.pad_top, g.pad_left, vert ? 1 : 0,
                         vert ? 0 : 1, k0);
  float acc[Cfg::TM][Cfg::TN];
  zero<Cfg>(acc);
  gemm_steps<Cfg>(la, lb, p_begin, p_end, s, acc);

  float* out = partial + int64_t(blockIdx.z) * g.m * (K + 1);
#pragma unroll
  for (int i = 0; i < Cfg::TM; ++i) {
    const int m = m0 + my_row<Cfg>(i);
    if (m >= g.m) continue;
#pragma unroll
    for (int j = 0; j < Cfg::TN; ++j) {
      const int k = k0 + my_col<Cfg>(j);
      if (k < K) out[int64_t(m) * (K + 1) + k] = acc[i][j];
    }
  }
  if (blockIdx.x == 0) {  // the same for the whole block
    // Each thread summed the dy it fetched for its rows at its pixel slot tid % 16; the 16
    // slots of a row are 16 neighbouring lanes of one warp, added by a butterfly.
    using Slots = KMajorSlots<Cfg>;
#pragma unroll
    for (int r = 0; r < Cfg::kALoads; ++r) {
      float sum = la.row_sum[r];
#pragma unroll
      for (int lane_bit = Cfg::BK / 2; lane_bit > 0; lane_bit /= 2)
        sum += __shfl_xor_sync(0xffffffffu, sum, lane_bit);
      const int m = m0 + Slots::row(r);
      if (Slots::kk() == 0 && m < g.m) out[int64_t(m) * (K + 1) + K] = sum;
    }
  }
}

// dw[m, k] = Σ_r partial[r, m, k] for k < K, db[m] = Σ_r partial[r, m, K], r in order.
__global__ void filter_reduce_kernel(int M, int K, int ranges, const float* __restrict__ partial,
                                     float* __restrict__ dw, float* __restrict__ db) {
  const int64_t row = int64_t(K) + 1, total = int64_t(M) * row;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int r = 0; r < ranges; ++r) sum += partial[r * total + i];
    const int64_t m = i / row, k = i - m * row;
    if (k < K)
      dw[m * K + k] = sum;
    else if (db)
      db[m] = sum;
  }
}

template <int NT>
void launch_filter(const ConvGeom& g, const float* x, const float* dy, float* dw, float* db,
                   float* partial, cudaStream_t s) {
  const int K = g.c * tap_count(g);
  const PixelRanges pr = pixel_ranges(g);
  const dim3 grid(unsigned(ceil_div(K, FilterTile::BN)), unsigned(ceil_div(g.m, FilterTile::BM)),
                  unsigned(pr.count));
  filter_partial_kernel<NT><<<grid, FilterTile::kThreads, 0, s>>>(g, x, dy, pr.steps, partial);
  CHECK_LAUNCH();
  constexpr int kBlock = 256;
  const int64_t total = int64_t(g.m) * (K + 1);
  filter_reduce_kernel<<<grid_for(total, kBlock), kBlock, 0, s>>>(g.m, K, pr.count, partial, dw,
                                                                  db);
  CHECK_LAUNCH();
}

}  // namespace
}  // namespace split

size_t split_conv_filter_workspace(const ConvGeom& g) {
  if (!split_conv_supports(g)) return 0;
  const int64_t K = int64_t(g.c) * split::tap_count(g);
  return size_t(split::pixel_ranges(g).bound) * size_t(g.m) * size_t(K + 1) * sizeof(float);
}

void split_conv_backward_filter(const ConvGeom& g, const float* x, const float* dy, float* dw,
                                float* db, float* workspace, cudaStream_t s) {
  using namespace split;
  if (!split_conv_supports(g)) {
    throw Error("split_conv_backward_filter: not an n×1 or 1×n stride-1 convolution (" +
                std::to_string(g.kh) + "x" + std::to_string(g.kw) + ", stride " +
                std::to_string(g.stride) + ")");
  }
  if (!workspace) throw Error("split_conv_backward_filter: no workspace");
  with_taps(tap_count(g),
            [&](auto nt) { launch_filter<decltype(nt)::value>(g, x, dy, dw, db, workspace, s); });
}

}  // namespace splitconv::gpu
