// What the benchmarks share inside the library (host/ and cuda/): the host clock (the CUDA
// timings use events: cuda/bench_util.h), random training data, the layer-table rows.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "splitconv/bench.h"
#include "splitconv/data.h"

namespace splitconv::bench {

// Median ms of one call of `run` by the steady clock: o.warmups calls first, then samples
// until o.runs of them or, once o.min_runs are done, until o.budget_s is spent; a sample
// repeats the call until it lasts o.min_sample_ms (short calls are not timed alone).
double median_ms(const std::function<void()>& run, const TimingOptions& o);
// The same for several calls timed in alternation, sample by sample (one median each), so that
// a drift of the machine moves them all alike; o.runs and the budget count rounds.
std::vector<double> median_ms(const std::vector<std::function<void()>>& runs,
                              const TimingOptions& o);

// Threads for the CPU: o.threads, or every core (as the CPU backend with threads = 0).
int cpu_threads(const TimingOptions& o);

// A result with the case's parameters and MACs filled in (from nxn_layers, pair_layers).
ConvBenchResult new_result(const ConvCase& s, const std::string& device);

// `count` random images of the model's input shape with random labels below its classes.
ImageSet random_images(const Model& model, int64_t count, uint64_t seed);

// The row of `bench layers` for one model layer, times not yet filled in: "conv 3x3", output,
// params and MACs per image.
LayerTime layer_row(const Layer& l);

}  // namespace splitconv::bench
