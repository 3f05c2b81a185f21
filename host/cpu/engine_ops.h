// The CPU engine's fast ops: the same results as the reference ops of cpu_ops.h (which test
// them), computed for speed on one thread's slice of a batch. A convolution runs the slice's
// images through each GEMM together (im2col columns of several images side by side), so the
// GEMMs are wide even where a map is small; one with a single input channel, which makes a
// GEMM too thin, runs as a direct loop instead. ReLU is folded into the output pass and its
// backward into the gradient's first pass. Every result is a fixed sequence of operations for
// a given slice size, so a step stays bitwise reproducible (docs/design.md, CPU determinism).
#pragma once
#include <cstdint>

#include "splitconv/tensor.h"

namespace splitconv::cpu {

// Floats of scratch conv_forward_fast and conv_backward_fast need for a slice of up to g.n
// images. The workspace they are given must be 64-byte aligned (cpu/aligned.h).
int64_t conv_fast_workspace(const ConvGeom& g);

// y = conv(x, w) + b, then max(·, 0) when relu (as cpu::conv_forward and relu_forward).
void conv_forward_fast(const ConvGeom& g, const float* x, const float* w, const float* b, bool relu,
                       float* y, float* workspace);

// The whole backward of a conv (+ ReLU when y is not null): dy masked by y > 0, then
// dw = Σ dy ⋆ x and db = Σ dy (overwritten) and, when dx is not null, dx = conv_transpose(dy, w)
// (overwritten): cpu::relu_backward, conv_backward_filter and conv_backward_data in one. dy may
// be left masked or as it was.
void conv_backward_fast(const ConvGeom& g, const float* x, const float* y, float* dy,
                        const float* w, float* dw, float* db, float* dx, float* workspace);

// Floats of scratch dense_forward_fast and dense_backward_fast need for up to g.n rows
// (64-byte aligned).
int64_t dense_fast_workspace(const DenseGeom& g);

// cpu::dense_forward and cpu::dense_backward, bit for bit, without allocating.
void dense_forward_fast(const DenseGeom& g, const float* x, const float* w, const float* b,
                        bool relu, float* y, float* workspace);
void dense_backward_fast(const DenseGeom& g, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* db, float* workspace);

// cpu::maxpool_forward, bit for bit (the same comparisons in the same order), with the
// common 2×2 window of stride 2 unrolled.
void maxpool_forward_fast(const PoolGeom& g, const float* x, float* y, int32_t* argmax);

// The parameter update of a range [lo, hi) of the flat parameters: the gradient summed over
// `parts` per-thread buffers in their order into grads[0], then cpu::adam on the range. The
// same bits as sum-then-adam over the whole, whichever range a thread takes.
void sum_and_adam(int64_t lo, int64_t hi, float* const* grads, int parts, float* p, float* m,
                  float* v, const StepParams* sp);

}  // namespace splitconv::cpu
