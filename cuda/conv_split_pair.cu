// The fused split pair, forward: z = act1(conv_n×1(x) + b1), y = act2(conv_1×n(z) + b2) in one
// launch. A 1×n output row needs only the same row of z (all channels, full width), so each
// block owns a band of rows (image and row flattened, so a band may cross images): it
// computes z for the band into shared memory (phase 1), then y from there (phase 2). z goes to
// device memory only when the caller keeps it for the backward pass.
#include <algorithm>

#include "check.h"
#include "conv_split.h"
#include "conv_split_tile.cuh"
#include "splitconv/error.h"

namespace splitconv::gpu {
namespace split {
namespace {

// z's band lives in dynamic shared memory; with the static tiles (6 KiB) it stays under the
// 48 KiB every device gives without opting in.
constexpr int64_t kBandBytes = 40 * 1024;


// B[(m1, j)][q] = band[m1][row][ox − pl + j] for q = row·ow2 + ox < q_end, 0 outside the row:
// the band of z as im2col columns of the 1×n layer. band: m1 × band_rows × zw, in shared
// memory. Each thread has a fixed column (tid % BN).
template <class Cfg, int NT>
struct BandColsB {
  static_assert(Cfg::kThreads % Cfg::BN == 0, "a thread keeps its column");
  static constexpr int kStep = Cfg::kThreads / Cfg::BN;
  const float* row_base;  // band at channel 0 of the column's row; null when the column is empty
  int n, K, zw, sx0, channel_stride;
  float v[Cfg::kBLoads];

