// Max pooling (valid windows, no padding) with the argmax kept for the backward pass.
#include "check.h"
#include "ops.h"

namespace splitconv::gpu {
namespace {

constexpr int kBlock = 256;

// One thread per output. Scans the window row by row; a strictly greater value replaces the
// best, so ties keep the first maximum (as cpu::maxpool_forward).
// (total: g.y_size(), computed on the host: PoolGeom's methods are host code)
__global__ void maxpool_forward_kernel(PoolGeom g, int64_t total, const float* __restrict__ x,
                                       float* __restrict__ y, int32_t* __restrict__ argmax) {
  const int64_t plane_in = int64_t(g.h) * g.w;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total;
       o += int64_t(gridDim.x) * blockDim.x) {
    const int ox = int(o % g.ow);
    const int oy = int((o / g.ow) % g.oh);
    const int64_t pl = o / (int64_t(g.oh) * g.ow);  // image·c + channel
    const float* in = x + pl * plane_in;
    int best = oy * g.stride * g.w + ox * g.stride;
    float best_v = in[best];
    for (int i = 0; i < g.ph; ++i) {
      for (int j = 0; j < g.pw; ++j) {
        const int at = (oy * g.stride + i) * g.w + ox * g.stride + j;
        const float v = in[at];
        if (v > best_v) {
          best = at;
          best_v = v;
        }
      }
    }
    y[o] = best_v;
    argmax[o] = best;
  }
}

// One thread per input: sums dy over every output window that contains the input and chose
// it. A gather rather than a scatter, so overlapping windows (stride < pool) need no atomics
// and dx is written exactly once (no memset needed).
// (total: g.x_size())
__global__ void maxpool_backward_kernel(PoolGeom g, int64_t total, const float* __restrict__ dy,
                                        const int32_t* __restrict__ argmax,
                                        float* __restrict__ dx) {
  const int64_t plane_out = int64_t(g.oh) * g.ow;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int ix = int(i % g.w);
    const int iy = int((i / g.w) % g.h);
    const int64_t pl = i / (int64_t(g.h) * g.w);
    const int self = iy * g.w + ix;
    // Outputs whose window [o·s, o·s + p) contains the input: ⌈(i − p + 1)/s⌉ ≤ o ≤ ⌊i/s⌋.
    const int y_lo = iy - g.ph + 1 <= 0 ? 0 : (iy - g.ph + 1 + g.stride - 1) / g.stride;
    const int x_lo = ix - g.pw + 1 <= 0 ? 0 : (ix - g.pw + 1 + g.stride - 1) / g.stride;
    const int y_hi = min(iy / g.stride, g.oh - 1);
    const int x_hi = min(ix / g.stride, g.ow - 1);
    float sum = 0.0f;
    for (int oy = y_lo; oy <= y_hi; ++oy) {
      for (int ox = x_lo; ox <= x_hi; ++ox) {
        const int64_t o = pl * plane_out + int64_t(oy) * g.ow + ox;
        if (argmax[o] == self) sum += dy[o];
      }
    }
    dx[i] = sum;
  }
}

}  // namespace

void maxpool_forward(cudaStream_t s, const PoolGeom& g, const float* x, float* y, int32_t* argmax) {
  const int64_t total = g.y_size();
  if (total <= 0) return;
  maxpool_forward_kernel<<<grid_for(total, kBlock), kBlock, 0, s>>>(g, total, x, y, argmax);
  CHECK_LAUNCH();
}

void maxpool_backward(cudaStream_t s, const PoolGeom& g, const float* dy, const int32_t* argmax,
                      float* dx) {
  const int64_t total = g.x_size();
  if (total <= 0) return;
  maxpool_backward_kernel<<<grid_for(total, kBlock), kBlock, 0, s>>>(g, total, dy, argmax, dx);
  CHECK_LAUNCH();
}

}  // namespace splitconv::gpu
