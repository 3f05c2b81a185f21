// The one policy for choosing cuDNN convolution algorithms, shared by training (conv_cudnn.cpp)
// and the benchmarks (bench/): which results of cudnnFind* / cudnnGet*_v7 may be used.
#pragma once
#include <cudnn.h>

#include <cstddef>
#include <vector>

namespace splitconv::gpu {

// Algorithms needing more scratch than this are passed over (the fast ones need far less).
inline constexpr size_t kMaxWorkspace = size_t(256) << 20;

// Whether an algorithm's math fits the descriptor's. float32 (the descriptor stays at
// CUDNN_FMA_MATH): anything but tensor-core math. TF32 allowed: what the descriptor was set to.
inline bool math_fits(cudnnMathType_t result, cudnnMathType_t descriptor) {
  if (descriptor == CUDNN_FMA_MATH)
    return result != CUDNN_TENSOR_OP_MATH && result != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
  return result == descriptor;
}

// FFT and Winograd compute in a transformed domain and lose digits: measured on an H200, a
// 5×5 backward-data by WINOGRAD_NONFUSED was off by 2.5e-3 of the largest value, where direct
// and GEMM algorithms stay near 1e-6. In float32 mode they are left out; --tf32 allows them.
inline bool transformed(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
inline bool transformed(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
         a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
inline bool transformed(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

// The one policy for picking a cuDNN algorithm, used by training and by every benchmark: the
// result ran, fits the workspace limit, keeps to float32 (no tensor-core math, no transformed
// domain) unless TF32 is allowed (then any math goes; the caller adopts it), and, when asked,
// is deterministic (cuDNN marks the ones that may give other bits on another run, e.g.
// backward-filter algorithms that sum with atomics).
template <class Perf>
bool usable(const Perf& p, cudnnMathType_t math, size_t limit, bool deterministic) {
  if (p.status != CUDNN_STATUS_SUCCESS || p.memory > limit) return false;
  if (math == CUDNN_FMA_MATH && (!math_fits(p.mathType, math) || transformed(p.algo))) return false;
  return !deterministic || p.determinism == CUDNN_DETERMINISTIC;
}

// The first usable result (cuDNN sorts them fastest first).
template <class Perf>
const Perf* first_usable(const std::vector<Perf>& perf, int got, cudnnMathType_t math,
                         size_t limit, bool deterministic) {
  for (int i = 0; i < got; ++i)
    if (usable(perf[size_t(i)], math, limit, deterministic)) return &perf[size_t(i)];
  return nullptr;
}

}  // namespace splitconv::gpu