  __device__ BandColsB(const float* band, int m1, int band_rows, int zw_, int n_, int ow2,
                       int q_end, int q0, int pl)
      : n(taps<NT>(n_)), K(m1 * taps<NT>(n_)), zw(zw_), channel_stride(band_rows * zw_) {
    const int q = q0 + int(threadIdx.x) % Cfg::BN;
    const int row = q / ow2, ox = q - row * ow2;
    row_base = q < q_end ? band + row * zw : nullptr;
    sx0 = ox - pl;
  }
  __device__ void fetch(int k0) {
#pragma unroll
    for (int r = 0; r < Cfg::kBLoads; ++r) {
      const int k = k0 + int(threadIdx.x) / Cfg::BN + r * kStep;
      const int m1 = k / n, j = k - m1 * n;
      const int sx = sx0 + j;
      const bool in = row_base && k < K && sx >= 0 && sx < zw;
      v[r] = in ? row_base[m1 * channel_stride + sx] : 0.0f;
    }
  }
  __device__ void stash(float (&b)[Cfg::BK][Cfg::BN + 1]) const {
#pragma unroll
    for (int r = 0; r < Cfg::kBLoads; ++r)
      b[int(threadIdx.x) / Cfg::BN + r * kStep][int(threadIdx.x) % Cfg::BN] = v[r];
  }
};

__device__ __forceinline__ float act(float v, bool relu) { return relu && !(v > 0.0f) ? 0.0f : v; }

// One block: rows r0 .. r0 + band_rows − 1 of the flattened (image, row) space of z and y.
template <int NT>
__global__ void __launch_bounds__(PairTile::kThreads)
    pair_kernel(ConvGeom gv, ConvGeom gh, int band_rows, const float* __restrict__ x,
                const float* __restrict__ w1, const float* __restrict__ b1, bool relu1,
                const float* __restrict__ w2, const float* __restrict__ b2, bool relu2,
                float* __restrict__ z_out, float* __restrict__ y) {
  using Cfg = PairTile;
  extern __shared__ float band[];  // m1 × band_rows × zw
  __shared__ TileSmem<Cfg> s;
  const int n = taps<NT>(gv.kh);
  const int r0 = int(blockIdx.x) * band_rows;
  const int rows = min(band_rows, gv.n * gv.oh - r0);
  const int zw = gv.ow, z_plane = gv.oh * gv.ow, m1 = gv.m;

  // Phase 1: z[m, q] for the band's pixels q = row·zw + ox, i.e. z pixel r0·zw + q.
  const int K1 = gv.c * n, q1_end = rows * zw;
  for (int m0 = 0; m0 < m1; m0 += Cfg::BM) {
    for (int q0 = 0; q0 < q1_end; q0 += Cfg::BN) {
      WeightRowsA<Cfg> la(w1, m1, K1, m0);
      ImageColsB<Cfg, NT> lb(x, gv.c, gv.h, gv.w, n, gv.oh, gv.ow, r0 * zw + q1_end, r0 * zw + q0,
                             -gv.pad_top, -gv.pad_left, 1, 0);
      float acc[Cfg::TM][Cfg::TN];
      zero<Cfg>(acc);
      gemm_steps<Cfg>(la, lb, 0, K1, s, acc);
#pragma unroll
      for (int j = 0; j < Cfg::TN; ++j) {
        const int q = q0 + my_col<Cfg>(j);
        if (q >= q1_end) continue;
        const int p = r0 * zw + q, img = p / z_plane, pix = p - img * z_plane;
#pragma unroll
        for (int i = 0; i < Cfg::TM; ++i) {
          const int m = m0 + my_row<Cfg>(i);
          if (m >= m1) continue;
          const float v = act(acc[i][j] + (b1 ? b1[m] : 0.0f), relu1);
          band[m * band_rows * zw + q] = v;
          if (z_out) z_out[(int64_t(img) * m1 + m) * z_plane + pix] = v;
        }
      }
    }
  }
  __syncthreads();  // the band is complete before phase 2 reads it

  // Phase 2: y[m, q] for q = row·ow2 + ox; y's rows are z's rows (a 1×n kernel, no row pad).
  const int ow2 = gh.ow, y_plane = gh.oh * gh.ow, K2 = m1 * n, q2_end = rows * ow2;
  for (int m0 = 0; m0 < gh.m; m0 += Cfg::BM) {
    for (int q0 = 0; q0 < q2_end; q0 += Cfg::BN) {
      WeightRowsA<Cfg> la(w2, gh.m, K2, m0);
      BandColsB<Cfg, NT> lb(band, m1, band_rows, zw, n, ow2, q2_end, q0, gh.pad_left);
      float acc[Cfg::TM][Cfg::TN];
      zero<Cfg>(acc);
      gemm_steps<Cfg>(la, lb, 0, K2, s, acc);
#pragma unroll
      for (int j = 0; j < Cfg::TN; ++j) {
        const int q = q0 + my_col<Cfg>(j);
        if (q >= q2_end) continue;
        const int p = r0 * ow2 + q, img = p / y_plane, pix = p - img * y_plane;
#pragma unroll
        for (int i = 0; i < Cfg::TM; ++i) {
          const int m = m0 + my_row<Cfg>(i);
          if (m < gh.m)
            y[(int64_t(img) * gh.m + m) * y_plane + pix] =
                act(acc[i][j] + (b2 ? b2[m] : 0.0f), relu2);
        }
      }
    }
  }
}

// Rows per band: enough to fill one column tile in phase 1 (small maps get several rows),
// no more than the shared memory allows.
int band_rows(const ConvGeom& gv) {
  const int64_t row_bytes = int64_t(gv.m) * gv.ow * int64_t(sizeof(float));
  int64_t rows = std::max<int64_t>(1, PairTile::BN / gv.ow);
  rows = std::min(rows, kBandBytes / row_bytes);
  rows = std::min(rows, int64_t(gv.n) * gv.oh);
  return int(std::max<int64_t>(1, rows));
}

}  // namespace
}  // namespace split

bool split_pair_supports(const ConvGeom& gv, const ConvGeom& gh) {
  if (!split_conv_supports(gv) || !split_conv_supports(gh)) return false;
  const bool shapes = gv.kw == 1 && gh.kh == 1 && gv.kh == gh.kw && gh.n == gv.n && gh.c == gv.m &&
                      gh.h == gv.oh && gh.w == gv.ow;
  // y's rows must be z's rows, and z a full-width map: no padding across the other axis.
  const bool rows = gh.pad_top == 0 && gh.oh == gh.h && gv.pad_left == 0 && gv.ow == gv.w;
  const bool fits = int64_t(gv.m) * gv.ow * int64_t(sizeof(float)) <= split::kBandBytes;
  return shapes && rows && fits;
}

void split_pair_forward(const ConvGeom& gv, const ConvGeom& gh, const float* x, const float* w1,
                        const float* b1, bool relu1, const float* w2, const float* b2, bool relu2,
                        float* z_out, float* y, cudaStream_t s) {
  using namespace split;
  if (!split_pair_supports(gv, gh)) {
    throw Error(
        "split_pair_forward: not an n×1 layer followed by a 1×n layer on its output "
        "that fits one band in shared memory");
  }
  const int rows = band_rows(gv);
  const unsigned grid = unsigned(ceil_div(int64_t(gv.n) * gv.oh, rows));
  const size_t smem = size_t(gv.m) * size_t(rows) * size_t(gv.ow) * sizeof(float);
  auto launch = [&](auto nt) {
    constexpr int NT = decltype(nt)::value;
    pair_kernel<NT><<<grid, PairTile::kThreads, smem, s>>>(gv, gh, rows, x, w1, b1, relu1, w2, b2,
                                                           relu2, z_out, y);
    CHECK_LAUNCH();
  };
  with_taps(gv.kh, launch);
}

}  // namespace splitconv::gpu
