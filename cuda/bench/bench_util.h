// What the GPU benchmarks share (bench kernel, bench conv, bench layers): the event clock,
// copies for checking, the card's name. Streams, events and handles: resources.h.
#pragma once
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "resources.h"
#include "splitconv/bench.h"

namespace splitconv::gpu {

// Median ms of one call of `run` (which enqueues on s) by CUDA events: o.warmups calls, then
// samples until o.runs of them or, once o.min_runs are done, until o.budget_s of GPU time is
// spent; a sample repeats the call until it lasts o.min_sample_ms.
inline double median_ms(const std::function<void()>& run, cudaStream_t s,
                        const bench::TimingOptions& o) {
  for (int i = 0; i < o.warmups; ++i) run();
  CUDA_CHECK(cudaStreamSynchronize(s));
  Event start = new_event(), stop = new_event();
  auto timed = [&](int reps) {
    CUDA_CHECK(cudaEventRecord(start, s));
    for (int i = 0; i < reps; ++i) run();
    CUDA_CHECK(cudaEventRecord(stop, s));
    CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    return double(ms);
  };
  const double once = timed(1);
  const int reps = std::clamp(int(std::ceil(o.min_sample_ms / std::max(once, 1e-4))), 1, 1000);
  std::vector<double> samples;
  double spent = once;
  while (int(samples.size()) < std::max(o.runs, 1)) {
    if (int(samples.size()) >= o.min_runs && spent >= 1000.0 * o.budget_s) break;
    const double ms = timed(reps);
    spent += ms;
    samples.push_back(ms / reps);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// A pageable copy may still be in flight when cudaMemcpy returns, and a non-blocking stream
// does not wait for it: the device is synchronised before the buffer is handed out.
template <class T>
DeviceBuffer<T> upload(const std::vector<T>& v, const char* what) {
  DeviceBuffer<T> d(v.size(), what);
  if (!v.empty())
    CUDA_CHECK(cudaMemcpy(d.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaDeviceSynchronize());
  return d;
}

// The first `count` values of a device buffer (synchronises the device).
inline std::vector<float> download(const float* d, size_t count) {
  std::vector<float> host(count);
  CUDA_CHECK(cudaDeviceSynchronize());
  if (count) CUDA_CHECK(cudaMemcpy(host.data(), d, count * sizeof(float), cudaMemcpyDeviceToHost));
  return host;
}

// "NVIDIA H100 80GB HBM3 (sm_90)"
inline std::string device_text() {
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) +
         std::to_string(prop.minor) + ")";
}

}  // namespace splitconv::gpu
