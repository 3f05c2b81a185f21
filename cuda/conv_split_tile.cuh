// The block-level GEMM the split-convolution kernels are built from, and the loaders that feed
// it. Internal to conv_split_*.cu.
//
// A block computes a BM×BN tile of C = A·B, stepping through the reduction BK at a time:
// each step the loaders fetch one BK-slice of A (BM rows) and of B (BN columns) into
// registers, store it into shared memory, and every thread multiplies TM×TN outputs from
// there. Thread (ty, tx) owns rows ty + i·(BM/TM) and columns tx + j·(BN/TN): neighbouring
// threads read neighbouring shared words (no bank conflicts) and write neighbouring outputs.
//
// The convolution lives in the loaders only: each knows how its operand is laid out in
// memory (weights, an image seen as im2col columns, output gradients) and returns 0 outside
// the tensor, which is the zero padding and the ragged tile edges at once. A loader gives
// each thread a fixed position along one axis of its slice so that the index arithmetic
// for that axis is done once, not per element.
#pragma once
#include <cstdint>
#include <type_traits>

#include "splitconv/tensor.h"

namespace splitconv::gpu::split {

// The axis and tap count of a split layer: n×1 runs down the columns (vertical), 1×n along
// the rows. A 1×1 layer counts as vertical with one tap.
__host__ __device__ inline bool is_vertical(const ConvGeom& g) { return g.kw == 1; }
__host__ __device__ inline int tap_count(const ConvGeom& g) { return g.kw == 1 ? g.kh : g.kw; }

template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct TileCfg {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int kRowThreads = BM / TM, kColThreads = BN / TN;
  static constexpr int kThreads = kRowThreads * kColThreads;
  static_assert(BM % TM == 0 && BN % TN == 0, "thread tiles must divide the block tile");
  static_assert(BM * BK % kThreads == 0 && BN * BK % kThreads == 0,
                "every thread loads the same number of elements");
  static_assert(BM * BK >= kThreads && BN * BK >= kThreads, "every thread loads something");
  static constexpr int kALoads = BM * BK / kThreads, kBLoads = BN * BK / kThreads;
};

using BigTile = TileCfg<64, 64, 16, 4, 4>;    // 256 threads, 16 outputs each
using SmallTile = TileCfg<32, 32, 16, 2, 2>;  // 256 threads, 4 outputs each
using PairTile = TileCfg<64, 32, 16, 4, 2>;   // 256 threads, 8 outputs each

// One column of padding: loaders that walk down a column of a slice (k-major mapping) then
// hit different banks.
template <class Cfg>
struct TileSmem {
  float a[Cfg::BK][Cfg::BM + 1];
  float b[Cfg::BK][Cfg::BN + 1];
};

// The tap count: the template's when it is one (the fast paths 3, 5, 7), else the runtime one.
template <int NT>
__device__ __forceinline__ int taps(int runtime_taps) {
  return NT > 0 ? NT : runtime_taps;
}

// Calls f(std::integral_constant<int, NT>{}) with NT = n for the fast paths (3, 5, 7) and
// NT = 0, the generic path, for any other n.
template <class F>
void with_taps(int n, F&& f) {
  switch (n) {
    case 3:
      f(std::integral_constant<int, 3>{});
      break;
    case 5:
      f(std::integral_constant<int, 5>{});
      break;
    case 7:
      f(std::integral_constant<int, 7>{});
      break;
    default:
      f(std::integral_constant<int, 0>{});
      break;
  }
}

// acc += A[rows, k]·B[k, cols] for k in [k_begin, k_end), BK at a time. la/lb.fetch(k0) loads
// the slice starting at k0 into registers, stash() writes it to shared memory. The next
// slice's loads are issued before this slice is multiplied, so they are in flight meanwhile.
// Every thread of the block must call this with the same k_begin and k_end. It does not
// synchronise on the way out: a caller that writes shared memory the loaders read must.
template <class Cfg, class LA, class LB>
__device__ void gemm_steps(LA& la, LB& lb, int k_begin, int k_end, TileSmem<Cfg>& s,
                           float (&acc)[Cfg::TM][Cfg::TN]) {
  const int ty = int(threadIdx.x) / Cfg::kColThreads;
  const int tx = int(threadIdx.x) % Cfg::kColThreads;
  if (k_begin >= k_end) return;
  la.fetch(k_begin);
  lb.fetch(k_begin);
  for (int k0 = k_begin; k0 < k_end; k0 += Cfg::BK) {
    __syncthreads();  // every thread is done reading the previous slice
    la.stash(s.a);
    lb.stash(s.b);
    __syncthreads();  // the slice is complete
    if (k0 + Cfg::BK < k_end) {
      la.fetch(k0 + Cfg::BK);
      lb.fetch(k0 + Cfg::BK);
    }
#pragma unroll
    for (int kk = 0; kk < Cfg::BK; ++kk) {
      float a[Cfg::TM], b[Cfg::TN];
#pragma unroll
      for (int i = 0; i < Cfg::TM; ++i) a[i] = s.a[kk][ty + i * Cfg::kRowThreads];
#pragma unroll
      for (int j = 0; j < Cfg::TN; ++j) b[j] = s.b[kk][tx + j * Cfg::kColThreads];
#pragma unroll
      for (int i = 0; i < Cfg::TM; ++i)
#pragma unroll
        for (int j = 0; j < Cfg::TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
  }
}

// The rows and columns of the block tile this thread owns.
template <class Cfg>
__device__ __forceinline__ int my_row(int i) {
  return int(threadIdx.x) / Cfg::kColThreads + i * Cfg::kRowThreads;
}
template <class Cfg>
__device__ __forceinline__ int my_col(int j) {
  return int(threadIdx.x) % Cfg::kColThreads + j * Cfg::kColThreads;
}

template <class Cfg>
__device__ __forceinline__ void zero(float (&acc)[Cfg::TM][Cfg::TN]) {
#pragma unroll
  for (int i = 0; i < Cfg::TM; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::TN; ++j) acc[i][j] = 0.0f;
}

// ---- Loaders of A (BM rows × BK of the reduction; stored to a[k][row]) ----
// Each thread has a fixed k in the slice (kk = tid % BK: neighbouring threads read
// neighbouring k, contiguous in these layouts) and rows tid / BK + r·(threads / BK).
template <class Cfg>
struct KMajorSlots {
  static_assert(Cfg::kThreads % Cfg::BK == 0, "a thread keeps its k");
  static constexpr int kStep = Cfg::kThreads / Cfg::BK;
  __device__ static int kk() { return int(threadIdx.x) % Cfg::BK; }
  __device__ static int row(int r) { return int(threadIdx.x) / Cfg::BK + r * kStep; }
};

// A[r][k] = w[r·K + k]: the weights as an m × (c·n) matrix (OIHW with kh or kw = 1).
template <class Cfg>
struct WeightRowsA {
  using Slots = KMajorSlots<Cfg>;
  const float* w;
  int rows, K, row0;
  float v[Cfg::kALoads];

  __device__ WeightRowsA(const float* w_, int rows_, int K_, int row0_)
      : w(w_), rows(rows_), K(K_), row0(row0_) {}
  __device__ void fetch(int k0) {
    const int k = k0 + Slots::kk();
#pragma unroll
    for (int r = 0; r < Cfg::kALoads; ++r) {
      const int row = row0 + Slots::row(r);
      v[r] = row < rows && k < K ? __ldg(w + int64_t(row) * K + k) : 0.0f;
    }
  }
  __device__ void stash(float (&a)[Cfg::BK][Cfg::BM + 1]) const {
#pragma unroll
    for (int r = 0; r < Cfg::kALoads; ++r) a[Slots::kk()][Slots::row(r)] = v[r];
  }
};

// A[c][(m, t)] = w[m, c, t]: the weights seen from the input side, for backward-data
// (rows: input channels c; reduction: output channels m and taps t, k = m·n + t).
template <class Cfg, int NT>
struct WeightColsA {
  using Slots = KMajorSlots<Cfg>;
  const float* w;
  int C, M, n, row0;
  float v[Cfg::kALoads];

  __device__ WeightColsA(const float* w_, int C_, int M_, int n_, int row0_)
      : w(w_), C(C_), M(M_), n(taps<NT>(n_)), row0(row0_) {}
  __device__ void fetch(int k0) {
    const int k = k0 + Slots::kk();
    const int m = k / n, t = k - m * n;
#pragma unroll
    for (int r = 0; r < Cfg::kALoads; ++r) {
      const int c = row0 + Slots::row(r);
      v[r] = c < C && m < M ? __ldg(w + (int64_t(m) * C + c) * n + t) : 0.0f;
    }
  }
  __device__ void stash(float (&a)[Cfg::BK][Cfg::BM + 1]) const {
#pragma unroll
    for (int r = 0; r < Cfg::kALoads; ++r) a[Slots::kk()][Slots::row(r)] = v[r];
  }
};

// A[m][p] = dy[img, m, pix] for p = img·plane + pix < P: output gradients with the pixels as
// the reduction (backward-filter). It also sums what it fetches per row (row_sum), from which
// the caller gets db without another pass over dy.
template <class Cfg>
struct GradRowsA {
  using Slots = KMajorSlots<Cfg>;
  const float* dy;
  int M, plane, P, row0;
  float v[Cfg::kALoads];
  float row_sum[Cfg::kALoads];

  __device__ GradRowsA(const float* dy_, int M_, int plane_, int P_, int row0_)
      : dy(dy_), M(M_), plane(plane_), P(P_), row0(row0_) {
#pragma unroll
    for (int r = 0; r < Cfg::kALoads; ++r) row_sum[r] = 0.0f;
  }
  __device__ void fetch(int k0) {
    const int p = k0 + Slots::kk();
    const int img = p / plane, pix = p - img * plane;
#pragma unroll
    for (int r = 0; r < Cfg::kALoads; ++r) {
      const int m = row0 + Slots::row(r);
      v[r] = p < P && m < M ? __ldg(dy + (int64_t(img) * M + m) * plane + pix) : 0.0f;
      row_sum[r] += v[r];
    }
  }
  __device__ void stash(float (&a)[Cfg::BK][Cfg::BM + 1]) const {
#pragma unroll
    for (int r = 0; r < Cfg::kALoads; ++r) a[Slots::kk()][Slots::row(r)] = v[r];
  }
};

// ---- Loaders of B (BK of the reduction × BN columns; stored to b[k][col]) ----

// B[(c, t)][p] = src[img, c, oy + oy_off + t·tap_dy, ox + ox_off + t·tap_dx], 0 outside src:
// an image as im2col columns, one column per pixel p = (img·oh + oy)·ow + ox < p_end of an
// oh×ow pixel grid. Forward: src = x, offsets −pad, taps +1 along the kernel's axis.
// Backward-data: src = dy, pixels of dx, offsets +pad, taps −1. Each thread has a fixed column
// (tid % BN: neighbouring threads read neighbouring pixels) and k = tid / BN + r·(threads/BN).
template <class Cfg, int NT>
struct ImageColsB {
  static_assert(Cfg::kThreads % Cfg::BN == 0, "a thread keeps its column");
  static constexpr int kStep = Cfg::kThreads / Cfg::BN;
  const float* base;  // src at the column's image, channel 0; null when the column is empty
  int n, K, hs, ws, sy0, sx0, tap_dy, tap_dx;
  int64_t src_plane;
  float v[Cfg::kBLoads];

  // src: imgs × cs × hs × ws. The column pixel p0 + tid % BN of the oh×ow grid.
  __device__ ImageColsB(const float* src, int cs, int hs_, int ws_, int n_, int oh, int ow,
                        int p_end, int p0, int oy_off, int ox_off, int tap_dy_, int tap_dx_)
      : n(taps<NT>(n_)),
        K(cs * taps<NT>(n_)),
        hs(hs_),
        ws(ws_),
        tap_dy(tap_dy_),
        tap_dx(tap_dx_),
        src_plane(int64_t(hs_) * ws_) {
    const int p = p0 + int(threadIdx.x) % Cfg::BN;
    const int plane = oh * ow;
    const int img = p / plane, pix = p - img * plane;
    const int oy = pix / ow, ox = pix - oy * ow;
    base = p < p_end ? src + int64_t(img) * cs * src_plane : nullptr;
    sy0 = oy + oy_off;
    sx0 = ox + ox_off;
  }
  __device__ void fetch(int k0) {
#pragma unroll
    for (int r = 0; r < Cfg::kBLoads; ++r) {
      const int k = k0 + int(threadIdx.x) / Cfg::BN + r * kStep;
      const int c = k / n, t = k - c * n;
      const int sy = sy0 + t * tap_dy, sx = sx0 + t * tap_dx;
      const bool in = base && k < K && sy >= 0 && sy < hs && sx >= 0 && sx < ws;
      v[r] = in ? __ldg(base + c * src_plane + int64_t(sy) * ws + sx) : 0.0f;
    }
  }
  __device__ void stash(float (&b)[Cfg::BK][Cfg::BN + 1]) const {
#pragma unroll
    for (int r = 0; r < Cfg::kBLoads; ++r)
      b[int(threadIdx.x) / Cfg::BN + r * kStep][int(threadIdx.x) % Cfg::BN] = v[r];
  }
};

// B[p][(c, t)] = x[img, c, oy − pt + t·tap_dy, ox − pl + t·tap_dx] for k = c·n + t < K, 0
// beyond: the im2col columns transposed, pixels p < P as the reduction (backward-filter).
// Each thread has a fixed pixel of the slice (tid % BK) and fixed columns
// (tid / BK + r·(threads / BK)), whose channel and tap are worked out once.
template <class Cfg, int NT>
struct PatchRowsB {
  static_assert(Cfg::kThreads % Cfg::BK == 0, "a thread keeps its pixel");
  static constexpr int kStep = Cfg::kThreads / Cfg::BK;
  const float* x;
  int C, H, W, oh, ow, P, K, pt, pl, tap_dy, tap_dx;
  int col_c[Cfg::kBLoads], col_t[Cfg::kBLoads];
  bool col_in[Cfg::kBLoads];
  float v[Cfg::kBLoads];

  // x: imgs × C × H × W; pixels of an oh × ow output grid; columns col0 + [0, BN).
  __device__ PatchRowsB(const float* x_, int C_, int H_, int W_, int n_, int oh_, int ow_, int P_,
                        int pt_, int pl_, int tap_dy_, int tap_dx_, int col0)
      : x(x_),
        C(C_),
        H(H_),
        W(W_),
        oh(oh_),
        ow(ow_),
        P(P_),
        K(C_ * taps<NT>(n_)),
        pt(pt_),
        pl(pl_),
        tap_dy(tap_dy_),
        tap_dx(tap_dx_) {
    const int n = taps<NT>(n_);
#pragma unroll
    for (int r = 0; r < Cfg::kBLoads; ++r) {
      const int k = col0 + int(threadIdx.x) / Cfg::BK + r * kStep;
      col_in[r] = k < K;
      col_c[r] = k / n;
      col_t[r] = k - col_c[r] * n;
    }
  }
  __device__ void fetch(int k0) {
    const int p = k0 + int(threadIdx.x) % Cfg::BK;
    const int plane = oh * ow;
    const int img = p / plane, pix = p - img * plane;
    const int oy = pix / ow, ox = pix - oy * ow;
#pragma unroll
    for (int r = 0; r < Cfg::kBLoads; ++r) {
      const int sy = oy - pt + col_t[r] * tap_dy, sx = ox - pl + col_t[r] * tap_dx;
      const bool in = p < P && col_in[r] && sy >= 0 && sy < H && sx >= 0 && sx < W;
      v[r] = in ? __ldg(x + ((int64_t(img) * C + col_c[r]) * H + sy) * W + sx) : 0.0f;
    }
  }
  __device__ void stash(float (&b)[Cfg::BK][Cfg::BN + 1]) const {
#pragma unroll
    for (int r = 0; r < Cfg::kBLoads; ++r)
      b[int(threadIdx.x) % Cfg::BK][int(threadIdx.x) / Cfg::BK + r * kStep] = v[r];
  }
};

}  // namespace splitconv::gpu::split
