// The kernel development harness of the split convolutions (`splitconv bench kernel`): what it
// is asked to measure. Free of CUDA types, so the command line can include it in any build.
#pragma once
#include <cstdint>
#include <string>

namespace splitconv::gpu {

struct SplitBenchArgs {
  std::string op = "vert";  // vert (n×1) | horz (1×n) | pair (n×1 then 1×n, fused)
  int n = 3;                // taps of the kernel
  int c = 64, m = 64;       // input channels, filters (the pair: m for both layers)
  int h = 28, w = 28;       // input map
  int batch = 32;
  std::string padding = "valid";  // valid | same
  std::string variant;            // run only the own variants whose name contains this
  int runs = 20;                  // timed runs of each variant (the median is reported)
  uint64_t seed = 1;
};

// Validates every variant (the own kernels and cuDNN) against the CPU reference on random
// inputs, times each with CUDA events (3 warm-up runs, median of `runs`) and returns the table:
// direction, variant, relative error, time, GFLOP/s (2·MACs/time), GB/s (each tensor read or
// written once), and speed relative to cuDNN on the same shape (cudnn time / variant time).
// Throws InputError for bad arguments, Error when there is no device or a variant is wrong
// (the message then holds the whole table).
std::string run_conv_split_bench(const SplitBenchArgs& args);

}  // namespace splitconv::gpu
