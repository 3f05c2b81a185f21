// The fused engine's ops: one image's forward and backward, written once as code that a group
// of threads runs cooperatively, and compiled both for the GPU (cuda/fused_engine.cu, a block
// per image) and for the CPU (emulate.cpp, which runs every thread of a phase in turn).
//
// A phase is one call of an op function by every thread t of T (t = 0..T-1); the threads of
// a phase write disjoint places and read only what earlier phases wrote, so the GPU puts a
// barrier between phases and the CPU may run the threads one after another in any order. Every
// output element is one thread's sum in a fixed order: a step is deterministic, and the same
// on the GPU and in the emulator up to the rounding of fused multiply-adds.
//
// Memory of one image is an arena (program.h lays it out): the activations and gradients of
// the plan's buffers, and int32 arg-max slots. Parameters are read from the flat buffer; an
// image's parameter gradients are written into its own flat partial buffer (the fixed-order
// sum over images and Adam run after every image is done: reduce_adam).
#pragma once
#include <cmath>
#include <cstdint>

#include "splitconv/tensor.h"

#if defined(__CUDACC__)
#define SC_HD __host__ __device__ __forceinline__
#define SC_UNROLL _Pragma("unroll")
#else
#define SC_HD inline
#define SC_UNROLL
#endif

namespace splitconv::fused {

enum class OpCode : int32_t {
  Gather,     // input ← pixels / 255
  ConvFwd,    // y ← conv(x) + bias, ReLU when relu
  ConvPoolFwd,  // y ← max-pool(conv(x) + bias, ReLU when relu), the arg-max in the int arena;
                // the conv's output is never stored
  PoolFwd,    // y ← max over windows, the arg-max in the int arena
  DenseFwd,   // y ← W·x + bias, ReLU when relu
  Loss,       // softmax cross-entropy of the logits; dy of the logits when training
  ConvBwd,    // dW, db into the image's partial; dx when dx >= 0
  PoolBwd,    // dx from dy through the arg-max
  DenseBwd,   // dW, db into the image's partial; dx when dx >= 0
};

// One phase's op. Offsets are in floats into the image's arena (ints for argmax) or into the
// flat parameter buffer; -1 when absent. Dense layers use c = in features, m = out features.
struct FusedOp {
  OpCode code = OpCode::Gather;
  int32_t layer = -1;        // model layer (for messages and timings)
  int32_t relu = 0;          // forward: apply ReLU to y
  int32_t mask_dx = 0;       // backward: dx *= (x > 0), x being the output of a ReLU layer
  int32_t c = 0, h = 0, w = 0;        // input channels and map
  int32_t m = 0, oh = 0, ow = 0;      // output channels and map
  int32_t kh = 1, kw = 1, stride = 1, pad_top = 0, pad_left = 0;
  int32_t pkh = 1, pkw = 1, pstride = 1, pool_oh = 0, pool_ow = 0;  // ConvPoolFwd: the pool after the conv
  int64_t x = -1, y = -1, dx = -1, dy = -1;
  int64_t argmax = -1;
  int64_t weight = -1, bias = -1;
};

// What a phase touches besides the arena.
struct ImageIo {
  const uint8_t* pixels = nullptr;  // this image's pixels (Gather)
  int label = 0;                    // Loss
  float grad_scale = 0;             // Loss: > 0 writes the logits' gradient, scaled by it
  double* loss = nullptr;           // Loss: −log softmax[label] of this image
  int32_t* correct = nullptr;       // Loss: 1 when the first maximum is the label
  float* probs = nullptr;           // Loss: softmax probabilities (predict), when not null
  float* partial = nullptr;         // backward: this image's flat parameter gradients
};

// An image's arena as the phases see it: f and i are this thread's copy, read directly; every
// write goes through put / put_int, which store into every copy there is. One copy (a block
// per image, the CPU): LocalArena. Several (a cluster whose blocks each keep the image's
// activations in their own shared memory, so that every read is local): the GPU kernel's
// cluster arena and the emulator's CopiesArena.
struct LocalArena {
  float* f = nullptr;
  int32_t* i = nullptr;
  SC_HD void put(int64_t at, float v) const { f[at] = v; }
  SC_HD void put_int(int64_t at, int32_t v) const { i[at] = v; }
};

inline constexpr int kMaxCopies = 8;

struct CopiesArena {
  float* f = nullptr;  // the copy this thread reads
  int32_t* i = nullptr;
  float* const* fc = nullptr;  // every copy, written alike
  int32_t* const* ic = nullptr;
  int copies = 1;
  SC_HD void put(int64_t at, float v) const {
    for (int r = 0; r < copies; ++r) fc[r][at] = v;
  }
  SC_HD void put_int(int64_t at, int32_t v) const {
    for (int r = 0; r < copies; ++r) ic[r][at] = v;
  }
};

// ---- the ops: thread t of T ----

template <class A>
SC_HD void gather_phase(const FusedOp& op, int t, int T, const A& ar, const ImageIo& io) {
  const int64_t size = int64_t(op.c) * op.h * op.w;
  for (int64_t i = t; i < size; i += T) ar.put(op.y + i, float(io.pixels[i]) / 255.0f);
}

// Register tiles: a thread computes kTile output (or input-gradient) channels of one position,
// so each input value it loads serves kTile sums. Every element is still one thread's sum over
// the same terms in the same order, whatever the tile: tiling changes speed, not bits.
inline constexpr int kTile = 4;
// A filter gradient keeps all its taps in registers up to this many (3×3, 3×1, 1×n up to 16).
inline constexpr int kMaxTapTile = 16;

// Σ_c Σ_i Σ_j w[m][c][i][j] · x[c][oy·s + i − pt][ox·s + j − pl] for kTile output channels
// m0.. (nm of them) at (oy, ox), into sum (zeroed by the caller). The one definition of a conv
// output's sum, for the conv alone and the conv fused with its pool alike.
SC_HD void conv_tile_at(const FusedOp& op, const float* x, const float* wt, int m0, int nm,
                               int oy, int ox, float* sum) {
  const int taps = op.kh * op.kw, cstride = op.c * taps;
  for (int ci = 0; ci < op.c; ++ci) {
    const float* xc = x + ci * op.h * op.w;
    const float* wc = wt + (m0 * op.c + ci) * taps;
    for (int i = 0; i < op.kh; ++i) {
      const int iy = oy * op.stride + i - op.pad_top;
      if (iy < 0 || iy >= op.h) continue;
      for (int j = 0; j < op.kw; ++j) {
        const int ix = ox * op.stride + j - op.pad_left;
        if (ix < 0 || ix >= op.w) continue;
        const float xv = xc[iy * op.w + ix];
        const int tap = i * op.kw + j;
        SC_UNROLL
        for (int r = 0; r < kTile; ++r)
          if (r < nm) sum[r] += wc[r * cstride + tap] * xv;
      }
    }
  }
}

// y[m][oy][ox] = bias[m] + conv sum, ReLU when relu. Item: kTile output channels at one output
// position (consecutive items: consecutive positions, so a warp's x loads are contiguous and
// its weight loads the same).
template <class A>
SC_HD void conv_fwd_phase(const FusedOp& op, int t, int T, const A& ar, const float* p) {
  const float* x = ar.f + op.x;
  const int plane = op.oh * op.ow, groups = (op.m + kTile - 1) / kTile;
  for (int item = t; item < groups * plane; item += T) {
    const int m0 = item / plane * kTile, at = item % plane;
    const int nm = op.m - m0 < kTile ? op.m - m0 : kTile;
    float sum[kTile] = {};
    conv_tile_at(op, x, p + op.weight, m0, nm, at / op.ow, at % op.ow, sum);
    SC_UNROLL
    for (int r = 0; r < kTile; ++r) {
      if (r >= nm) break;
      const float v = sum[r] + p[op.bias + m0 + r];
      ar.put(op.y + (m0 + r) * plane + at, op.relu && v < 0.0f ? 0.0f : v);
    }
  }
}

// The conv and the max-pool after it in one pass: each pooled output computes the conv outputs
// of its window (the same sums as conv_fwd_phase) and keeps the first maximum, as the CPU pool
// does; the arg-max is the position in the conv's output plane. Overlapping windows compute a
// shared conv output more than once, identically.
template <class A>
SC_HD void conv_pool_fwd_phase(const FusedOp& op, int t, int T, const A& ar, const float* p) {
  const float* x = ar.f + op.x;
  const int pplane = op.pool_oh * op.pool_ow, groups = (op.m + kTile - 1) / kTile;
  for (int item = t; item < groups * pplane; item += T) {
    const int m0 = item / pplane * kTile, at = item % pplane;
    const int py = at / op.pool_ow, px = at % op.pool_ow;
    const int nm = op.m - m0 < kTile ? op.m - m0 : kTile;
    float top[kTile] = {};
    int best[kTile] = {};
    for (int i = 0; i < op.pkh; ++i)
      for (int j = 0; j < op.pkw; ++j) {
        const int oy = py * op.pstride + i, ox = px * op.pstride + j;
        float sum[kTile] = {};
        conv_tile_at(op, x, p + op.weight, m0, nm, oy, ox, sum);
        SC_UNROLL
        for (int r = 0; r < kTile; ++r) {
          if (r >= nm) break;
          float v = sum[r] + p[op.bias + m0 + r];
          v = op.relu && v < 0.0f ? 0.0f : v;
          if ((i == 0 && j == 0) || v > top[r]) {
            top[r] = v;
            best[r] = oy * op.ow + ox;
          }
        }
      }
    SC_UNROLL
    for (int r = 0; r < kTile; ++r) {
      if (r >= nm) break;
      ar.put(op.y + (m0 + r) * pplane + at, top[r]);
      ar.put_int(op.argmax + (m0 + r) * pplane + at, best[r]);
    }
  }
}

// Valid windows (the model allows no pool padding); ties keep the first maximum, as the CPU op.
template <class A>
SC_HD void pool_fwd_phase(const FusedOp& op, int t, int T, const A& ar) {
  const float* x = ar.f + op.x;
  const int64_t plane = int64_t(op.oh) * op.ow, total = plane * op.c;
  for (int64_t o = t; o < total; o += T) {
    const int64_t ch = o / plane;
    const int oy = int((o % plane) / op.ow), ox = int(o % op.ow);
    const float* in = x + ch * op.h * op.w;
    const int corner = oy * op.stride * op.w + ox * op.stride;
    int best = corner;
    float top = in[corner];
    for (int i = 0; i < op.kh; ++i)
      for (int j = 0; j < op.kw; ++j) {
        const int at = corner + i * op.w + j;
        if (in[at] > top) {
          top = in[at];
          best = at;
        }
      }
    ar.put(op.y + o, op.relu && top < 0.0f ? 0.0f : top);
    ar.put_int(op.argmax + o, best);
  }
}

// y[o] = bias[o] + Σ_i w[o][i] · x[i]
template <class A>
SC_HD void dense_fwd_phase(const FusedOp& op, int t, int T, const A& ar, const float* p) {
  const float* x = ar.f + op.x;
  for (int o = t; o < op.m; o += T) {
    const float* row = p + op.weight + int64_t(o) * op.c;
    float sum = 0.0f;
    for (int i = 0; i < op.c; ++i) sum += row[i] * x[i];
    const float v = sum + p[op.bias + o];
    ar.put(op.y + o, op.relu && v < 0.0f ? 0.0f : v);
  }
}

// One thread: the rows are short (the classes), and double sums keep the loss within rounding
// of the CPU op. op.m is the number of classes; x the logits, dy their gradient.
template <class A>
SC_HD void loss_phase(const FusedOp& op, int t, const A& ar, const ImageIo& io) {
  if (t != 0) return;
  const float* row = ar.f + op.x;
  const int k = op.m;
  int top = 0;
  for (int j = 1; j < k; ++j) top = row[j] > row[top] ? j : top;
  double sum = 0;
  for (int j = 0; j < k; ++j) sum += exp(double(row[j]) - double(row[top]));
  const double log_sum = log(sum);
  const bool known = io.label >= 0 && io.label < k;  // the host checks labels on upload
  if (io.loss) *io.loss = known ? log_sum - (double(row[io.label]) - double(row[top])) : NAN;
  if (io.correct) *io.correct = top == io.label ? 1 : 0;
  for (int j = 0; j < k; ++j) {
    const double q = exp(double(row[j]) - double(row[top]) - log_sum);
    if (io.probs) io.probs[j] = float(q);
    if (io.grad_scale > 0 && op.dy >= 0)
      ar.put(op.dy + j, float((q - (j == io.label ? 1.0 : 0.0)) * double(io.grad_scale)));
  }
}

// dx of kTile input channels at (iy, ix), unmasked: dx[c][iy][ix] = Σ_m Σ_i Σ_j w[m][c][i][j] ·
// dy[m][oy][ox] over the (i, j) with iy + pt − i = oy·s and ix + pl − j = ox·s in range.
SC_HD void conv_dx_tile(const FusedOp& op, const float* dy, const float* wt, int c0, int nc,
                               int iy, int ix, float* sum) {
  const int taps = op.kh * op.kw;
  for (int mo = 0; mo < op.m; ++mo) {
    const float* dym = dy + mo * op.oh * op.ow;
    const float* wm = wt + (mo * op.c + c0) * taps;
    for (int i = 0; i < op.kh; ++i) {
      const int ry = iy + op.pad_top - i;
      if (ry < 0 || ry % op.stride != 0) continue;
      const int oy = ry / op.stride;
      if (oy >= op.oh) continue;
      for (int j = 0; j < op.kw; ++j) {
        const int rx = ix + op.pad_left - j;
        if (rx < 0 || rx % op.stride != 0) continue;
        const int ox = rx / op.stride;
        if (ox >= op.ow) continue;
        const float g = dym[oy * op.ow + ox];
        const int tap = i * op.kw + j;
SC_UNROLL
        for (int r = 0; r < kTile; ++r)
          if (r < nc) sum[r] += wm[r * taps + tap] * g;
      }
    }
  }
}

// The filter gradient of output channel mo and input channel ci, taps [t0, t0 + nt) (nt ≤
// kMaxTapTile), each a sum over the output positions whose tap lands inside the input.
SC_HD void conv_dw_tile(const FusedOp& op, const float* x, const float* dy, int mo, int ci,
                               int t0, int nt, float* sum) {
  const float* dym = dy + mo * op.oh * op.ow;
  const float* xc = x + ci * op.h * op.w;
  for (int oy = 0; oy < op.oh; ++oy) {
    for (int ox = 0; ox < op.ow; ++ox) {
      const float g = dym[oy * op.ow + ox];
SC_UNROLL
      for (int q = 0; q < kMaxTapTile; ++q) {
        if (q >= nt) break;
        const int tap = t0 + q, i = tap / op.kw, j = tap % op.kw;
        const int iy = oy * op.stride + i - op.pad_top, ix = ox * op.stride + j - op.pad_left;
        if (iy >= 0 && iy < op.h && ix >= 0 && ix < op.w) sum[q] += g * xc[iy * op.w + ix];
      }
    }
  }
}

// One phase: the filter gradient (items of one (m, c) pair and up to kMaxTapTile taps), the
// bias gradient (m items) and, when dx is wanted, the input gradient (items of kTile input
// channels at one position, consecutive items at consecutive positions).
template <class A>
SC_HD void conv_bwd_phase(const FusedOp& op, int t, int T, const A& ar, const float* p,
                          const ImageIo& io) {
  const float* x = ar.f + op.x;
  const float* dy = ar.f + op.dy;
  const int taps = op.kh * op.kw;
  const int tap_groups = (taps + kMaxTapTile - 1) / kMaxTapTile;
  const int n_dw = op.m * op.c * tap_groups, n_db = op.m;
  const int iplane = op.h * op.w, oplane = op.oh * op.ow;
  const int c_groups = (op.c + kTile - 1) / kTile;
  const int n_dx = op.dx >= 0 ? c_groups * iplane : 0;
  for (int item = t; item < n_dw + n_db + n_dx; item += T) {
    if (item < n_dw) {
      const int pair = item / tap_groups, t0 = item % tap_groups * kMaxTapTile;
      const int mo = pair / op.c, ci = pair % op.c;
      const int nt = taps - t0 < kMaxTapTile ? taps - t0 : kMaxTapTile;
      float sum[kMaxTapTile] = {};
      conv_dw_tile(op, x, dy, mo, ci, t0, nt, sum);
      float* out = io.partial + op.weight + (mo * op.c + ci) * taps + t0;
SC_UNROLL
      for (int q = 0; q < kMaxTapTile; ++q)
        if (q < nt) out[q] = sum[q];
    } else if (item < n_dw + n_db) {
      const int mo = item - n_dw;
      float sum = 0.0f;
      for (int q = 0; q < oplane; ++q) sum += dy[mo * oplane + q];
      io.partial[op.bias + mo] = sum;
    } else {
      const int e = item - n_dw - n_db;
      const int c0 = e / iplane * kTile, at = e % iplane;
      const int nc = op.c - c0 < kTile ? op.c - c0 : kTile;
      float sum[kTile] = {};
      conv_dx_tile(op, dy, p + op.weight, c0, nc, at / op.w, at % op.w, sum);
SC_UNROLL
      for (int r = 0; r < kTile; ++r) {
        if (r >= nc) break;
        const int idx = (c0 + r) * iplane + at;
        ar.put(op.dx + idx, op.mask_dx && !(x[idx] > 0.0f) ? 0.0f : sum[r]);
      }
    }
  }
}

// dx[c][iy][ix] = Σ dy over the windows whose arg-max is (iy, ix), in window order. Masked by
// the ReLU before the pool when mask_dx: the input there is positive exactly when the pooled
// output of a window choosing it is (it is that output), so the input itself is not needed —
// the conv before a pool need not store its output.
template <class A>
SC_HD void pool_bwd_phase(const FusedOp& op, int t, int T, const A& ar) {
  const float* y = ar.f + op.y;
  const float* dy = ar.f + op.dy;
  const int32_t* arg = ar.i + op.argmax;
  const int iplane = op.h * op.w, oplane = op.oh * op.ow;
  const int total = iplane * op.c;
  for (int e = t; e < total; e += T) {
    const int ch = e / iplane;
    const int at = e % iplane;
    const int iy = at / op.w, ix = at % op.w;
    // Windows (oy, ox) with oy·s ≤ iy < oy·s + kh, likewise for x.
    const int oy_lo = iy >= op.kh ? (iy - op.kh) / op.stride + 1 : 0;
    const int ox_lo = ix >= op.kw ? (ix - op.kw) / op.stride + 1 : 0;
    const int oy_hi = iy / op.stride < op.oh - 1 ? iy / op.stride : op.oh - 1;
    const int ox_hi = ix / op.stride < op.ow - 1 ? ix / op.stride : op.ow - 1;
    float v = 0.0f;
    bool live = false;
    for (int oy = oy_lo; oy <= oy_hi; ++oy)
      for (int ox = ox_lo; ox <= ox_hi; ++ox) {
        const int o = ch * oplane + oy * op.ow + ox;
        if (arg[o] == at) {
          v += dy[o];
          live = y[o] > 0.0f;
        }
      }
    ar.put(op.dx + e, op.mask_dx && !live ? 0.0f : v);
  }
}

// dW[o][i] = dy[o]·x[i], db[o] = dy[o], dx[i] = Σ_o w[o][i]·dy[o] (masked).
template <class A>
SC_HD void dense_bwd_phase(const FusedOp& op, int t, int T, const A& ar, const float* p,
                           const ImageIo& io) {
  const float* x = ar.f + op.x;
  const float* dy = ar.f + op.dy;
  const int64_t n_dw = int64_t(op.m) * op.c, n_db = op.m, n_dx = op.dx >= 0 ? op.c : 0;
  for (int64_t item = t; item < n_dw + n_db + n_dx; item += T) {
    if (item < n_dw) {
      io.partial[op.weight + item] = dy[item / op.c] * x[item % op.c];
    } else if (item < n_dw + n_db) {
      io.partial[op.bias + (item - n_dw)] = dy[item - n_dw];
    } else {
      const int i = int(item - n_dw - n_db);
      float sum = 0.0f;
      for (int o = 0; o < op.m; ++o) sum += p[op.weight + int64_t(o) * op.c + i] * dy[o];
      if (op.mask_dx && !(x[i] > 0.0f)) sum = 0.0f;
      ar.put(op.dx + i, sum);
    }
  }
}

// One phase of any op.
template <class A>
SC_HD void run_phase(const FusedOp& op, int t, int T, const A& ar, const float* p,
                     const ImageIo& io) {
  switch (op.code) {
    case OpCode::Gather: gather_phase(op, t, T, ar, io); break;
    case OpCode::ConvFwd: conv_fwd_phase(op, t, T, ar, p); break;
    case OpCode::ConvPoolFwd: conv_pool_fwd_phase(op, t, T, ar, p); break;
    case OpCode::PoolFwd: pool_fwd_phase(op, t, T, ar); break;
    case OpCode::DenseFwd: dense_fwd_phase(op, t, T, ar, p); break;
    case OpCode::Loss: loss_phase(op, t, ar, io); break;
    case OpCode::ConvBwd: conv_bwd_phase(op, t, T, ar, p, io); break;
    case OpCode::PoolBwd: pool_bwd_phase(op, t, T, ar); break;
    case OpCode::DenseBwd: dense_bwd_phase(op, t, T, ar, p, io); break;
  }
}

// After every image of a step: parameter k's gradient summed over the images in image order,
// then Keras's Adam (the same arithmetic as the CPU and CUDA adam ops). partial holds `count`
// flat buffers `stride` floats apart; gradient (may be null) receives the sum.
SC_HD void reduce_adam(int64_t k, int count, int64_t stride, const float* partial,
                              float* params, float* m, float* v, const StepParams& sp,
                              float* gradient) {
  float g = 0.0f;
  for (int b = 0; b < count; ++b) g += partial[int64_t(b) * stride + k];
  if (gradient) gradient[k] = g;
  m[k] = sp.beta1 * m[k] + (1.0f - sp.beta1) * g;
  v[k] = sp.beta2 * v[k] + (1.0f - sp.beta2) * g * g;
  params[k] -= sp.lr_t * m[k] / (sqrtf(v[k]) + sp.eps);
}

}  // namespace splitconv::fused
