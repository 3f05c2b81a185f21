// What the benchmarks share inside the library (host/ and cuda/): the host clock (the CUDA
// timings use events: cuda/bench_util.h), random training data, the layer-table rows.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "splitconv/bench.h"
#include "splitconv/data.h"
#include "splitconv/plan.h"

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

// What `bench layers` needs of an engine: the pieces of its step, each run on a batch that
// holds a real step's values, and its clock. Each engine provides one (host/bench/layers_cpu.cpp,
// cuda/bench/layers_cuda.cpp); time_layers is the one timing loop over the step plan.
class LayerProbe {
 public:
  virtual ~LayerProbe() = default;
  virtual const Model& model() const = 0;
  virtual const StepPlan& plan() const = 0;
  virtual std::string device() const = 0;       // "cpu" | "cuda"
  virtual std::string description() const = 0;  // "CPU, 2 threads", "NVIDIA H200 (sm_90)"
  virtual std::string update_kind() const = 0;   // what update() does: "grad sum + adam"
  virtual void gather() = 0;                     // the batch's images and labels
  virtual void forward(const PlanOp& op) = 0;
  virtual void loss() = 0;                       // loss and the logits' gradient
  virtual void backward(const PlanOp& op) = 0;
  virtual void update() = 0;                     // gradients summed and one Adam step
  virtual void step() = 0;                       // the engine's own whole training step
  // Median ms of `run` by the engine's clock (host clock, or CUDA events on its stream).
  virtual double time_ms(const std::function<void()>& run, const TimingOptions& o) = 0;
  // CPU: an empty parallel section; 0 where there is none.
  virtual double handoff_ms(const TimingOptions&) { return 0; }
};

// One step first (every buffer then holds real values), then each piece timed alone in the
// order a step runs them, and the engine's whole step last.
LayersResult time_layers(LayerProbe& probe, const TimingOptions& o);

}  // namespace splitconv::bench
