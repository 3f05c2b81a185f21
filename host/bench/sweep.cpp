// The grids of `bench sweep`: the layer shapes people use, n ∈ {3, 5, 7} and c = m.
#include "splitconv/bench.h"
#include "splitconv/error.h"

namespace splitconv::bench {

std::vector<ConvCase> sweep_grid(const std::string& grid, Padding padding) {
  const std::vector<int> channels = {16, 32, 64, 128, 256}, maps = {5, 14, 28, 56};
  std::vector<int> batches;
  if (grid == "small") {  // the CPU default: ~4 minutes on 2 cores (docs/results-bench.md)
    batches = {32};
  } else if (grid == "full") {  // the GPU default; batch 256 costs the CPU 8 times as long
    batches = {32, 256};
  } else {
    throw InputError("--grid: expected small or full, got '" + grid + "'");
  }
  std::vector<ConvCase> cases;
  for (int batch : batches)
    for (int n : {3, 5, 7})
      for (int c : channels)
        for (int map : maps) {
          if (padding == Padding::Valid && n > map) continue;  // the kernel does not fit
          ConvCase s;
          s.kh = s.kw = n;
          s.c = s.m = c;
          s.h = s.w = map;
          s.batch = batch;
          s.padding = padding;
          cases.push_back(s);
        }
  return cases;
}

}  // namespace splitconv::bench
