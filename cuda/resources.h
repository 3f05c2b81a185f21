// Every CUDA, cuDNN and cuBLAS resource the project creates, each in a class that frees it:
// device and pinned memory, streams, events, library handles, cuDNN descriptors and CUDA
// graphs. Nothing is released by hand, so an exception on any path leaks nothing.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <utility>

#include "check.h"

namespace splitconv::gpu {

// cudaMalloc that says, on failure, how much was asked for, for what, and how much is free.
void* device_alloc(size_t bytes, const char* what);
void device_free(void* p) noexcept;
void* pinned_alloc(size_t bytes, const char* what);
void pinned_free(void* p) noexcept;

// Memory for `count` values of T, on the device (Host false) or page-locked on the host, for
// copies that run asynchronously with it (Host true); frees itself, never throws when it does.
template <class T, bool Host>
class Buffer {
 public:
  Buffer() = default;
  Buffer(size_t count, const char* what)
      : ptr_(static_cast<T*>(count ? allocate(count * sizeof(T), what) : nullptr)), count_(count) {}
  ~Buffer() { release(ptr_); }
  Buffer(Buffer&& o) noexcept
      : ptr_(std::exchange(o.ptr_, nullptr)), count_(std::exchange(o.count_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      count_ = std::exchange(o.count_, 0);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  T* get() const { return ptr_; }
  size_t size() const { return count_; }
  size_t bytes() const { return count_ * sizeof(T); }
  // Host memory only: device memory is never dereferenced on the host.
  T& operator[](size_t i) const
    requires Host
  {
    return ptr_[i];
  }

 private:
  static void* allocate(size_t bytes, const char* what) {
    return Host ? pinned_alloc(bytes, what) : device_alloc(bytes, what);
  }
  static void release(void* p) noexcept {
    if constexpr (Host) {
      pinned_free(p);
    } else {
      device_free(p);
    }
  }

  T* ptr_ = nullptr;
  size_t count_ = 0;
};

template <class T>
using DeviceBuffer = Buffer<T, false>;
template <class T>
using PinnedBuffer = Buffer<T, true>;

// A handle of type H released by Destroy; movable, not copyable. Converts to H, so it is
// passed to API calls as it is.
template <class H, auto Destroy>
class Owned {
 public:
  Owned() = default;
  explicit Owned(H h) : h_(h) {}
  ~Owned() { reset(); }
  Owned(Owned&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  Owned& operator=(Owned&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, nullptr);
    }
    return *this;
  }
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;

  H get() const { return h_; }
  operator H() const { return h_; }
  explicit operator bool() const { return h_ != nullptr; }
  void reset() noexcept {
    if (h_) (void)Destroy(h_);
    h_ = nullptr;
  }

 private:
  H h_ = nullptr;
};

using Stream = Owned<cudaStream_t, &cudaStreamDestroy>;
using Event = Owned<cudaEvent_t, &cudaEventDestroy>;
using CudnnHandle = Owned<cudnnHandle_t, &cudnnDestroy>;
using CublasHandle = Owned<cublasHandle_t, &cublasDestroy_v2>;
using TensorDesc = Owned<cudnnTensorDescriptor_t, &cudnnDestroyTensorDescriptor>;
using FilterDesc = Owned<cudnnFilterDescriptor_t, &cudnnDestroyFilterDescriptor>;
using ConvDesc = Owned<cudnnConvolutionDescriptor_t, &cudnnDestroyConvolutionDescriptor>;
using Graph = Owned<cudaGraph_t, &cudaGraphDestroy>;
using GraphExec = Owned<cudaGraphExec_t, &cudaGraphExecDestroy>;

// A non-blocking stream (graph capture is not allowed on the legacy default stream).
inline Stream new_stream() {
  cudaStream_t s = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return Stream(s);
}
// timing false: an event for ordering only (cheaper to record).
inline Event new_event(bool timing = true) {
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, timing ? cudaEventDefault : cudaEventDisableTiming));
  return Event(e);
}
inline CudnnHandle new_cudnn(cudaStream_t s) {
  cudnnHandle_t h = nullptr;
  CUDNN_CHECK(cudnnCreate(&h));
  CudnnHandle owned(h);
  CUDNN_CHECK(cudnnSetStream(h, s));
  return owned;
}
inline CublasHandle new_cublas(cudaStream_t s) {
  cublasHandle_t h = nullptr;
  CUBLAS_CHECK(cublasCreate(&h));
  CublasHandle owned(h);
  CUBLAS_CHECK(cublasSetStream(h, s));
  return owned;
}
inline TensorDesc new_tensor_desc() {
  cudnnTensorDescriptor_t d = nullptr;
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
  return TensorDesc(d);
}
inline FilterDesc new_filter_desc() {
  cudnnFilterDescriptor_t d = nullptr;
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
  return FilterDesc(d);
}
inline ConvDesc new_conv_desc() {
  cudnnConvolutionDescriptor_t d = nullptr;
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
  return ConvDesc(d);
}

}  // namespace splitconv::gpu
