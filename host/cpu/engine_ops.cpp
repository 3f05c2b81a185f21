// The CPU engine's fast ops (engine_ops.h): convolutions as im2col + GEMM (conv_gemm below)
// over several images at once or as direct loops, the max-pool, the update. The dense layers'
// GEMMs are Eigen's (cpu/gemm.h), the reference's bits.
#include "cpu/engine_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cpu/aligned.h"
#include "cpu/cpu_ops.h"
#include "cpu/gemm.h"
#include "cpu/gemm_tiles.h"

namespace splitconv::cpu {
namespace {

// A GEMM's output columns per chunk of images: enough that the GEMM's tiles run at speed on
// small maps, few enough that a chunk's columns stay in a core's L2 cache.
constexpr int64_t kChunkColumns = 1024;

int64_t patch(const ConvGeom& g) { return int64_t(g.c) * g.kh * g.kw; }
int64_t plane(const ConvGeom& g) { return int64_t(g.oh) * g.ow; }

// Images per GEMM: a whole slice of g.n images runs as ⌈n / chunk⌉ GEMMs of `chunk` images.
int chunk_images(const ConvGeom& g) {
  const int64_t p = std::max<int64_t>(plane(g), 1);
  return int(std::clamp<int64_t>((kChunkColumns + p - 1) / p, 1, std::max(g.n, 1)));
}

// Output rows per piece of dw's im2col on a large image: about kPieceFloats of columns.
constexpr int64_t kPieceFloats = 256 * 1024;  // 1 MiB
int dw_piece_rows(const ConvGeom& g) {
  const int64_t row = std::max<int64_t>(int64_t(g.c) * g.kh * g.kw * g.ow, 1);
  return int(std::clamp<int64_t>(kPieceFloats / row, 1, std::max(g.oh, 1)));
}

// Output columns [lo, hi) whose input column o·s + j − pad falls inside [0, size).
void valid_range(int out, int size, int s, int j, int pad, int* lo, int* hi) {
  const int first = pad - j;
  *lo = first <= 0 ? 0 : (first + s - 1) / s;
  const int last = size - 1 + pad - j;
  *hi = last < 0 ? 0 : std::min(out, last / s + 1);
  *lo = std::min(*lo, *hi);
}

// Vectors of kLanes floats (GCC/Clang vector types: the host's vector unit, plain code
// without one), one register each: 16 with AVX-512 (32 registers), 8 with AVX (16), else 4
// (SSE: 16, e.g. a build without -march=native). A wider type would take two registers per
// vector, and the kernels' tiles, sized for the register file, would spill.
#ifndef SPLITCONV_LANES
#if defined(__AVX512F__)
#define SPLITCONV_LANES 16
#elif defined(__AVX__)
#define SPLITCONV_LANES 8
#else
#define SPLITCONV_LANES 4
#endif
#endif
constexpr int kLanes = SPLITCONV_LANES;

// The convolutions' GEMMs: the engine's own tiles (cpu/gemm_tiles.h) with 16 lanes, where they
// were 1.3–1.4× Eigen's; Eigen's kernels (cpu/gemm.h) with 8 or 4, where the tiles were not
// faster (measured as gemm_tiles.h says).
constexpr bool kOwnTiles = kLanes == 16;
void conv_gemm(int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b, float* c,
               int64_t ldc, bool accumulate, float* space) {
  if constexpr (kOwnTiles) {
    tiles::gemm<kLanes>(m, n, k, a, b, c, ldc, accumulate, space);
  } else {
    gemm(m, n, k, a, b, c, ldc, accumulate, space);
  }
}
int64_t conv_gemm_space(int64_t m, int64_t n, int64_t k) {
  return kOwnTiles ? tiles::space<kLanes>(m, n, k) : gemm_space(m, n, k);
}
static_assert(kLanes == 4 || kLanes == 8 || kLanes == 16, "vectors of 4, 8 or 16 floats");
using Lanes = tiles::Vec<kLanes>;  // as the GEMM tiles' vectors
constexpr int kFilterBlock = 8;  // output channels per pass over a row (forward)
// Output channels per pass over the images (a one-channel conv's weight gradient): their sums
// (taps + 1 vectors each) stay in registers with 16 lanes at 2 (20 of 32; 4 spilled, and 2 was
// 10% faster on seed-v0's conv1); with 8 or 4 lanes any block spills, and 1, 2 and 4 measured
// the same.
constexpr int kGradBlock = kLanes == 16 ? 2 : 4;

void store(float* p, Lanes v) { tiles::store<kLanes>(p, v); }
Lanes load(const float* p) { return tiles::load<kLanes>(p); }

typedef int32_t IntLanes __attribute__((vector_size(kLanes * sizeof(float))));

// v where y > 0, else 0 (the ReLU's backward), lane by lane.
Lanes where_positive(Lanes y, Lanes v) {
  const IntLanes keep = y > 0.0f;
  return reinterpret_cast<Lanes>(reinterpret_cast<IntLanes>(v) & keep);
}

// where take (all ones or zero per lane): a, else b.
Lanes select(IntLanes take, Lanes a, Lanes b) {
  return reinterpret_cast<Lanes>((reinterpret_cast<IntLanes>(a) & take) |
                                 (reinterpret_cast<IntLanes>(b) & ~take));
}
IntLanes select(IntLanes take, IntLanes a, IntLanes b) { return (a & take) | (b & ~take); }

// The even and the odd lanes of the 2·kLanes floats lo, hi.
#if SPLITCONV_LANES == 16
Lanes even_lanes(Lanes lo, Lanes hi) {
  return __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
}
Lanes odd_lanes(Lanes lo, Lanes hi) {
  return __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
}
#elif SPLITCONV_LANES == 8
Lanes even_lanes(Lanes lo, Lanes hi) { return __builtin_shufflevector(lo, hi, 0, 2, 4, 6, 8, 10, 12, 14); }
Lanes odd_lanes(Lanes lo, Lanes hi) { return __builtin_shufflevector(lo, hi, 1, 3, 5, 7, 9, 11, 13, 15); }
#else
Lanes even_lanes(Lanes lo, Lanes hi) { return __builtin_shufflevector(lo, hi, 0, 2, 4, 6); }
Lanes odd_lanes(Lanes lo, Lanes hi) { return __builtin_shufflevector(lo, hi, 1, 3, 5, 7); }
#endif

// The ReLU's backward, dy where y > 0, else 0 (no y: dy itself), with its sum in a fixed
// order: kLanes running sums over the whole vectors, then their lanes and the tail in order.
// mask_vectors: to[0..n) for n a multiple of kLanes (to may be dy), added to the running sums.
void mask_vectors(const float* y, const float* dy, float* to, int64_t n, Lanes& acc) {
  Lanes sum = acc;
  for (int64_t q = 0; q < n; q += kLanes) {
    const Lanes d = y ? where_positive(load(y + q), load(dy + q)) : load(dy + q);
    store(to + q, d);
    sum += d;
  }
  acc = sum;
}
// mask_tail: to[0..n) one float at a time, and the sum: acc's lanes, then those floats.
float mask_tail(const float* y, const float* dy, float* to, int64_t n, Lanes acc) {
  float sum = 0.0f;
  for (int l = 0; l < kLanes; ++l) sum += acc[l];
  for (int64_t q = 0; q < n; ++q) {
    to[q] = !y || y[q] > 0.0f ? dy[q] : 0.0f;
    sum += to[q];
  }
  return sum;
}
// to[0..n) masked, and returns their sum.
float mask_and_sum(const float* y, const float* dy, float* to, int64_t n) {
  Lanes acc = {};
  const int64_t whole = n / kLanes * kLanes;
  mask_vectors(y, dy, to, whole, acc);
  return mask_tail(y ? y + whole : nullptr, dy + whole, to + whole, n - whole, acc);
}

// dst[0..n) = src[0..n) in whole vectors, which may write up to kLanes − 1 floats past
// dst + n (im2col rewrites them next, or they fall in the workspace's slack); src is read
// past src + n only below src_end.
void copy_ahead(float* dst, const float* src, int n, const float* src_end) {
  int q = 0;
  for (; q < n && src + q + kLanes <= src_end; q += kLanes) store(dst + q, load(src + q));
  for (; q < n; ++q) dst[q] = src[q];
}

// A small output plane (ow < kLanes, stride 1) gathered kLanes outputs at a time: each
// vector of the plane is one permute of two input vectors, where the row-by-row copy stores
// one vector per output row of ow floats (seed-v0's conv3, 3×3 outputs: three stores of 16
// lanes for 9 floats). That conv's forward went from 0.13 to 0.10 ms (one thread, 16 images).
// Output vector v reads the input at base[v] + idx[v]; lanes past the plane repeat its last
// output. With AVX or AVX-512 (a permute of two registers by a register of indices); SSE has
// none, and keeps the rows.
constexpr int kGatherVectors = 8;
struct PlaneGather {
  int vectors = 0;  // 0: the plane is not gathered
  int base[kGatherVectors] = {};
  IntLanes idx[kGatherVectors] = {};
  int64_t reach = 0;  // floats read from the plane's first input on
};

PlaneGather plane_gather(const ConvGeom& g) {
  PlaneGather pg;
  const int64_t p = plane(g);
  if (kLanes < 8 || g.stride != 1 || g.ow >= kLanes || p < 1 || p > kGatherVectors * kLanes)
    return pg;
  const int vectors = int((p + kLanes - 1) / kLanes);
  for (int v = 0; v < vectors; ++v) {
    const int64_t q0 = int64_t(v) * kLanes;
    pg.base[v] = int(q0 / g.ow * g.w + q0 % g.ow);
    for (int l = 0; l < kLanes; ++l) {
      const int64_t q = std::min<int64_t>(q0 + l, p - 1);
      const int64_t at = q / g.ow * g.w + q % g.ow - pg.base[v];
      if (at >= 2 * kLanes) return PlaneGather{};
      pg.idx[v][l] = int32_t(at);
    }
  }
  pg.vectors = vectors;
  pg.reach = pg.base[vectors - 1] + 2 * kLanes;
  return pg;
}

// The lanes of (a, b) at idx (each below 2·kLanes).
Lanes permute2(Lanes a, Lanes b, IntLanes idx) {
#if SPLITCONV_LANES >= 8 && defined(__GNUC__) && !defined(__clang__)
  return __builtin_shuffle(a, b, idx);
#else
  Lanes r;
  for (int l = 0; l < kLanes; ++l) r[l] = idx[l] < kLanes ? a[idx[l]] : b[idx[l] - kLanes];
  return r;
#endif
}

// `count` images from x (c×h×w each, the slice ending at x_end) into a (c·kh·kw)×ld matrix,
// image i in columns [i·oh·ow, (i+1)·oh·ow); only its rows [row0, row1) (all by default),
// row0 at cols. Written in order, row by row, image by image, so what copy_ahead (or a
// gathered plane's last vector) writes past a row's part is rewritten after it.
void im2col(const ConvGeom& g, const float* x, int count, float* cols, int64_t ld,
            const float* x_end, int64_t row0 = 0, int64_t row1 = -1) {
  const int64_t p = plane(g), image = int64_t(g.c) * g.h * g.w;
  if (row1 < 0) row1 = patch(g);
  const PlaneGather pg = plane_gather(g);
  for (int c = int(row0 / (g.kh * g.kw)); c < g.c; ++c) {
    for (int i = 0; i < g.kh; ++i) {
      for (int j = 0; j < g.kw; ++j) {
        const int64_t r = (int64_t(c) * g.kh + i) * g.kw + j;
        if (r < row0) continue;
        if (r >= row1) return;
        float* row = cols + (r - row0) * ld;
        int xlo, xhi;
        valid_range(g.ow, g.w, g.stride, j, g.pad_left, &xlo, &xhi);
        // Stride 1 with every window row and column inside the map: each output row is a
        // plain run of the input row, copied in whole vectors.
        const bool inside = g.stride == 1 && xlo == 0 && xhi == g.ow && i >= g.pad_top &&
                            g.oh - 1 + i - g.pad_top < g.h;
        const int vectors = (g.ow + kLanes - 1) / kLanes;
        for (int n = 0; n < count; ++n) {
          const int64_t first = n * image + (int64_t(c) * g.h + i - g.pad_top) * g.w + j - g.pad_left;
          if (inside && pg.vectors > 0 && x + first + pg.reach <= x_end) {
            float* out = row + n * p;
            for (int v = 0; v < pg.vectors; ++v) {
              const float* in = x + first + pg.base[v];
              store(out + v * kLanes, permute2(load(in), load(in + kLanes), pg.idx[v]));
            }
            continue;
          }
          if (inside && x + first + int64_t(g.oh - 1) * g.w + vectors * kLanes <= x_end) {
            float* out = row + n * p;
            for (int oy = 0; oy < g.oh; ++oy)
              for (int v = 0; v < vectors; ++v)
                store(out + int64_t(oy) * g.ow + v * kLanes,
                      load(x + first + int64_t(oy) * g.w + v * kLanes));
            continue;
          }
          for (int oy = 0; oy < g.oh; ++oy) {
            float* out = row + n * p + int64_t(oy) * g.ow;
            const int iy = oy * g.stride + i - g.pad_top;
            if (iy < 0 || iy >= g.h) {
              std::fill(out, out + g.ow, 0.0f);
              continue;
            }
            const float* in = x + n * image + (int64_t(c) * g.h + iy) * g.w + j - g.pad_left;
            std::fill(out, out + xlo, 0.0f);
            if (g.stride == 1) {
              copy_ahead(out + xlo, in + xlo, xhi - xlo, x_end);
            } else {
              for (int ox = xlo; ox < xhi; ++ox) out[ox] = in[ox * g.stride];
            }
            std::fill(out + xhi, out + g.ow, 0.0f);
          }
        }
      }
    }
  }
}

// The adjoint for stride 1, written as a gather: each kLanes-wide piece of a row of dx is the
// sum of the columns that read it, in the reference's order (by c, i, j), so it is
// overwritten, not accumulated, and gives the reference's bits. The columns are read in whole
// vectors and masked: cols needs col2im_lead floats before it and col2im_tail after it. dx
// holds `count` images and ends at dx_end; a piece's lanes past a row's end are written into
// the next row, which is computed later (or, at dx_end, stored lane by lane).
int64_t col2im_lead(const ConvGeom& g) { return round16(int64_t(g.kw) + kLanes); }
int64_t col2im_tail(const ConvGeom& g) { return round16(int64_t(g.w) + g.pad_left + 2 * kLanes); }

void col2im_stride1(const ConvGeom& g, const float* cols, int64_t ld, int count, float* dx,
                    const float* dx_end) {
  const int64_t p = plane(g), image = int64_t(g.c) * g.h * g.w;
  const int tiles = (g.w + kLanes - 1) / kLanes;
  IntLanes lane;
  for (int l = 0; l < kLanes; ++l) lane[l] = l;
  for (int n = 0; n < count; ++n) {
    for (int c = 0; c < g.c; ++c) {
      for (int iy = 0; iy < g.h; ++iy) {
        float* drow = dx + n * image + (int64_t(c) * g.h + iy) * g.w;
        for (int t = 0; t < tiles; ++t) {
          Lanes acc = {};
          for (int i = 0; i < g.kh; ++i) {
            const int oy = iy + g.pad_top - i;
            if (oy < 0 || oy >= g.oh) continue;
            for (int j = 0; j < g.kw; ++j) {
              const int shift = t * kLanes + g.pad_left - j;  // lane 0's output column
              const float* src = cols + ((int64_t(c) * g.kh + i) * g.kw + j) * ld + n * p +
                                 int64_t(oy) * g.ow + shift;
              const IntLanes ox = lane + shift;
              acc += select((ox >= 0) & (ox < g.ow), load(src), Lanes{});
            }
          }
          float* out = drow + t * kLanes;
          if (out + kLanes <= dx_end) {
            store(out, acc);
          } else {
            for (int l = 0; l < kLanes && out + l < dx_end; ++l) out[l] = acc[l];
          }
        }
      }
    }
  }
}

// The adjoint: dx (one image, zeroed by the caller) += its columns of cols (leading dim ld).
void col2im(const ConvGeom& g, const float* cols, int64_t ld, float* dx) {
  for (int c = 0; c < g.c; ++c) {
    for (int i = 0; i < g.kh; ++i) {
      for (int j = 0; j < g.kw; ++j) {
        const float* row = cols + ((int64_t(c) * g.kh + i) * g.kw + j) * ld;
        int xlo, xhi;
        valid_range(g.ow, g.w, g.stride, j, g.pad_left, &xlo, &xhi);
        for (int oy = 0; oy < g.oh; ++oy) {
          const int iy = oy * g.stride + i - g.pad_top;
          if (iy < 0 || iy >= g.h) continue;
          const float* in = row + int64_t(oy) * g.ow;
          float* out = dx + (int64_t(c) * g.h + iy) * g.w + j - g.pad_left;
          if (g.stride == 1) {
            for (int ox = xlo; ox < xhi; ++ox) out[ox] += in[ox];
          } else {
            for (int ox = xlo; ox < xhi; ++ox) out[ox * g.stride] += in[ox];
          }
        }
      }
    }
  }
}

// Direct convolution, for one input channel (a GEMM of c·kh·kw = kh·kw rows is too thin to
// run fast) and stride 1. An image is copied once, zero-padded, into the workspace as a
// (oh+kh−1)×(ow+kw−1) map with a zeroed tail; outputs are computed kLanes of a row at a time,
// reading whole vectors: the lanes past a row's end read padding or the next row, and are
// never stored.
bool direct(const ConvGeom& g) { return g.c == 1 && g.stride == 1; }

int padded_w(const ConvGeom& g) { return g.ow + g.kw - 1; }
int64_t padded_floats(const ConvGeom& g) {
  return round16(int64_t(g.oh + g.kh - 1) * padded_w(g) + kLanes);
}

// Image x (1×h×w) into the padded map (see above).
void pad_image(const ConvGeom& g, const float* x, float* map) {
  const int pw = padded_w(g);
  std::fill(map, map + padded_floats(g), 0.0f);
  for (int iy = 0; iy < g.h; ++iy) {
    const int py = iy + g.pad_top;
    if (py >= g.oh + g.kh - 1) break;  // rows past the last window (valid padding's remainder)
    const int cols = std::min(g.w, pw - g.pad_left);
    std::copy(x + int64_t(iy) * g.w, x + int64_t(iy) * g.w + cols, map + int64_t(py) * pw + g.pad_left);
  }
}

// The direct path's workspace: every image of the slice padded, the weights in blocks of
// kFilterBlock filters (zero rows past m), and the general backward's running sums.
int64_t filter_blocks(const ConvGeom& g) { return (g.m + kFilterBlock - 1) / kFilterBlock; }
int64_t direct_workspace(const ConvGeom& g) {
  const int64_t taps = int64_t(g.kh) * g.kw;
  return std::max(g.n, 1) * padded_floats(g) +
         round16(filter_blocks(g) * kFilterBlock * taps) + (taps + 1) * g.m * kLanes;
}

// Where the t-th of `tiles` kLanes-wide tiles of a row of ow outputs starts: every kLanes,
// and where ow ≥ kLanes the last one moved back to end at ow, overlapping the one before
// (so every store is a whole vector inside the row). ow < kLanes: one partial tile.
int tile_start(int t, int tiles, int ow) {
  return ow >= kLanes && t == tiles - 1 ? ow - kLanes : t * kLanes;
}

// KH, KW: the window when known at compile time (the loops over it unroll), else 0.
template <int KH, int KW>
void direct_forward(const ConvGeom& g, const float* x, const float* w, const float* b, bool relu,
                    float* y, float* workspace) {
  const int kh = KH ? KH : g.kh, kw = KW ? KW : g.kw;
  const int taps = kh * kw, pw = padded_w(g), tiles = (g.ow + kLanes - 1) / kLanes;
  const int64_t p = plane(g), image = int64_t(g.h) * g.w;
  float* map = workspace;
  float* wblocks = workspace + padded_floats(g);  // [block][tap][filter of the block]
  std::fill(wblocks, wblocks + filter_blocks(g) * kFilterBlock * taps, 0.0f);
  for (int m = 0; m < g.m; ++m)
    for (int tap = 0; tap < taps; ++tap)
      wblocks[(m / kFilterBlock * taps + tap) * kFilterBlock + m % kFilterBlock] = w[m * taps + tap];
  for (int n = 0; n < g.n; ++n) {
    pad_image(g, x + n * image, map);
    for (int m0 = 0; m0 < g.m; m0 += kFilterBlock) {
      const int mb = std::min(kFilterBlock, g.m - m0);
      const float* wb = wblocks + int64_t(m0) * taps;
      for (int oy = 0; oy < g.oh; ++oy) {
        for (int t = 0; t < tiles; ++t) {
          const int ox = tile_start(t, tiles, g.ow);
          Lanes acc[kFilterBlock] = {};
          for (int i = 0; i < kh; ++i) {
            const float* row = map + int64_t(oy + i) * pw + ox;
            for (int j = 0; j < kw; ++j) {
              const Lanes v = load(row + j);
              const float* wt = wb + (i * kw + j) * kFilterBlock;
              for (int r = 0; r < kFilterBlock; ++r) acc[r] += wt[r] * v;
            }
          }
          for (int r = 0; r < mb; ++r) {
            float* dst = y + (n * int64_t(g.m) + m0 + r) * p + int64_t(oy) * g.ow + ox;
            Lanes v = acc[r] + b[m0 + r];
            if (relu) v = select(v > 0.0f, v, Lanes{});
            if (g.ow >= kLanes) {
              store(dst, v);
            } else {
              for (int l = 0; l < g.ow; ++l) dst[l] = v[l];
            }
          }
        }
      }
    }
  }
}

// The ReLU-masked dy of kLanes outputs at `at` (those of one tile; `fresh`: the lanes the
// tile counts), or of the g.ow < kLanes of a whole row.
Lanes masked_dy(const ConvGeom& g, const float* y, const float* dy, int64_t at, IntLanes fresh) {
  Lanes d = {};
  if (g.ow >= kLanes) {
    d = y ? where_positive(load(y + at), load(dy + at)) : load(dy + at);
    d = select(fresh, d, Lanes{});
  } else {
    for (int l = 0; l < g.ow; ++l) d[l] = !y || y[at + l] > 0.0f ? dy[at + l] : 0.0f;
  }
  return d;
}

// dw and db of a direct conv (its dx is not asked for: a first layer). Each lane sums its
// own share of the products, the lanes are added in order at the end. With the window known
// at compile time, kGradBlock filters' sums stay in registers over the whole slice.
template <int KH, int KW>
void direct_backward_filter(const ConvGeom& g, const float* x, const float* y, const float* dy,
                            float* dw, float* db, float* workspace) {
  constexpr int kTaps = KH * KW;
  const int pw = padded_w(g), tiles = (g.ow + kLanes - 1) / kLanes;
  const int64_t p = plane(g), image = int64_t(g.h) * g.w, padded = padded_floats(g);
  for (int n = 0; n < g.n; ++n) pad_image(g, x + n * image, workspace + n * padded);
  IntLanes lane;
  for (int l = 0; l < kLanes; ++l) lane[l] = l;
  for (int m0 = 0; m0 < g.m; m0 += kGradBlock) {
    const int mb = std::min(kGradBlock, g.m - m0);
    Lanes acc[kGradBlock][kTaps + 1] = {};  // [filter][tap], then db
    for (int n = 0; n < g.n; ++n) {
      const float* map = workspace + n * padded;
      for (int oy = 0; oy < g.oh; ++oy) {
        for (int t = 0; t < tiles; ++t) {
          const int ox = tile_start(t, tiles, g.ow);
          const IntLanes fresh = lane >= t * kLanes - ox;  // the lanes no earlier tile counted
          Lanes d[kGradBlock] = {};
          for (int r = 0; r < mb; ++r) {
            d[r] = masked_dy(g, y, dy, (n * int64_t(g.m) + m0 + r) * p + int64_t(oy) * g.ow + ox,
                             fresh);
            acc[r][kTaps] += d[r];
          }
          for (int i = 0; i < KH; ++i) {
            const float* row = map + int64_t(oy + i) * pw + ox;
            for (int j = 0; j < KW; ++j) {
              const Lanes v = load(row + j);
              for (int r = 0; r < kGradBlock; ++r) acc[r][i * KW + j] += d[r] * v;
            }
          }
        }
      }
    }
    for (int r = 0; r < mb; ++r) {
      for (int tap = 0; tap <= kTaps; ++tap) {
        float sum = 0.0f;
        for (int l = 0; l < kLanes; ++l) sum += acc[r][tap][l];
        if (tap < kTaps) {
          dw[int64_t(m0 + r) * kTaps + tap] = sum;
        } else {
          db[m0 + r] = sum;
        }
      }
    }
  }
}

// The same for any window: the running sums of all filters in the workspace.
void direct_backward_filter_any(const ConvGeom& g, const float* x, const float* y,
                                const float* dy, float* dw, float* db, float* workspace) {
  const int taps = g.kh * g.kw, pw = padded_w(g), tiles = (g.ow + kLanes - 1) / kLanes;
  const int64_t p = plane(g), image = int64_t(g.h) * g.w;
  float* map = workspace;
  // Per output channel: taps running sums of dw, then one of db.
  Lanes* acc = reinterpret_cast<Lanes*>(workspace + std::max(g.n, 1) * padded_floats(g) +
                                        round16(filter_blocks(g) * kFilterBlock * taps));
  std::fill(acc, acc + int64_t(taps + 1) * g.m, Lanes{});
  IntLanes lane;
  for (int l = 0; l < kLanes; ++l) lane[l] = l;
  for (int n = 0; n < g.n; ++n) {
    pad_image(g, x + n * image, map);
    for (int m = 0; m < g.m; ++m) {
      Lanes* a = acc + int64_t(m) * (taps + 1);
      for (int oy = 0; oy < g.oh; ++oy) {
        for (int t = 0; t < tiles; ++t) {
          const int ox = tile_start(t, tiles, g.ow);
          const Lanes d = masked_dy(g, y, dy, (n * int64_t(g.m) + m) * p + int64_t(oy) * g.ow + ox,
                                    lane >= t * kLanes - ox);
          a[taps] += d;
          for (int i = 0; i < g.kh; ++i) {
            const float* row = map + int64_t(oy + i) * pw + ox;
            for (int j = 0; j < g.kw; ++j) a[i * g.kw + j] += d * load(row + j);
          }
        }
      }
    }
  }
  for (int m = 0; m < g.m; ++m) {
    for (int tap = 0; tap <= taps; ++tap) {
      float sum = 0.0f;
      for (int l = 0; l < kLanes; ++l) sum += acc[int64_t(m) * (taps + 1) + tap][l];
      if (tap < taps) {
        dw[int64_t(m) * taps + tap] = sum;
      } else {
        db[m] = sum;
      }
    }
  }
}

// Direct convolution over many channels, for stride 1: no im2col, no packing. One image's
// `cin` planes, zero-padded to ph×pw (pw = ow + kw − 1, ph = oh + kh − 1), give cout planes
// of oh×ow outputs. The outputs are computed on the padded width: output q = oy·pw + ox reads
// map[c][q + i·pw + j] for every tap, so a run of consecutive q is a run of consecutive
// inputs whatever the map's width, and a vector never needs a row to itself (on a 12-wide
// map, a 16-lane vector covers parts of two rows). The lanes of columns ox ≥ ow are computed
// and dropped. kTileVectors vectors of q for kManyFilters filters at a time: each weight is
// loaded once for kTileVectors·kLanes outputs, each input vector once for kManyFilters filters.
// The weights come in blocks [filter block][channel][tap][filter of the block]. The backward's
// dx is the same computation on the padded dy with the weights flipped and transposed.
#ifndef SPLITCONV_TILE_VECTORS
#if SPLITCONV_LANES == 16
#define SPLITCONV_TILE_VECTORS 2
#define SPLITCONV_MANY_FILTERS 8
#else
#define SPLITCONV_TILE_VECTORS 1
#define SPLITCONV_MANY_FILTERS 8
#endif
#endif
constexpr int kTileVectors = SPLITCONV_TILE_VECTORS;
constexpr int kManyFilters = SPLITCONV_MANY_FILTERS;
constexpr int kTile = kTileVectors * kLanes;

struct DirectShape {
  int cin, cout, kh, kw, oh, ow;
  int pw() const { return ow + kw - 1; }
  int ph() const { return oh + kh - 1; }
  int64_t plane() const { return int64_t(ph()) * pw(); }
  // Outputs computed per filter, on the padded width, in whole tiles.
  int64_t wide() const { return (int64_t(oh) * pw() + kTile - 1) / kTile * kTile; }
  // The padded map and the zeros the last tile's reads run into past the last plane (up to
  // (kh − 1)·pw + kw − 2 floats past the last tile's start in the last plane).
  int64_t map_floats() const {
    return round16(cin * plane() + wide() - int64_t(oh) * pw() + kLanes + kw);
  }
};

// The direct path computes s.wide() outputs per filter for oh·ow kept: on small maps the
// padded width, the tile's rounding and (for dx) the full correlation's border make it lose
// to the GEMM path, which runs several images per GEMM there. Measured with one thread
// (`bench conv`, batch 16). 16 lanes (AVX-512, tiles of 32 outputs): kept/computed 0.39 and
// 0.54–0.64 slower, 0.75–0.78 even within the noise, 0.85 and more faster (1.3–1.6× on the
// forward of 64 channels at 56×56 and 28×28). 8 lanes (AVX2, tiles of 8): 0.625 (3×3 on 7×7)
// 15–20% slower, 0.69 (5×5 on 14×14) 15% faster, 0.77 even, 0.84 (32→64 on 13×13) and 0.93
// (64→64 on 28×28) 1.2–1.3× faster on the forward; 4 lanes (SSE) as 8, unmeasured. With 16
// lanes and at most 64 filters the GEMM path weighs more (its im2col and col2im pass over
// the columns once per m products), and the direct path wins from 0.7 (`bench conv`, one
// thread, 16 images, alternated twice; ms): 7×7 16→16 on 56×56 forward + backward 30.5–31.6
// against 34.1–35.0 (dx kept 0.72), 7×7 64→64 on 28×28 forward 21.3–21.6 against 23.1–23.2
// (0.76), 3×3 16→16 on 14×14 forward 0.083 against 0.153 and forward + backward 0.29 against
// 0.46–0.50 (0.75), 3×3 64→64 on 14×14 forward 1.21–1.24 against 1.30–1.33; seed-v0's conv2
// (32→64 on 13×13, 0.76) even. At 128 filters (3×3 on 14×14, the forward op timed alone)
// the GEMM path stayed ahead, 4.5–4.7 against 5.0. The choice depends on the shape only, so
// a step's bits never depend on a timing.
double direct_kept(const ConvGeom& g) {
  if (kLanes != 16) return 0.65;
  return g.m <= 64 ? 0.7 : 0.8;
}
DirectShape forward_shape(const ConvGeom& g) { return {g.c, g.m, g.kh, g.kw, g.oh, g.ow}; }
DirectShape dx_shape(const ConvGeom& g) { return {g.m, g.c, g.kh, g.kw, g.h, g.w}; }
// Both directions do the GEMM path's work, oh·ow columns of patch products, as s.wide().
bool worth_it(const ConvGeom& g, const DirectShape& s) {
  return g.c > 1 && g.stride == 1 && double(g.oh) * g.ow >= direct_kept(g) * double(s.wide());
}
bool direct_forward_ok(const ConvGeom& g) { return worth_it(g, forward_shape(g)); }
bool direct_dx_ok(const ConvGeom& g) { return worth_it(g, dx_shape(g)); }
bool direct_many(const ConvGeom& g) { return direct_forward_ok(g) || direct_dx_ok(g); }

int64_t block_floats(int cout, int cin, int taps) {
  return round16(int64_t((cout + kManyFilters - 1) / kManyFilters) * kManyFilters * cin * taps);
}

// Where a tile's sums go: the wide rows (planes null), or, where the padded width is the
// output width (a window one column wide) and the tile ends inside the plane, the block's
// output planes themselves (`plane` floats apart), with the bias and the ReLU applied as
// direct_image's copy applies them; only the block's first `filters` filters are kept.
struct TileOut {
  float* planes = nullptr;
  int64_t plane = 0;
  int filters = 0;
  const float* bias = nullptr;
  bool relu = false;
};

// The tile of outputs [q0, q0 + kTile) of the block's kManyFilters filters into wide
// (kManyFilters rows of `stride` floats) or, when to.planes, into the output planes.
template <int KH, int KW>
__attribute__((noinline)) void direct_tile(const DirectShape& s, const float* map,
                                           const float* wblock, float* wide, int64_t stride,
                                           int64_t q0, const TileOut& to) {
  const int kh = KH ? KH : s.kh, kw = KW ? KW : s.kw, taps = kh * kw, pw = s.pw();
  const int64_t plane = s.plane();
  Lanes acc[kTileVectors][kManyFilters] = {};
  // At least one channel and one tap: told so, GCC keeps the sums in registers from the
  // start (else it zeroes a copy in memory with a call to memset and stores them there after
  // the loop). On the 1×3 16→16 conv on 54×56 (one thread, 16 images) that made the forward
  // 0.48–0.51 ms against 0.57–0.58, the 3×3's on 56×56 1.26–1.30 against 1.33–1.34.
  if (s.cin < 1 || kh < 1 || kw < 1) __builtin_unreachable();
  for (int c = 0; c < s.cin; ++c) {
    const float* r = map + c * plane + q0;
    const float* wc = wblock + int64_t(c) * taps * kManyFilters;
    for (int i = 0; i < kh; ++i) {
      for (int j = 0; j < kw; ++j) {
        const float* wt = wc + (i * kw + j) * kManyFilters;
        Lanes v[kTileVectors];
        for (int u = 0; u < kTileVectors; ++u) v[u] = load(r + i * pw + j + u * kLanes);
        for (int f = 0; f < kManyFilters; ++f)
          for (int u = 0; u < kTileVectors; ++u) acc[u][f] += wt[f] * v[u];
      }
    }
  }
  if (to.planes) {
    for (int f = 0; f < kManyFilters; ++f) {
      if (f >= to.filters) break;
      const float add = to.bias ? to.bias[f] : 0.0f;
      for (int u = 0; u < kTileVectors; ++u) {
        Lanes v = acc[u][f] + add;
        if (to.relu) v = select(v > 0.0f, v, Lanes{});  // as relu_forward: NaN and −0 give 0
        store(to.planes + f * to.plane + q0 + u * kLanes, v);
      }
    }
    return;
  }
  for (int f = 0; f < kManyFilters; ++f)
    for (int u = 0; u < kTileVectors; ++u) store(wide + f * stride + q0 + u * kLanes, acc[u][f]);
}

// to[q] = from[q] + add for q in [0, n), then the ReLU when relu (as relu_forward).
void add_bias_act(const float* from, float* to, int64_t n, float add, bool relu) {
  if (relu) {
    for (int64_t q = 0; q < n; ++q) {
      const float v = from[q] + add;
      to[q] = v > 0.0f ? v : 0.0f;  // as relu_forward: NaN and −0 give 0
    }
  } else {
    for (int64_t q = 0; q < n; ++q) to[q] = from[q] + add;
  }
}

// Where the tiles start. A tile of a row window (1×kw) reads, for each channel, kw vectors at
// successive floats. On AVX-512 (Zen 5), with kw of 5 or 7, a tile ran a quarter to a third
// slower when one of those reads but the last starts on a 64-byte line (x read in place, one
// thread, 16 images): the 1×5 64→64 conv on 52×56 took 13.1–15.9 ms with x on a line or 1–3
// floats before one, 10.3–11.2 with x 1 to 12 floats after one; the 1×7's 17.7–18.6 against
// 13.5–14.3. Neither the 1×3 (7.2–8.2 ms on 54×56 at every offset) nor the 3×3 and 5×5 (the
// windows' rows fall at several offsets) showed it. So for 1×kw, kw ≥ 5, the tiles after the
// first start `shift` floats before the grid of kTile, the least shift (1 to 15) that leaves
// no channel's reads in that case (0: none needed, or none found); the first tile stays at 0
// and the last at wide() − kTile, overlapping their neighbours (one tile more; a position's
// sum is the same in any tile, so the outputs are too). `line` is the map's float offset
// within its 64-byte line. With the shift, the 1×5's forward took 10.6–11.6 ms at x on a line.
bool line_start_read(int64_t at, int kw) {  // a read but the last starts on a line
  const int a = int(at & 15);
  return a == 0 || a >= 18 - kw;
}
// The tile after the one at q0: kTile on, shifted back after the first, the last at stride −
// kTile (stride a multiple of kTile; stride when none is left).
int64_t next_tile(int64_t q0, int shift, int64_t stride) {
  const int64_t next = q0 == 0 ? kTile - shift : q0 + kTile;
  if (next + kTile <= stride || next >= stride) return next;
  return stride - kTile > q0 ? stride - kTile : stride;  // the tile at q0 reaches stride
}
int tile_shift(const DirectShape& s, int line) {
  if (kLanes != 16 || s.kh != 1 || s.kw < 5 || s.kw > 16 || s.wide() < 2 * kTile) return 0;
  for (int shift = 0; shift < 16; ++shift) {
    bool any = false;
    for (int c = 0; c < std::min(s.cin, 16); ++c)
      any = any || line_start_read(line - shift + c * s.plane(), s.kw);
    if (!any) return shift;
  }
  return 0;
}

// All cout planes of one image into out (cout × oh×ow), each + bias[f] (when bias) and
// max(·, 0) (when relu); `wide` holds kManyFilters × s.wide() floats.
template <int KH, int KW>
void direct_image(const DirectShape& s, const float* map, const float* wblocks, const float* bias,
                  bool relu, float* out, float* wide) {
  const int taps = s.kh * s.kw, pw = s.pw();
  const int64_t stride = s.wide(), out_plane = int64_t(s.oh) * s.ow;
  // A window one column wide computes no dropped columns: the tiles that end inside the plane
  // write the output planes themselves, and only the rest goes through the wide rows (one
  // thread, 16 images: the 3×1 16→16 conv on 56×56, the forward op alone, 0.42–0.52 against
  // 0.55–0.57 ms; the 3×1 + 1×3 64→64 pair on 28×28 in `bench conv`, forward 3.49–3.72
  // against 3.64–4.01).
  const int64_t in_place = pw == s.ow ? out_plane / kTile * kTile : 0;
  const int shift = tile_shift(s, int(reinterpret_cast<uintptr_t>(map) / sizeof(float) & 15));
  for (int m0 = 0; m0 < s.cout; m0 += kManyFilters) {
    const float* wblock = wblocks + int64_t(m0) * s.cin * taps;
    const int filters = std::min(kManyFilters, s.cout - m0);
    const TileOut direct_out{out + m0 * out_plane, out_plane, filters, bias ? bias + m0 : nullptr,
                             relu};
    for (int64_t q0 = 0; q0 < stride; q0 = next_tile(q0, shift, stride))
      direct_tile<KH, KW>(s, map, wblock, wide, stride, q0,
                          q0 + kTile <= in_place ? direct_out : TileOut{});
    for (int f = 0; f < filters; ++f) {
      const float add = bias ? bias[m0 + f] : 0.0f;
      const float* from = wide + f * stride;
      float* to = out + (m0 + f) * out_plane;
      if (pw == s.ow) {  // one run: the plane's outputs the tiles did not write
        add_bias_act(from + in_place, to + in_place, out_plane - in_place, add, relu);
        continue;
      }
      for (int oy = 0; oy < s.oh; ++oy)
        add_bias_act(from + int64_t(oy) * pw, to + int64_t(oy) * s.ow, s.ow, add, relu);
    }
  }
}

// The common windows unrolled at compile time, any other at run time.
void direct_image_any(const DirectShape& s, const float* map, const float* wblocks,
                      const float* bias, bool relu, float* out, float* wide) {
  const int kh = s.kh, kw = s.kw;
  if (kh == 3 && kw == 3) return direct_image<3, 3>(s, map, wblocks, bias, relu, out, wide);
  if (kh == 3 && kw == 1) return direct_image<3, 1>(s, map, wblocks, bias, relu, out, wide);
  if (kh == 1 && kw == 3) return direct_image<1, 3>(s, map, wblocks, bias, relu, out, wide);
  if (kh == 5 && kw == 5) return direct_image<5, 5>(s, map, wblocks, bias, relu, out, wide);
  if (kh == 5 && kw == 1) return direct_image<5, 1>(s, map, wblocks, bias, relu, out, wide);
  if (kh == 1 && kw == 5) return direct_image<1, 5>(s, map, wblocks, bias, relu, out, wide);
  if (kh == 7 && kw == 1) return direct_image<7, 1>(s, map, wblocks, bias, relu, out, wide);
  if (kh == 1 && kw == 7) return direct_image<1, 7>(s, map, wblocks, bias, relu, out, wide);
  if (kh == 1 && kw == 1) return direct_image<1, 1>(s, map, wblocks, bias, relu, out, wide);
  direct_image<0, 0>(s, map, wblocks, bias, relu, out, wide);
}

// `planes` planes of rows×cols from src (row length cols) at (top, left) of each plane of a
// padded map of shape s, zeros around them and after the last plane (a plane of `rows` rows
// of `cols` floats may come from rows `ld` floats apart, planes `plane_ld` apart; top + rows
// ≤ s.ph(), left + cols ≤ s.pw()). Each float of the map written once.
void pad_planes(const DirectShape& s, int planes, const float* src, int rows, int cols,
                int64_t ld, int64_t plane_ld, int top, int left, float* map) {
  const int pw = s.pw();
  for (int c = 0; c < planes; ++c) {
    float* plane = map + c * s.plane();
    std::fill(plane, plane + int64_t(top) * pw, 0.0f);
    for (int r = 0; r < rows; ++r) {
      float* row = plane + int64_t(top + r) * pw;
      const float* from = src + c * plane_ld + r * ld;
      std::fill(row, row + left, 0.0f);
      std::copy(from, from + cols, row + left);
      std::fill(row + left + cols, row + pw, 0.0f);
    }
    std::fill(plane + int64_t(top + rows) * pw, plane + s.plane(), 0.0f);
  }
  std::fill(map + planes * s.plane(), map + s.map_floats(), 0.0f);
}

// Whether an image (c planes of h×w) is its own padded map for shape s: stride 1 and no
// padding (a valid conv). The forward's tiles read past the last plane, into the next image.
bool unpadded(const ConvGeom& g, const DirectShape& s) {
  return g.pad_top == 0 && g.pad_left == 0 && s.ph() == g.h && s.pw() == g.w;
}

// Weights w (m × c × taps) in blocks [out / F][in][tap][out % F] (zero past the last filter)
// for a direct convolution of `outs` filters over `ins` channels: the forward's (out m, in c)
// or, transposed and flipped, dx's (out c, in m, tap taps − 1 − tap of w).
void block_weights(const ConvGeom& g, const float* w, bool for_dx, float* wb) {
  const int taps = g.kh * g.kw, outs = for_dx ? g.c : g.m, ins = for_dx ? g.m : g.c;
  std::fill(wb, wb + block_floats(outs, ins, taps), 0.0f);
  for (int o = 0; o < outs; ++o)
    for (int i = 0; i < ins; ++i)
      for (int tap = 0; tap < taps; ++tap) {
        const int64_t from = for_dx ? (int64_t(i) * g.c + o) * taps + (taps - 1 - tap)
                                    : (int64_t(o) * g.c + i) * taps + tap;
        wb[((int64_t(o / kManyFilters) * ins + i) * taps + tap) * kManyFilters + o % kManyFilters] =
            w[from];
      }
}

// The weight gradient without im2col or packing, for stride 1 and the windows unrolled at
// compile time: dw[f][c][i][j] = Σ over the outputs (oy, ox) of dy[f][oy][ox] ·
// map[c][oy + i][ox + j], map the image padded as for the forward (pad_planes). Each image's
// dy is first transposed to output-major, dyt[oy·ow + ox][f] with the filters padded to whole
// vectors, so that one vector holds one output's gradient for kLanes filters: every tap of
// every channel is then a running vector sum, a scalar of the map (a broadcast) times that
// vector. A tile holds the sums of CB channels × KH·KW taps for V vectors of filters, in
// registers over the whole image, each lane's sum taken over the outputs in order: the bits
// depend on the shape only. A tile has up to kDwSums sums, and V vectors of dyt beside them
// (AVX-512: 32 registers; else 16); the more vectors, the fewer broadcasts per product.
constexpr int kDwSums = kLanes == 16 ? 27 : 12;
template <int KH, int KW>
constexpr int dw_vectors() {  // V at most
  return std::min(3, kDwSums / (KH * KW));
}
template <int KH, int KW, int V>
constexpr int dw_channels() {  // CB
  return std::max(1, (kDwSums - 3) / (KH * KW * V));
}

// The windows with a tile (whose sums fit the registers): f(Window<KH, KW>{}) for kh × kw and
// true, or false for any other window. The one list both the choice and the call read.
template <int KH, int KW>
struct Window {
  static constexpr int kh = KH, kw = KW;
};
template <class F>
bool with_dw_window(int kh, int kw, F&& f) {
  if (kh == 3 && kw == 3) return f(Window<3, 3>{}), true;
  if (kh == 3 && kw == 1) return f(Window<3, 1>{}), true;
  if (kh == 1 && kw == 3) return f(Window<1, 3>{}), true;
  if (kh == 5 && kw == 1) return f(Window<5, 1>{}), true;
  if (kh == 1 && kw == 5) return f(Window<1, 5>{}), true;
  if (kh == 7 && kw == 1) return f(Window<7, 1>{}), true;
  if (kh == 1 && kw == 7) return f(Window<1, 7>{}), true;
  if constexpr (kDwSums >= 25) {
    if (kh == 5 && kw == 5) return f(Window<5, 5>{}), true;
  }
  return false;
}
bool dw_window(int kh, int kw) { return with_dw_window(kh, kw, [](auto) {}); }
// A window without a tile of its own whose rows have one (1×kw, kh > 1: 7×7, 3×5, 2×5, …) runs
// as kh row windows, the i-th reading the map i rows down and giving the taps (i, ·): the same
// products, each tap's sum over the outputs in the same order. 16 lanes only, where it was
// measured against the GEMM's dw (`bench conv`, one thread, 16 images, alternated twice;
// forward + backward): 7×7 16→16 on 56×56 19.6–20.7 against 30.8–31.4 ms, 7×7 64→64 on
// 28×28 75.6–84.3 against 91.0–94.5.
bool dw_by_rows(int kh, int kw) {
  return kLanes == 16 && kh > 1 && !dw_window(kh, kw) && dw_window(1, kw);
}
// Used with 16 and 8 lanes, where it was measured (docs/design.md, CPU engine); with 4 (SSE),
// not measured, dw stays the GEMM. On the direct path's maps only: on small maps of many
// channels (3×3 256→256 on 14×14, dw of 12×12 outputs) the GEMM's dw was 1.15–1.3× faster.
#ifndef SPLITCONV_DIRECT_DW
#define SPLITCONV_DIRECT_DW (SPLITCONV_LANES >= 8)
#endif
constexpr bool kDirectDw = SPLITCONV_DIRECT_DW;
bool direct_dw_ok(const ConvGeom& g) {
  return kDirectDw && g.c > 1 && g.stride == 1 &&
         (dw_window(g.kh, g.kw) || dw_by_rows(g.kh, g.kw)) && direct_forward_ok(g);
}
int64_t dw_filters(const ConvGeom& g) { return (int64_t(g.m) + kLanes - 1) / kLanes * kLanes; }

// One tile: the sums over an image of channels base[0..CB) (padded maps, rows pw floats
// apart) times V vectors of the filters' gradients dyt (outputs `ld` floats apart), into
// sums[v][c][i][j].
template <int KH, int KW, int V>
__attribute__((noinline)) void dw_tile(const float* const* base, int pw, int oh, int ow,
                                       const float* dyt, int64_t ld, Lanes* sums) {
  constexpr int CB = dw_channels<KH, KW, V>();
  Lanes acc[V][CB][KH][KW] = {};
  if (oh < 1 || ow < 1) __builtin_unreachable();  // as in direct_tile: the sums in registers
  for (int oy = 0; oy < oh; ++oy) {
    const float* d = dyt + int64_t(oy) * ow * ld;
    const float* r[CB];
    for (int c = 0; c < CB; ++c) r[c] = base[c] + int64_t(oy) * pw;
    for (int ox = 0; ox < ow; ++ox) {
      Lanes b[V];
      for (int v = 0; v < V; ++v) b[v] = load(d + ox * ld + v * kLanes);
      for (int c = 0; c < CB; ++c) {
        const float* row = r[c];
        // A row window (1×KW): GCC keeps each channel's last KW − 1 inputs in registers for
        // the next output. With 16 lanes the tile's 8 channels × KW sums leave no room and it
        // spills (1×3 16→16 on 56×56, one thread, 16 images: backward 1.38–1.46 ms, 1.22–1.24
        // with every input loaded as it is used); with 8 lanes (3 channels) the reuse pays
        // (2.60–2.71 against 2.69–2.79 ms). The empty asm hides the row's pointer from the
        // compiler, so each input is loaded where it is used; it emits nothing (volatile, so
        // that it stays in the loop).
        if constexpr (kLanes == 16 && KH == 1 && KW > 1) asm volatile("" : "+r"(row));
        for (int i = 0; i < KH; ++i)
          for (int j = 0; j < KW; ++j) {
            const float a = row[ox + i * pw + j];
            for (int v = 0; v < V; ++v) acc[v][c][i][j] += a * b[v];
          }
      }
    }
  }
  for (int v = 0; v < V; ++v)
    for (int c = 0; c < CB; ++c)
      for (int i = 0; i < KH; ++i)
        for (int j = 0; j < KW; ++j) sums[((v * CB + c) * KH + i) * KW + j] = acc[v][c][i][j];
}

// The filters [f0, f0 + V·kLanes) of one image's dw (see direct_dw): the taps of a KH × KW
// window, or (KH = 1, a row of a larger window, dw_by_rows) those of the window's row `row`.
template <int KH, int KW, int V>
void direct_dw_filters(const ConvGeom& g, const DirectShape& s, const float* map,
                       const float* dyt, int f0, float* dw, bool add, int row) {
  constexpr int CB = dw_channels<KH, KW, V>(), taps = KH * KW;
  const int all = g.kh * g.kw;  // the window's taps per channel in dw (taps, or kh·KW)
  const int64_t k = int64_t(g.c) * all, ld = dw_filters(g);
  Lanes sums[V * CB * taps];
  for (int c0 = 0; c0 < g.c; c0 += CB) {
    // A last tile of fewer channels repeats the last one, and drops its sums.
    const float* base[CB];
    for (int c = 0; c < CB; ++c)
      base[c] = map + std::min(c0 + c, g.c - 1) * s.plane() + int64_t(row) * s.pw();
    dw_tile<KH, KW, V>(base, s.pw(), g.oh, g.ow, dyt + f0, ld, sums);
    for (int v = 0; v < V; ++v)
      for (int c = 0; c < std::min(CB, g.c - c0); ++c)
        for (int tap = 0; tap < taps; ++tap)
          for (int l = 0; l < std::min(kLanes, g.m - f0 - v * kLanes); ++l) {
            float& to = dw[(f0 + v * kLanes + l) * k + (c0 + c) * all + row * KW + tap];
            const float sum = sums[(v * CB + c) * taps + tap][l];
            to = add ? to + sum : sum;
          }
  }
}

// One image's dw from its padded map (shape s) and dyt: stored, or added to dw when add.
template <int KH, int KW>
void direct_dw(const ConvGeom& g, const DirectShape& s, const float* map, const float* dyt,
               float* dw, bool add, int row = 0) {
  constexpr int most = dw_vectors<KH, KW>();
  for (int f0 = 0; f0 < g.m;) {
    const int vectors = std::min<int>(most, (g.m - f0 + kLanes - 1) / kLanes);
    if (vectors == 3) {
      direct_dw_filters<KH, KW, std::min(most, 3)>(g, s, map, dyt, f0, dw, add, row);
    } else if (vectors == 2) {
      direct_dw_filters<KH, KW, std::min(most, 2)>(g, s, map, dyt, f0, dw, add, row);
    } else {
      direct_dw_filters<KH, KW, 1>(g, s, map, dyt, f0, dw, add, row);
    }
    f0 += vectors * kLanes;
  }
}

void direct_dw_any(const ConvGeom& g, const DirectShape& s, const float* map, const float* dyt,
                   float* dw, bool add) {
  if (with_dw_window(g.kh, g.kw, [&](auto w) {
        direct_dw<decltype(w)::kh, decltype(w)::kw>(g, s, map, dyt, dw, add);
      }))
    return;
  for (int row = 0; row < g.kh; ++row)  // dw_by_rows
    with_dw_window(1, g.kw, [&](auto w) {  // every window is compiled; only 1 × kw runs
      if constexpr (decltype(w)::kh == 1)
        direct_dw<1, decltype(w)::kw>(g, s, map, dyt, dw, add, row);
    });
}

// One image's gradient dy (m planes of p = oh·ow floats) through the ReLU's backward (dy where
// y > 0; no y: dy itself): each filter's sum added to db in mask_and_sum's order, the masked
// planes kept in `to` (planes `ld` floats apart, may be dy; null: not kept) and transposed as
// dyt (p rows of dw_filters(g) floats, zeros past m), kLanes × kLanes blocks in registers, a
// plane's tail one float at a time. The same bits as masking the whole image, then
// transposing it; without dx the masked planes are never written out (one thread, 16 images,
// alternated three times: the 3×1 16→16 conv on 56×56, backward without dx, 0.528–0.559 ms
// against 0.547–0.571; the 1×3 on 54×56 0.497–0.504 against 0.522–0.529; with dx, and at 64
// filters, even).
void mask_transpose_dy(const ConvGeom& g, const float* y, const float* dy, float* to, int64_t ld,
                       float* dyt, float* db) {
  const int64_t p = plane(g), width = dw_filters(g), whole = p / kLanes * kLanes;
  // A block of kLanes filters kChunk outputs at a time: each filter's run masked on its own
  // (one stream per array) into `to`, or a buffer when `to` is null, then transposed from there
  // (at 64 filters, masking and transposing 16 filters' vectors at once ran slower than two
  // passes: 3×1 64→64 on 56×56, backward 14.8–15.5 against 13.9–14.2 ms).
  constexpr int64_t kChunk = 256;
  alignas(64) float buffer[kLanes * kChunk];
  for (int64_t f0 = 0; f0 < width; f0 += kLanes) {
    const int filters = int(std::min<int64_t>(kLanes, g.m - f0));
    Lanes acc[kLanes] = {};
    for (int64_t q0 = 0; q0 < whole; q0 += kChunk) {
      const int64_t n = std::min(whole - q0, kChunk);
      float* rows = to ? to + f0 * ld + q0 : buffer;  // the chunk's row t at rows + t·rows_ld
      const int64_t rows_ld = to ? ld : kChunk;
      for (int t = 0; t < filters; ++t) {
        const int64_t at = (f0 + t) * p + q0;
        mask_vectors(y ? y + at : nullptr, dy + at, rows + t * rows_ld, n, acc[t]);
      }
      for (int64_t q = 0; q < n; q += kLanes) {
        Lanes r[kLanes];
        for (int t = 0; t < kLanes; ++t) r[t] = t < filters ? load(rows + t * rows_ld + q) : Lanes{};
        tiles::transpose_inline<kLanes>(r);
        for (int t = 0; t < kLanes; ++t) store(dyt + (q0 + q + t) * width + f0, r[t]);
      }
    }
    for (int t = 0; t < kLanes; ++t) {  // each plane's last p − whole floats, and db
      float* tail = t < filters && to ? to + (f0 + t) * ld + whole : buffer;
      if (t < filters) {
        const int64_t at = (f0 + t) * p + whole;
        db[f0 + t] += mask_tail(y ? y + at : nullptr, dy + at, tail, p - whole, acc[t]);
      }
      for (int64_t q = whole; q < p; ++q)
        dyt[q * width + f0 + t] = t < filters ? tail[q - whole] : 0.0f;
    }
  }
}

// The direct path's own workspace, after the GEMM path's: one padded image (of x or of dy), a
// weight block set, one filter block's wide outputs, and an image's transposed dy (dyt).
struct DirectSpace {
  float* map;
  float* weights;
  float* wide;
  float* dyt;
};
int64_t dyt_floats(const ConvGeom& g) {
  return direct_dw_ok(g) ? round16(plane(g) * dw_filters(g)) : 0;
}
int64_t direct_many_floats(const ConvGeom& g) {
  const int taps = g.kh * g.kw;
  const DirectShape f = forward_shape(g), d = dx_shape(g);
  return std::max(f.map_floats(), d.map_floats()) +
         std::max(block_floats(g.m, g.c, taps), block_floats(g.c, g.m, taps)) +
         round16(kManyFilters * std::max(f.wide(), d.wide())) + dyt_floats(g);
}
DirectSpace direct_space(const ConvGeom& g, float* at) {
  const int taps = g.kh * g.kw;
  const DirectShape f = forward_shape(g), d = dx_shape(g);
  DirectSpace sp;
  sp.map = at;
  sp.weights = sp.map + std::max(f.map_floats(), d.map_floats());
  sp.wide = sp.weights + std::max(block_floats(g.m, g.c, taps), block_floats(g.c, g.m, taps));
  sp.dyt = sp.wide + round16(kManyFilters * std::max(f.wide(), d.wide()));
  return sp;
}

}  // namespace

// Patch rows of the forward's columns per im2col and GEMM, so that a block's columns are
// still in the core's L2 cache when the GEMM packs them (on the 3×3 256→256 conv at 14×14,
// 8 images per GEMM, the whole columns are 10.6 MB; with this and A packed by transposes,
// that conv's forward took 14.9–16.4 against 16.2–18.2 ms: one thread, batch 16, five
// alternations). With the engine's GEMM tiles the blocks are depth blocks of theirs (kDepth),
// so the sums are those of one GEMM: a block's sum added to C, block after block, as the tiles
// do. Eigen's GEMM (8 or 4 lanes) blocks the depth its own way: one call. (dw's columns in
// blocks of its output columns measured even: each block packs dy again.)
int64_t im2col_block(int64_t k) { return kOwnTiles ? tiles::kDepth : k; }

// The GEMM path's workspace: col2im's lead, the columns of a chunk and col2im's tail (which
// also takes what im2col writes past the last row), then the chunk's output or gradient as
// m × images·p when a chunk holds more than one image, then the GEMMs' packing blocks.
int64_t cols_floats(const ConvGeom& g) {
  return round16(patch(g) * chunk_images(g) * plane(g)) + col2im_tail(g);
}
int64_t out_floats(const ConvGeom& g) {
  return chunk_images(g) > 1 ? round16(int64_t(g.m) * chunk_images(g) * plane(g)) : 0;
}

// Packing floats of the largest of a conv's three GEMMs, for every chunk of 1 to chunk_images
// images (a slice's last chunk, or a smaller slice, runs fewer).
int64_t conv_packing(const ConvGeom& g) {
  const int64_t k = patch(g), p = plane(g);
  int64_t most = 0;
  for (int count = 1; count <= chunk_images(g); ++count) {
    const int64_t ld = count * p;
    most = std::max({most, conv_gemm_space(g.m, ld, k), conv_gemm_space(g.m, k, ld),
                     conv_gemm_space(k, ld, g.m)});
  }
  return round16(most);
}

// Where a conv's forward, dx and dw all run direct, the GEMM path's columns and packing go
// unused, and its part of the workspace is only the chunk's gathered dy (the backward masks a
// chunk of several images into it): a thread's workspace for the 3×3 16→16 conv on 56×56, 16
// images a slice, went from 3.89 to 0.52 MB.
bool all_direct(const ConvGeom& g) {
  return direct_forward_ok(g) && direct_dx_ok(g) && direct_dw_ok(g);
}
int64_t gemm_floats(const ConvGeom& g) {
  if (all_direct(g)) return out_floats(g);
  return col2im_lead(g) + cols_floats(g) + out_floats(g) + conv_packing(g);
}

int64_t conv_fast_workspace(const ConvGeom& g) {
  const int64_t gemm = gemm_floats(g);
  if (direct_many(g) || direct_dw_ok(g)) return gemm + direct_many_floats(g);
  return direct(g) ? std::max(gemm, direct_workspace(g)) : gemm;
}

namespace {

// The direct path's forward: each image padded, then direct_image.
void direct_many_forward(const ConvGeom& g, const float* x, const float* w, const float* b,
                         bool relu, float* y, float* workspace) {
  const DirectShape s = forward_shape(g);
  const DirectSpace sp = direct_space(g, workspace);
  block_weights(g, w, false, sp.weights);
  const int64_t image = int64_t(g.c) * g.h * g.w, out = int64_t(g.m) * g.oh * g.ow;
  for (int n = 0; n < g.n; ++n) {
    // A valid conv's image is its own map where what the tiles read past it is still in x.
    const float* map = x + n * image;
    if (!unpadded(g, s) || n * image + s.map_floats() > g.n * image) {
      pad_planes(s, g.c, x + n * image, g.h, g.w, g.w, int64_t(g.h) * g.w, g.pad_top,
                 g.pad_left, sp.map);
      map = sp.map;
    }
    direct_image_any(s, map, sp.weights, b, relu, y + n * out, sp.wide);
  }
}

}  // namespace

void conv_forward_fast(const ConvGeom& g, const float* x, const float* w, const float* b, bool relu,
                       float* y, float* workspace) {
  if (direct_forward_ok(g)) {
    return direct_many_forward(g, x, w, b, relu, y, workspace + gemm_floats(g));
  }
  if (direct(g)) {
    if (g.kh == 3 && g.kw == 3) return direct_forward<3, 3>(g, x, w, b, relu, y, workspace);
    if (g.kh == 5 && g.kw == 5) return direct_forward<5, 5>(g, x, w, b, relu, y, workspace);
    return direct_forward<0, 0>(g, x, w, b, relu, y, workspace);
  }
  const int64_t k = patch(g), p = plane(g), image = int64_t(g.c) * g.h * g.w;
  const int chunk = chunk_images(g);
  float* cols = workspace + col2im_lead(g);
  float* out = cols + cols_floats(g);
  float* packing = out + out_floats(g);
  for (int n0 = 0; n0 < g.n; n0 += chunk) {
    const int count = std::min(chunk, g.n - n0);
    const int64_t ld = count * p;
    // One image: the GEMM writes y itself; several: out (m × images·p), then spread to NCHW.
    // The columns a block of the depth at a time (see im2col_block).
    float* dst = count == 1 ? y + n0 * g.m * p : out;
    for (int64_t r0 = 0; r0 < k; r0 += im2col_block(k)) {
      const int64_t rows = std::min(im2col_block(k), k - r0);
      im2col(g, x + n0 * image, count, cols, ld, x + g.n * image, r0, r0 + rows);
      conv_gemm(g.m, ld, rows, {w + r0, k}, {cols, ld}, dst, ld, r0 > 0, packing);
    }
    for (int i = 0; i < count; ++i) {
      for (int m = 0; m < g.m; ++m) {
        const float* src = dst + m * ld + (count == 1 ? 0 : i * p);
        float* to = y + ((n0 + i) * int64_t(g.m) + m) * p;
        const float bias = b[m];
        if (relu) {
          for (int64_t q = 0; q < p; ++q) {
            const float v = src[q] + bias;
            to[q] = v > 0.0f ? v : 0.0f;
          }
        } else {
          for (int64_t q = 0; q < p; ++q) to[q] = src[q] + bias;
        }
      }
    }
  }
}

void conv_backward_fast(const ConvGeom& g, const float* x, const float* y, float* dy,
                        const float* w, float* dw, float* db, float* dx, float* workspace) {
  if (direct(g) && !dx) {
    if (g.kh == 3 && g.kw == 3) return direct_backward_filter<3, 3>(g, x, y, dy, dw, db, workspace);
    return direct_backward_filter_any(g, x, y, dy, dw, db, workspace);
  }
  const int64_t k = patch(g), p = plane(g), image = int64_t(g.c) * g.h * g.w;
  const int chunk = chunk_images(g);
  const bool direct_only = all_direct(g);  // no columns, no packing
  float* cols = direct_only ? nullptr : workspace + col2im_lead(g);
  float* gathered = direct_only ? workspace : cols + cols_floats(g);
  float* packing = direct_only ? nullptr : gathered + out_floats(g);
  // The direct path's padded map (of x for dw, of dy for dx), dx's weights, wide outputs and
  // dyt, past the GEMM path's workspace.
  DirectSpace dsp{};
  const bool dw_direct = direct_dw_ok(g);
  if ((direct_dx_ok(g) && dx) || dw_direct) dsp = direct_space(g, workspace + gemm_floats(g));
  if (direct_dx_ok(g) && dx) block_weights(g, w, true, dsp.weights);
  std::fill(db, db + g.m, 0.0f);
  if (dx && g.stride != 1) std::fill(dx, dx + g.x_size(), 0.0f);  // col2im accumulates
  for (int n0 = 0; n0 < g.n; n0 += chunk) {
    const int count = std::min(chunk, g.n - n0);
    const int64_t ld = count * p;
    // The chunk's dy as m × images·p (one image: dy itself), masked by the ReLU, and db (with
    // a direct dw: image by image in mask_transpose_dy, and only when dx reads it).
    float* dyc = count == 1 ? dy + n0 * g.m * p : gathered;
    for (int i = 0; i < count && !dw_direct; ++i) {
      for (int m = 0; m < g.m; ++m) {
        const int64_t at = ((n0 + i) * int64_t(g.m) + m) * p;
        float* to = dyc + m * ld + (count == 1 ? 0 : i * p);
        db[m] += mask_and_sum(y ? y + at : nullptr, dy + at, to, p);
      }
    }
    const int rows = dw_piece_rows(g);
    if (dw_direct) {  // each image padded as for the forward, its dy masked and transposed
      const DirectShape s = forward_shape(g);
      for (int i = 0; i < count; ++i) {
        const float* map = x + (n0 + i) * image;  // a valid conv's: dw reads inside each plane
        if (!unpadded(g, s)) {
          pad_planes(s, g.c, map, g.h, g.w, g.w, int64_t(g.h) * g.w, g.pad_top, g.pad_left,
                     dsp.map);
          map = dsp.map;
        }
        const int64_t at = (n0 + i) * int64_t(g.m) * p;
        mask_transpose_dy(g, y ? y + at : nullptr, dy + at, dx ? dyc + (count == 1 ? 0 : i * p) : nullptr,
                          ld, dsp.dyt, db);
        direct_dw_any(g, s, map, dsp.dyt, dw, n0 + i > 0);
      }
    } else if (count == 1 && (!dx || direct_dx_ok(g)) && rows < g.oh) {
      // One large image whose columns are not needed for dx: dw in pieces of whole output
      // rows, each piece's columns still in the core's L2 cache when its GEMM reads them.
      for (int oy0 = 0; oy0 < g.oh; oy0 += rows) {
        ConvGeom piece = g;
        piece.oh = std::min(rows, g.oh - oy0);
        piece.pad_top = g.pad_top - oy0 * g.stride;  // the piece's first row reads input row oy0·s − pad
        const int64_t cols_ld = int64_t(piece.oh) * g.ow;
        im2col(piece, x + n0 * image, 1, cols, cols_ld, x + g.n * image);
        conv_gemm(g.m, k, cols_ld, {dyc + int64_t(oy0) * g.ow, ld},
                            {cols, cols_ld, true}, dw, k, n0 > 0 || oy0 > 0, packing);
      }
    } else {
      im2col(g, x + n0 * image, count, cols, ld, x + g.n * image);
      conv_gemm(g.m, k, ld, {dyc, ld}, {cols, ld, true}, dw, k, n0 > 0, packing);
    }
    if (!dx) continue;
    if (direct_dx_ok(g)) {  // each image's masked dy padded by the window less the padding
      const DirectShape s = dx_shape(g);
      for (int i = 0; i < count; ++i) {
        pad_planes(s, g.m, dyc + i * p, g.oh, g.ow, g.ow, ld, g.kh - 1 - g.pad_top,
                   g.kw - 1 - g.pad_left, dsp.map);
        direct_image_any(s, dsp.map, dsp.weights, nullptr, false, dx + (n0 + i) * image, dsp.wide);
      }
      continue;
    }
    conv_gemm(k, ld, g.m, {w, k, true}, {dyc, ld}, cols, ld, false, packing);
    if (g.stride == 1) {
      col2im_stride1(g, cols, ld, count, dx + n0 * image, dx + g.n * image);
    } else {
      for (int i = 0; i < count; ++i) col2im(g, cols + i * p, ld, dx + (n0 + i) * image);
    }
  }
}

int64_t dense_fast_workspace(const DenseGeom& g) {
  int64_t most = 0;
  for (int n = 1; n <= g.n; ++n)
    most = std::max({most, gemm_space(n, g.out, g.in), gemm_space(n, g.in, g.out),
                     gemm_space(g.out, g.in, n)});
  return round16(most);
}

// cpu::dense_forward and dense_backward, their GEMMs packing into the workspace.
void dense_forward_fast(const DenseGeom& g, const float* x, const float* w, const float* b,
                        bool relu, float* y, float* workspace) {
  gemm(g.n, g.out, g.in, {x, g.in}, {w, g.in, true}, y, g.out, false, workspace);
  dense_bias_act(g, b, relu, y);
}

void dense_backward_fast(const DenseGeom& g, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* db, float* workspace) {
  if (dx) gemm(g.n, g.in, g.out, {dy, g.out}, {w, g.in}, dx, g.in, false, workspace);
  gemm(g.out, g.in, g.n, {dy, g.out, true}, {x, g.in}, dw, g.in, false, workspace);
  dense_bias_grad(g, dy, db);
}

void maxpool_forward_fast(const PoolGeom& g, const float* x, float* y, int32_t* argmax) {
  if (g.ph != 2 || g.pw != 2 || g.stride != 2) return maxpool_forward(g, x, y, argmax);
  const int64_t planes = int64_t(g.n) * g.c;
  const float* end = x + g.x_size();
  const float* y_end = y + g.y_size();
  IntLanes lane;
  for (int l = 0; l < kLanes; ++l) lane[l] = 2 * l;
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* in = x + pl * g.h * g.w;
    float* out = y + pl * g.oh * g.ow;
    int32_t* arg = argmax + pl * g.oh * g.ow;
    for (int oy = 0; oy < g.oh; ++oy) {
      const float* r0 = in + 2 * oy * g.w;
      const float* r1 = r0 + g.w;
      const int row = 2 * oy * g.w;
      int ox = 0;
      // kLanes outputs at a time from 2·kLanes inputs of each row, split into even and odd
      // columns; the lanes past the row read the next one and are not stored.
      for (; ox < g.ow && r1 + 2 * (ox + kLanes) <= end; ox += kLanes) {
        const Lanes a0 = load(r0 + 2 * ox), a1 = load(r0 + 2 * ox + kLanes);
        const Lanes c0 = load(r1 + 2 * ox), c1 = load(r1 + 2 * ox + kLanes);
        Lanes top = even_lanes(a0, a1);
        IntLanes best = lane + (row + 2 * ox);
        // As the reference: start at the corner, take a later one only when strictly larger.
        IntLanes take = odd_lanes(a0, a1) > top;
        best -= take;  // take is −1 where it holds: one column right
        top = select(take, odd_lanes(a0, a1), top);
        take = even_lanes(c0, c1) > top;
        best = select(take, lane + (row + g.w + 2 * ox), best);
        top = select(take, even_lanes(c0, c1), top);
        take = odd_lanes(c0, c1) > top;
        best = select(take, lane + (row + g.w + 2 * ox + 1), best);
        top = select(take, odd_lanes(c0, c1), top);
        // Lanes past the row go to the next one, which is written later; at the end of y,
        // only the row's own.
        float* to = out + oy * g.ow + ox;
        if (to + kLanes <= y_end) {
          store(to, top);
          std::memcpy(arg + oy * g.ow + ox, &best, sizeof best);
        } else {
          for (int l = 0; l < std::min(kLanes, g.ow - ox); ++l) {
            to[l] = top[l];
            arg[oy * g.ow + ox + l] = best[l];
          }
        }
      }
      for (; ox < g.ow; ++ox) {  // the map's last rows: one output at a time
        const float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
        float top = a;
        int best = 0;
        if (b > top) top = b, best = 1;
        if (c > top) top = c, best = g.w;
        if (d > top) top = d, best = g.w + 1;
        out[oy * g.ow + ox] = top;
        arg[oy * g.ow + ox] = row + 2 * ox + best;
      }
    }
  }
}

void sum_and_adam(int64_t lo, int64_t hi, float* const* grads, int parts, float* p, float* m,
                  float* v, const StepParams* sp) {
  float* sum = grads[0];
  for (int t = 1; t < parts; ++t) {
    const float* part = grads[t];
    for (int64_t i = lo; i < hi; ++i) sum[i] += part[i];
  }
  // cpu::adam's loop; this file is compiled without errno for sqrt, so it runs in vectors.
  const float lr_t = sp->lr_t, beta1 = sp->beta1, beta2 = sp->beta2, eps = sp->eps;
  for (int64_t i = lo; i < hi; ++i) {
    m[i] = beta1 * m[i] + (1.0f - beta1) * sum[i];
    v[i] = beta2 * v[i] + (1.0f - beta2) * sum[i] * sum[i];
    p[i] -= lr_t * m[i] / (std::sqrt(v[i]) + eps);
  }
}

}  // namespace splitconv::cpu
