// What this build offers, as host/cuda_absent.cpp does when CUDA is not built: cuda_status()
// (the devices and library versions, or plainly why there is none; never throws: any runtime
// error, such as a driver too old, reads as "no device") and make_cuda_backend().
// Both in one object file, as there: whoever links one gets the other.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <library_types.h>

#include <string>

#include "cuda_backend.h"
#include "splitconv/backend.h"

namespace splitconv {
namespace {

// 13000 → "13.0" (CUDA encodes major·1000 + minor·10)
std::string cuda_version_text(int v) {
  if (v <= 0) return "none";
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

std::string cudnn_version_text() {
  int major = 0, minor = 0, patch = 0;
  if (cudnnGetProperty(MAJOR_VERSION, &major) != CUDNN_STATUS_SUCCESS ||
      cudnnGetProperty(MINOR_VERSION, &minor) != CUDNN_STATUS_SUCCESS ||
      cudnnGetProperty(PATCH_LEVEL, &patch) != CUDNN_STATUS_SUCCESS)
    return std::to_string(cudnnGetVersion());
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

std::string cublas_version_text() {
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) != CUBLAS_STATUS_SUCCESS ||
      cublasGetProperty(MINOR_VERSION, &minor) != CUBLAS_STATUS_SUCCESS ||
      cublasGetProperty(PATCH_LEVEL, &patch) != CUBLAS_STATUS_SUCCESS)
    return "unknown";
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(patch);
}

}  // namespace

CudaStatus cuda_status() {
  CudaStatus st;
  st.compiled = true;
  int runtime = 0, driver = 0;
  if (cudaRuntimeGetVersion(&runtime) != cudaSuccess) runtime = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
  st.runtime_version = cuda_version_text(runtime);
  st.driver_version = cuda_version_text(driver);
  st.cudnn_version = cudnn_version_text();
  st.cublas_version = cublas_version_text();

  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    st.why_none = cudaGetErrorString(err);
    (void)cudaGetLastError();
    return st;
  }
  if (count == 0) {
    st.why_none = "the CUDA runtime found no device";
    return st;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      (void)cudaGetLastError();
      continue;
    }
    DeviceInfo d;
    d.index = i;
    d.name = prop.name;
    d.major = prop.major;
    d.minor = prop.minor;
    d.memory_bytes = int64_t(prop.totalGlobalMem);
    d.multiprocessors = prop.multiProcessorCount;
    st.devices.push_back(d);
  }
  if (st.devices.empty()) st.why_none = "no device answered cudaGetDeviceProperties";
  return st;
}

// Throws InputError for a conv_impl it cannot run, Error when there is no device.
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& opts) {
  return std::make_unique<gpu::CudaBackend>(opts);
}

}  // namespace splitconv
