// The project's own kernels for the split convolutions: n×1 (kh = n, kw = 1) and 1×n (kh = 1,
// kw = n), stride 1, any padding given by ConvGeom (pad_top/pad_left, the rest implied by
// oh/ow), NCHW float32, weights OIHW. Each is an implicit GEMM over k = (channel, tap):
//   forward          y[m, p]  = b[m] + Σ_k w[m, k]·x_col[k, p]      p = (image, oy, ox)
//   backward-data    dx[c, q] = Σ_(m,t) w[m, c, t]·dy_col[(m,t), q]  q = (image, iy, ix)
//   backward-filter  dw[m, k] = Σ_p dy[m, p]·x_col[k, p],  db[m] = Σ_p dy[m, p]
// Nothing here synchronises or allocates, so every call may be captured into a CUDA graph.
// Launches are checked (CHECK_LAUNCH). Numerics: plain fp32 FMAs, no TF32.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "splitconv/tensor.h"

namespace splitconv::gpu {

// Block tile of the forward and backward-data kernels. Auto: the 64×64 tile, or the 32×32 one
// when the 64×64 grid would have fewer than 128 blocks (small maps, small batches). The
// choice depends on the shape only, never on the device.
enum class SplitTile { Auto, Big, Small };

// kh == 1 or kw == 1 (1×1 included), stride 1, non-empty. Padding may be uneven.
bool split_conv_supports(const ConvGeom& g);

// y = act(conv(x, w) + b), act = ReLU when relu. b may be null (no bias).
//   x: n×c×h×w, w: m×c×kh×kw, b: m, y: n×m×oh×ow (overwritten)
void split_conv_forward(const ConvGeom& g, const float* x, const float* w, const float* b,
                        bool relu, float* y, cudaStream_t s, SplitTile tile = SplitTile::Auto);

// dx = conv_transpose(dy, w), overwritten. dy must already carry the ReLU mask
// (dy *= (y > 0), as relu_backward does): the filter gradient needs the masked dy too, so the
// caller masks it once, in place, before both backward calls.
//   dy: n×m×oh×ow, w: m×c×kh×kw, dx: n×c×h×w
void split_conv_backward_data(const ConvGeom& g, const float* dy, const float* w, float* dx,
                              cudaStream_t s, SplitTile tile = SplitTile::Auto);

// dw = Σ_n dy ⋆ x and db = Σ dy, both overwritten (dy already masked, as above). Deterministic:
// blocks write partial sums over disjoint pixel ranges to `workspace`, then one pass adds them
// in a fixed order. db may be null (no bias). workspace: split_conv_filter_workspace(g) bytes.
//   x: n×c×h×w, dy: n×m×oh×ow, dw: m×c×kh×kw, db: m
void split_conv_backward_filter(const ConvGeom& g, const float* x, const float* dy, float* dw,
                                float* db, float* workspace, cudaStream_t s);
// Bytes of workspace split_conv_backward_filter needs for g (at g.n images; a smaller batch
// needs no more).
size_t split_conv_filter_workspace(const ConvGeom& g);

// The fused pair for inference: z = act1(conv_v(x) + b1), y = act2(conv_h(z) + b2) in one
// launch, z kept in shared memory for a band of rows (all its channels, full width). When
// z_out is not null, z is also written there (what a backward pass of the pair would need;
// `bench conv` times the pair with and without it, training does not call the pair).
// gv: the n×1 layer, gh: the 1×n layer on gv's output (gh.c == gv.m, same n).
//   x: n×c×h×w, w1: m1×c×n×1, b1: m1, z_out: n×m1×oh1×ow1,
//   w2: m2×m1×1×n, b2: m2, y: n×m2×oh2×ow2
bool split_pair_supports(const ConvGeom& gv, const ConvGeom& gh);
void split_pair_forward(const ConvGeom& gv, const ConvGeom& gh, const float* x, const float* w1,
                        const float* b1, bool relu1, const float* w2, const float* b2, bool relu2,
                        float* z_out, float* y, cudaStream_t s);

}  // namespace splitconv::gpu
