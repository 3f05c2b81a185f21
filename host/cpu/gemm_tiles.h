// The convolutions' GEMM: C (m×n, row-major) = / += A·B with both operands packed into the
// caller's workspace and a register tile of R rows × V vectors of C summed over a block of the
// depth at a time. Written for vectors of L floats (4, 8 or 16: SSE, AVX, AVX-512, as the
// engine's other kernels, cpu/engine_ops.cpp); a template, so that one test binary checks
// every width whatever the machine. Each C element's sum runs over the depth in order, one
// block of kDepth at a time, each block's sum added to C: the same bits for the same operands
// on every call, whatever m, n and the operands' layouts.
//
// Measured on a 2-core AMD EPYC with AVX-512 (Zen 5), one thread, against Eigen's GEMM with
// its own blocking: 1.34–1.40× on the 3×3 256→256 conv's products (256 × 2,304 × 2,304) and on
// the seed models' conv2 (64 × 1,936 × 288 and 64 × 288 × 1,936). Register tiles tried there:
// 8×3 (kept), 12×2, 14×2, 6×4; depth blocks 128 to 512. Built for AVX2 (8 lanes) on the same
// machine the 6×2 tile was 0.92–1.0× Eigen's and 4×3 no better; for SSE (4 lanes) 0.85–0.91×:
// the engine's GEMMs use these tiles with 16 lanes only (cpu/engine_ops.cpp). Vec, load,
// store and transpose below are the engine's vectors at every width.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "cpu/aligned.h"
#include "cpu/gemm.h"

