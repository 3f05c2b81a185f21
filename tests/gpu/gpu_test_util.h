// Shared by the GPU tests: skip without a device, random inputs, host/device copies, errors.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "resources.h"
#include "splitconv/bench.h"
#include "splitconv/backend.h"
#include "splitconv/random.h"

namespace splitconv::gpu::testing {

// Skips the test when there is no CUDA device, or fails it when SPLITCONV_REQUIRE_GPU is set
// (tools/test.sh --gpu), so a GPU run never passes by skipping everything.
#define SPLITCONV_REQUIRE_GPU()                                                             \
  do {                                                                                      \
    const ::splitconv::CudaStatus sc_status_ = ::splitconv::cuda_status();                  \
    if (sc_status_.devices.empty()) {                                                       \
      if (std::getenv("SPLITCONV_REQUIRE_GPU"))                                             \
        FAIL() << "no CUDA device (SPLITCONV_REQUIRE_GPU is set): " << sc_status_.why_none; \
      GTEST_SKIP() << "no CUDA device: " << sc_status_.why_none;                            \
    }                                                                                       \
  } while (0)

// Fresh inputs each run; SPLITCONV_TEST_SEED=N repeats a run (the seed is in the failure trace).
inline uint64_t test_seed() {
  static const uint64_t seed = [] {
    if (const char* s = std::getenv("SPLITCONV_TEST_SEED"))
      return uint64_t(std::strtoull(s, nullptr, 10));
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ rd();
  }();
  return seed;
}

inline std::vector<float> random_floats(size_t n, uint64_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform(lo, hi);
  return v;
}

template <class T>
DeviceBuffer<T> to_device(const std::vector<T>& h) {
  DeviceBuffer<T> d(h.size(), "a test input");
  if (!h.empty())
    CUDA_CHECK(cudaMemcpy(d.get(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
  // A pageable copy may still be in flight on return; the tests' own stream does not wait for it.
  CUDA_CHECK(cudaDeviceSynchronize());
  return d;
}

template <class T>
std::vector<T> to_host(const DeviceBuffer<T>& d, size_t n = size_t(-1)) {
  CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<T> h(n == size_t(-1) ? d.size() : n);
  if (!h.empty())
    CUDA_CHECK(cudaMemcpy(h.data(), d.get(), h.size() * sizeof(T), cudaMemcpyDeviceToHost));
  return h;
}

// max |got − want| / max |want|: one number that reads the same for every tensor scale (the
// benchmarks' measure, bench::relative_error; a non-finite value reads as infinite).
inline double rel_error(const std::vector<float>& got, const std::vector<float>& want) {
  return bench::relative_error(got, want);
}

// The op tolerance: float32 sums of up to a few thousand products, reordered (cuDNN, cuBLAS and
// tree sums against Eigen's blocking), differ by ~1e-6 of the largest value; 1e-4 leaves two
// orders of margin yet catches any indexing or scaling fault, which errs by O(1).
inline constexpr double kOpTolerance = 1e-4;

}  // namespace splitconv::gpu::testing
