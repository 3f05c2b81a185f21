// Error checks for every CUDA, cuDNN and cuBLAS call, and device memory that frees itself.
// A failure throws splitconv::Error naming the call, the library's own message, file and line
// (DESIGN.md). Internal to the CUDA backend: public headers never see CUDA types.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

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

// cudaMalloc that says, on failure, how much was asked for, for what, and how much is free.
void* device_alloc(size_t bytes, const char* what);
void device_free(void* p) noexcept;
void* pinned_alloc(size_t bytes, const char* what);
void pinned_free(void* p) noexcept;

// Device memory for `count` values of T; frees itself, never throws when it does.
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(size_t count, const char* what)
      : ptr_(static_cast<T*>(count ? device_alloc(count * sizeof(T), what) : nullptr)),
        count_(count) {}
  ~DeviceBuffer() { device_free(ptr_); }
  DeviceBuffer(DeviceBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      device_free(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// Page-locked host memory, for copies that run asynchronously with the host.
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  PinnedBuffer(size_t count, const char* what)
      : ptr_(static_cast<T*>(count ? pinned_alloc(count * sizeof(T), what) : nullptr)),
        count_(count) {}
  ~PinnedBuffer() { pinned_free(ptr_); }
  PinnedBuffer(PinnedBuffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
    if (this != &o) {
      pinned_free(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  T* get() const { return ptr_; }
  T& operator[](size_t i) const { return ptr_[i]; }
  size_t size() const { return count_; }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

// Grid size for a 1-D launch over `count` items, capped so grid-stride loops cover the rest.
inline unsigned grid_for(int64_t count, int block, int64_t cap = 65535) {
  int64_t g = (count + block - 1) / block;
  if (g < 1) g = 1;
  return unsigned(g < cap ? g : cap);
}

}  // namespace splitconv::gpu
