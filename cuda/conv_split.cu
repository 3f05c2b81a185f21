// n×1 and 1×n convolutions, forward and backward-data: the two implicit GEMMs whose output
// is an image (y from x, dx from dy). The block GEMM and the loaders are in conv_split_tile.cuh.
#include "check.h"
#include "conv_split.h"
#include "conv_split_tile.cuh"
#include "splitconv/error.h"

namespace splitconv::gpu {
namespace split {
namespace {

// Below this many 64×64 blocks the 32×32 tile keeps more of the GPU busy.
constexpr int64_t kSmallTileBelowBlocks = 128;


bool use_big_tile(SplitTile tile, int64_t rows, int64_t pixels) {
  if (tile != SplitTile::Auto) return tile == SplitTile::Big;
  return ceil_div(rows, BigTile::BM) * ceil_div(pixels, BigTile::BN) >= kSmallTileBelowBlocks;
}

// y[m, p] = act(b[m] + Σ_k w[m, k]·x_col[k, p]); the block owns rows m0.. and pixels p0..
template <class Cfg, int NT>
__global__ void __launch_bounds__(Cfg::kThreads)
    forward_kernel(ConvGeom g, const float* __restrict__ x, const float* __restrict__ w,
                   const float* __restrict__ b, bool relu, float* __restrict__ y) {
  __shared__ TileSmem<Cfg> s;
  const bool vert = is_vertical(g);
  const int n = taps<NT>(tap_count(g));
  const int K = g.c * n, plane = g.oh * g.ow, P = g.n * plane;
  const int m0 = int(blockIdx.y) * Cfg::BM, p0 = int(blockIdx.x) * Cfg::BN;
  WeightRowsA<Cfg> la(w, g.m, K, m0);
  ImageColsB<Cfg, NT> lb(x, g.c, g.h, g.w, n, g.oh, g.ow, P, p0, -g.pad_top, -g.pad_left,
                         vert ? 1 : 0, vert ? 0 : 1);
  float acc[Cfg::TM][Cfg::TN];
  zero<Cfg>(acc);
  gemm_steps<Cfg>(la, lb, 0, K, s, acc);
#pragma unroll
  for (int j = 0; j < Cfg::TN; ++j) {
    const int p = p0 + my_col<Cfg>(j);
    if (p >= P) continue;
    const int img = p / plane, pix = p - img * plane;
#pragma unroll
    for (int i = 0; i < Cfg::TM; ++i) {
      const int m = m0 + my_row<Cfg>(i);
      if (m >= g.m) continue;
      float v = acc[i][j] + (b ? b[m] : 0.0f);
      if (relu && !(v > 0.0f)) v = 0.0f;
      y[(int64_t(img) * g.m + m) * plane + pix] = v;
    }
  }
}

// dx[c, q] = Σ_(m,t) w[m, c, t]·dy[img, m, iy + pt − t·dy_tap, ix + pl − t·dx_tap]: the forward's
// taps read backwards (the output pixel oy = iy − i + pt received x[iy] through tap i).
template <class Cfg, int NT>
__global__ void __launch_bounds__(Cfg::kThreads)
    backward_data_kernel(ConvGeom g, const float* __restrict__ dy, const float* __restrict__ w,
                         float* __restrict__ dx) {
  __shared__ TileSmem<Cfg> s;
  const bool vert = is_vertical(g);
  const int n = taps<NT>(tap_count(g));
  const int K = g.m * n, plane = g.h * g.w, P = g.n * plane;
  const int c0 = int(blockIdx.y) * Cfg::BM, p0 = int(blockIdx.x) * Cfg::BN;
  WeightColsA<Cfg, NT> la(w, g.c, g.m, n, c0);
  ImageColsB<Cfg, NT> lb(dy, g.m, g.oh, g.ow, n, g.h, g.w, P, p0, g.pad_top, g.pad_left,
                         vert ? -1 : 0, vert ? 0 : -1);
  float acc[Cfg::TM][Cfg::TN];
  zero<Cfg>(acc);
  gemm_steps<Cfg>(la, lb, 0, K, s, acc);
#pragma unroll
  for (int j = 0; j < Cfg::TN; ++j) {
    const int p = p0 + my_col<Cfg>(j);
    if (p >= P) continue;
    const int img = p / plane, pix = p - img * plane;
#pragma unroll
    for (int i = 0; i < Cfg::TM; ++i) {
      const int c = c0 + my_row<Cfg>(i);
      if (c < g.c) dx[(int64_t(img) * g.c + c) * plane + pix] = acc[i][j];
    }
  }
}

template <class Cfg, int NT>
void launch_forward(const ConvGeom& g, const float* x, const float* w, const float* b, bool relu,
                    float* y, cudaStream_t s) {
  const dim3 grid(unsigned(ceil_div(int64_t(g.n) * g.oh * g.ow, Cfg::BN)),
                  unsigned(ceil_div(g.m, Cfg::BM)));
  forward_kernel<Cfg, NT><<<grid, Cfg::kThreads, 0, s>>>(g, x, w, b, relu, y);
  CHECK_LAUNCH();
}

template <class Cfg, int NT>
void launch_backward_data(const ConvGeom& g, const float* dy, const float* w, float* dx,
                          cudaStream_t s) {
  const dim3 grid(unsigned(ceil_div(int64_t(g.n) * g.h * g.w, Cfg::BN)),
                  unsigned(ceil_div(g.c, Cfg::BM)));
  backward_data_kernel<Cfg, NT><<<grid, Cfg::kThreads, 0, s>>>(g, dy, w, dx);
  CHECK_LAUNCH();
}

void require_supported(const ConvGeom& g, const char* what) {
  if (!split_conv_supports(g)) {
    throw Error(std::string(what) + ": not an n×1 or 1×n stride-1 convolution (" +
                std::to_string(g.kh) + "x" + std::to_string(g.kw) + ", stride " +
                std::to_string(g.stride) + ")");
  }
}

}  // namespace
}  // namespace split

bool split_conv_supports(const ConvGeom& g) {
  if (g.kh != 1 && g.kw != 1) return false;
  if (g.stride != 1 || g.kh < 1 || g.kw < 1) return false;
  if (g.n < 1 || g.c < 1 || g.h < 1 || g.w < 1 || g.m < 1 || g.oh < 1 || g.ow < 1) return false;
  // Pixel and reduction indices are int in the kernels (element offsets are 64-bit).
  constexpr int64_t kMax = int64_t(1) << 30;
  const int64_t taps = split::tap_count(g);
  return int64_t(g.n) * g.h * g.w < kMax && int64_t(g.n) * g.oh * g.ow < kMax &&
         int64_t(g.c) * taps < kMax && int64_t(g.m) * taps < kMax;
}

void split_conv_forward(const ConvGeom& g, const float* x, const float* w, const float* b,
                        bool relu, float* y, cudaStream_t s, SplitTile tile) {
  using namespace split;
  require_supported(g, "split_conv_forward");
  const bool big = use_big_tile(tile, g.m, int64_t(g.n) * g.oh * g.ow);
  auto launch = [&](auto nt) {
    constexpr int NT = decltype(nt)::value;
    if (big)
      launch_forward<BigTile, NT>(g, x, w, b, relu, y, s);
    else
      launch_forward<SmallTile, NT>(g, x, w, b, relu, y, s);
  };
  with_taps(tap_count(g), launch);
}

void split_conv_backward_data(const ConvGeom& g, const float* dy, const float* w, float* dx,
                              cudaStream_t s, SplitTile tile) {
  using namespace split;
  require_supported(g, "split_conv_backward_data");
  const bool big = use_big_tile(tile, g.c, int64_t(g.n) * g.h * g.w);
  auto launch = [&](auto nt) {
    constexpr int NT = decltype(nt)::value;
    if (big)
      launch_backward_data<BigTile, NT>(g, dy, w, dx, s);
    else
      launch_backward_data<SmallTile, NT>(g, dy, w, dx, s);
  };
  with_taps(tap_count(g), launch);
}

}  // namespace splitconv::gpu