namespace splitconv::cpu::tiles {

// The register tile for vectors of L floats: R rows × V vectors of C, R·V sums plus V vectors
// of B and one of A in registers (AVX-512: 32 registers; SSE and AVX: 16).
template <int L>
struct Tile {
  static_assert(L == 4 || L == 8 || L == 16, "vectors of 4, 8 or 16 floats");
  static constexpr int rows = L == 16 ? 8 : 6;
  static constexpr int vectors = L == 16 ? 3 : 2;
  static constexpr int cols = vectors * L;
};

// Blocks: kDepth of the depth per packed block; kRows rows of A packed at a time (a multiple
// of every tile's rows; about 96 KB with kDepth, in a core's L2); cols_block<L> columns of B
// packed at a time, whole tiles. A tile's panel of B (kDepth × cols) stays in L1 while the
// tile runs over every row panel of the A block.
constexpr int64_t kDepth = 256;
constexpr int64_t kRows = 96;
template <int L>
constexpr int64_t cols_block() {
  return 4096 / Tile<L>::cols * Tile<L>::cols;
}

inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// Floats of workspace gemm<L> needs for an m×n×k product.
template <int L>
int64_t space(int64_t m, int64_t n, int64_t k) {
  if (m < 1 || n < 1 || k < 1) return 0;
  using T = Tile<L>;
  const int64_t kc = std::min(k, kDepth);
  const int64_t mc = std::min(round_up(m, T::rows), kRows);
  const int64_t nc = std::min(round_up(n, T::cols), cols_block<L>());
  return round16(mc * kc) + round16(kc * nc);
}

// Vectors of L floats, and the transpose of L of them (an L×L block) in registers: log2(L)
// stages, each swapping the off-diagonal D×D blocks of every 2D×2D block.
template <int L>
struct VecOf {
  typedef float type __attribute__((vector_size(L * sizeof(float))));
};
template <int L>
using Vec = typename VecOf<L>::type;

// A vector from, or to, L floats at p (any alignment).
template <int L>
Vec<L> load(const float* p) {
  Vec<L> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <int L>
void store(float* p, Vec<L> v) {
  std::memcpy(p, &v, sizeof v);
}

template <int L, int D, size_t... I>
Vec<L> swap_low(Vec<L> a, Vec<L> b, std::index_sequence<I...>) {
  return __builtin_shufflevector(a, b, ((I & D) ? int(L + I - D) : int(I))...);
}
template <int L, int D, size_t... I>
Vec<L> swap_high(Vec<L> a, Vec<L> b, std::index_sequence<I...>) {
  return __builtin_shufflevector(a, b, ((I & D) ? int(L + I) : int(I + D))...);
}
template <int L, int D>
void transpose_stage(Vec<L>* r) {
#pragma GCC unroll 16
  for (int i = 0; i < L; ++i) {
    if (i & D) continue;
    const Vec<L> a = r[i], b = r[i + D];
    r[i] = swap_low<L, D>(a, b, std::make_index_sequence<L>{});
    r[i + D] = swap_high<L, D>(a, b, std::make_index_sequence<L>{});
  }
}
// transpose_inline is always inlined, so that r can stay in registers: the engine's dy
// transposes (one thread, 16 images, alternated three times; the 3×1 16→16 conv on 56×56,
// backward without dx, 0.475–0.521 ms against 0.529–0.535, with dx 0.997–1.021 against
// 1.015–1.030). transpose is left to the compiler: inlined everywhere, the GEMM's packing
// made the 3×3 256→256 conv on 14×14 2–3% slower.
template <int L>
__attribute__((always_inline)) inline void transpose_inline(Vec<L>* r) {
  if constexpr (L >= 16) transpose_stage<L, 8>(r);
  if constexpr (L >= 8) transpose_stage<L, 4>(r);
  transpose_stage<L, 2>(r);
  transpose_stage<L, 1>(r);
}
template <int L>
void transpose(Vec<L>* r) {
  transpose_inline<L>(r);
}

// Rows [i0, i0 + mc) of A over depth [p0, p0 + kc), as panels of R rows, each kc × R floats
// (depth-major); rows past mc are zeros. L: the vector width. A stored as is (A(i, p) at
// i·ld + p) is read where R = L / 2 (AVX-512's tile) as two panels at a time: L rows × L of
// the depth in L vectors, transposed in registers, each vector's halves the two panels' R rows
// at one depth. On the 3×3 256→256 conv's three products (14×14 map, 8 images) packing A took
// 0.26 / 0.12 / 0.29 ms against 0.40 / 0.22 / 0.78 a float at a time (forward, dw, dx).
template <int L, int R>
void pack_rows(GemmOperand a, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* to) {
  int64_t r0 = 0;
  if constexpr (2 * R == L) {
    if (!a.transposed) {
      for (; r0 + 2 * R <= mc; r0 += 2 * R, to += 2 * kc * R) {
        int64_t p = 0;
        for (; p + L <= kc; p += L) {
          Vec<L> r[L];
#pragma GCC unroll 16
          for (int t = 0; t < L; ++t) r[t] = load<L>(a.p + (i0 + r0 + t) * a.ld + p0 + p);
          transpose<L>(r);
#pragma GCC unroll 16
          for (int t = 0; t < L; ++t) {
            std::memcpy(to + (p + t) * R, &r[t], sizeof(float) * R);
            std::memcpy(to + kc * R + (p + t) * R, reinterpret_cast<const float*>(&r[t]) + R,
                        sizeof(float) * R);
          }
        }
        for (; p < kc; ++p) {  // the depth's last kc % L
          for (int r = 0; r < 2 * R; ++r)
            to[(r / R) * kc * R + p * R + r % R] = a.p[(i0 + r0 + r) * a.ld + p0 + p];
        }
      }
    }
  }
  for (; r0 < mc; r0 += R, to += kc * R) {
    const int rows = int(std::min<int64_t>(R, mc - r0));
    if (a.transposed) {  // A(i, p) at p·ld + i: a panel's rows are adjacent
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = a.p + (p0 + p) * a.ld + i0 + r0;
        float* dst = to + p * R;
        if (rows == R) {
          std::memcpy(dst, src, sizeof(float) * R);
          continue;
        }
        for (int r = 0; r < rows; ++r) dst[r] = src[r];
        for (int r = rows; r < R; ++r) dst[r] = 0.0f;
      }
    } else {  // A(i, p) at i·ld + p
      for (int r = 0; r < R; ++r) {
        float* dst = to + r;
        if (r >= rows) {
          for (int64_t p = 0; p < kc; ++p) dst[p * R] = 0.0f;
          continue;
        }
        const float* src = a.p + (i0 + r0 + r) * a.ld + p0;
        for (int64_t p = 0; p < kc; ++p) dst[p * R] = src[p];
      }
    }
  }
}

// Columns [j0, j0 + nc) of B over depth [p0, p0 + kc), as panels of C columns, each kc × C
// floats (depth-major); columns past nc are zeros.
template <int L, int C>
void pack_cols(GemmOperand b, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float* to) {
  for (int64_t c0 = 0; c0 < nc; c0 += C, to += kc * C) {
    const int cols = int(std::min<int64_t>(C, nc - c0));
    if (!b.transposed) {  // B(p, j) at p·ld + j
      for (int64_t p = 0; p < kc; ++p) {
        const float* src = b.p + (p0 + p) * b.ld + j0 + c0;
        float* dst = to + p * C;
        std::memcpy(dst, src, sizeof(float) * cols);
        for (int c = cols; c < C; ++c) dst[c] = 0.0f;
      }
    } else {  // B(p, j) at j·ld + p: L×L blocks read as L rows of L, transposed in registers
      const int whole = cols / L;  // the panel's whole groups of L columns
      int64_t p = 0;
      for (; whole > 0 && p + L <= kc; p += L) {
        for (int g = 0; g < whole; ++g) {
          Vec<L> r[L];
#pragma GCC unroll 16
          for (int t = 0; t < L; ++t) r[t] = load<L>(b.p + (j0 + c0 + g * L + t) * b.ld + p0 + p);
          transpose<L>(r);
#pragma GCC unroll 16
          for (int t = 0; t < L; ++t) store<L>(to + (p + t) * C + g * L, r[t]);
        }
        for (int t = 0; t < L; ++t) {  // a partial panel's other columns
          float* dst = to + (p + t) * C;
          for (int c = whole * L; c < cols; ++c) dst[c] = b.p[(j0 + c0 + c) * b.ld + p0 + p + t];
          for (int c = cols; c < C; ++c) dst[c] = 0.0f;
        }
      }
      for (; p < kc; ++p) {  // a panel of fewer than L columns, or the depth's last p % L
        float* dst = to + p * C;
        for (int c = 0; c < cols; ++c) dst[c] = b.p[(j0 + c0 + c) * b.ld + p0 + p];
        for (int c = cols; c < C; ++c) dst[c] = 0.0f;
      }
    }
  }
}

// One register tile: the sums over kc of a row panel (pa) and a column panel (pb), stored into
// or added to the rows × cols of C at c that are inside the product.
template <int L>
void tile(int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, int rows, int cols,
          bool add) {
  using T = Tile<L>;
  using V = Vec<L>;
  constexpr int R = T::rows, NV = T::vectors;
  V acc[R][NV] = {};
  // kc ≥ 1 (gemm's depth blocks). Told so, GCC keeps the sums in registers from the start;
  // otherwise it zeroed a copy of them in memory (a call to memset) and stored them there
  // after the loop, for the path that skips it.
  if (kc < 1) __builtin_unreachable();
  for (int64_t p = 0; p < kc; ++p, pa += R, pb += T::cols) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = load<L>(pb + v * L);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      // A scalar times a vector: a broadcast load (V{} + x would add, for x = −0).
      const float av = pa[r];
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
  }
  if (rows == R && cols == T::cols) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        float* dst = c + r * ldc + v * L;
        store<L>(dst, add ? load<L>(dst) + acc[r][v] : acc[r][v]);
      }
    }
    return;
  }
  // A partial tile: the sums through memory, then the part inside the product.
  alignas(64) float part[R][T::cols];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store<L>(&part[r][v * L], acc[r][v]);
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < cols; ++j) {
      const float s = part[r][j];
      c[r * ldc + j] = add ? c[r * ldc + j] + s : s;
    }
  }
}

