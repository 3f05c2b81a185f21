// Error messages for failed CUDA, cuDNN and cuBLAS calls, and checked allocation.
#include "resources.h"

#include <cstdio>
#include <string>

#include "splitconv/error.h"

namespace splitconv::gpu {
namespace {

std::string where(const char* call, const char* file, int line) {
  return std::string(call) + " at " + file + ":" + std::to_string(line);
}

std::string mib(size_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB", double(bytes) / (1024.0 * 1024.0));
  return buf;
}

}  // namespace

void fail_cuda(cudaError_t err, const char* call, const char* file, int line) {
  // Clears a non-sticky error so the next check does not report it a second time.
  (void)cudaGetLastError();
  throw Error("CUDA error " + std::string(cudaGetErrorName(err)) + " (" + cudaGetErrorString(err) +
              ") in " + where(call, file, line));
}

void fail_cudnn(cudnnStatus_t st, const char* call, const char* file, int line) {
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  std::string msg =
      "cuDNN error " + std::string(cudnnGetErrorString(st)) + " in " + where(call, file, line);
  if (detail[0]) msg += ": " + std::string(detail);
  throw Error(msg);
}

void fail_cublas(cublasStatus_t st, const char* call, const char* file, int line) {
  throw Error("cuBLAS error " + std::string(cublasGetStatusName(st)) + " (" +
              cublasGetStatusString(st) + ") in " + where(call, file, line));
}

void* device_alloc(size_t bytes, const char* what) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaSuccess) return p;
  (void)cudaGetLastError();
  std::string msg = "cudaMalloc of " + std::to_string(bytes) + " bytes (" + mib(bytes) + ") for " +
                    what + " failed: " + cudaGetErrorString(err);
  if (err == cudaErrorMemoryAllocation) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      msg += "; the device has " + mib(free_b) + " free of " + mib(total_b);
    (void)cudaGetLastError();
  }
  throw Error(msg);
}

void device_free(void* p) noexcept {
  if (p) (void)cudaFree(p);  // a destructor must not throw; errors here are already sticky
}

void* pinned_alloc(size_t bytes, const char* what) {
  void* p = nullptr;
  const cudaError_t err = cudaMallocHost(&p, bytes);
  if (err == cudaSuccess) return p;
  (void)cudaGetLastError();
  throw Error("cudaMallocHost of " + std::to_string(bytes) + " bytes for " + what +
              " failed: " + cudaGetErrorString(err));
}

void pinned_free(void* p) noexcept {
  if (p) (void)cudaFreeHost(p);
}

}  // namespace splitconv::gpu
