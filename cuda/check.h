// Error checks for every CUDA, cuDNN and cuBLAS call: a failure throws splitconv::Error naming
// the call, the library's own message, file and line (docs/design.md, Numeric conventions:
// errors). The resources these calls create free themselves: resources.h. Internal to the
// CUDA backend: public headers never see CUDA types.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace splitconv::gpu {

[[noreturn]] void fail_cuda(cudaError_t err, const char* call, const char* file, int line);
[[noreturn]] void fail_cudnn(cudnnStatus_t st, const char* call, const char* file, int line);
[[noreturn]] void fail_cublas(cublasStatus_t st, const char* call, const char* file, int line);

}  // namespace splitconv::gpu

#define CUDA_CHECK(call)                                                                         \
  do {                                                                                           \
    const cudaError_t sc_err_ = (call);                                                          \
    if (sc_err_ != cudaSuccess) ::splitconv::gpu::fail_cuda(sc_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define CUDNN_CHECK(call)                                              \
  do {                                                                 \
    const cudnnStatus_t sc_st_ = (call);                               \
    if (sc_st_ != CUDNN_STATUS_SUCCESS)                                \
      ::splitconv::gpu::fail_cudnn(sc_st_, #call, __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(call)                                              \
  do {                                                                  \
    const cublasStatus_t sc_st_ = (call);                               \
    if (sc_st_ != CUBLAS_STATUS_SUCCESS)                                \
      ::splitconv::gpu::fail_cublas(sc_st_, #call, __FILE__, __LINE__); \
  } while (0)

// After every kernel launch: a bad configuration shows up here, not three calls later.
#define CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

namespace splitconv::gpu {

// ⌈a/b⌉ for positive b: tile and grid counts, on the host and in kernels.
__host__ __device__ constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grid size for a 1-D launch over `count` items, capped so grid-stride loops cover the rest.
inline unsigned grid_for(int64_t count, int block, int64_t cap = 65535) {
  int64_t g = ceil_div(count, block);
  if (g < 1) g = 1;
  return unsigned(g < cap ? g : cap);
}

}  // namespace splitconv::gpu