// C = A·B, or C += A·B when accumulate; C row-major with leading dimension ldc. `work` holds
// space<L>(m, n, k) floats.
template <int L>
void gemm(int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b, float* c, int64_t ldc,
          bool accumulate, float* work) {
  using T = Tile<L>;
  if (m < 1 || n < 1) return;
  if (k < 1) {
    if (!accumulate)
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
    return;
  }
  const int64_t kc_most = std::min(k, kDepth);
  float* pa = work;
  float* pb = work + round16(std::min(round_up(m, T::rows), kRows) * kc_most);
  for (int64_t j0 = 0; j0 < n; j0 += cols_block<L>()) {
    const int64_t nc = std::min(cols_block<L>(), n - j0);
    for (int64_t p0 = 0; p0 < k; p0 += kDepth) {
      const int64_t kc = std::min(kDepth, k - p0);
      const bool add = accumulate || p0 > 0;
      pack_cols<L, T::cols>(b, p0, kc, j0, nc, pb);
      for (int64_t i0 = 0; i0 < m; i0 += kRows) {
        const int64_t mc = std::min(kRows, m - i0);
        pack_rows<L, T::rows>(a, i0, mc, p0, kc, pa);
        for (int64_t jr = 0; jr < nc; jr += T::cols) {
          for (int64_t ir = 0; ir < mc; ir += T::rows) {
            tile<L>(kc, pa + ir * kc, pb + jr * kc, c + (i0 + ir) * ldc + j0 + jr, ldc,
                    int(std::min<int64_t>(T::rows, mc - ir)),
                    int(std::min<int64_t>(T::cols, nc - jr)), add);
          }
        }
      }
    }
  }
}

}  // namespace splitconv::cpu::tiles
