// Benchmarks. The kernel harness of the split convolutions (`bench kernel`, GPU only); one
// layer shape's n×n conv against its n×1 + 1×n pair (`bench conv`, `bench sweep`); per-layer
// times of a whole model (`bench layers`); and the measured split rule built on them.
// Free of CUDA types, so the command line and the tests include it in any build.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "splitconv/analysis.h"
#include "splitconv/model.h"

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

namespace splitconv::bench {

// One layer shape: m filters kh×kw over c channels on an h×w map, stride 1, against the pair
// K filters kh×1 then m filters 1×kw, each side with ReLU after every layer (as factorize
// writes the pair with --mid relu).
struct ConvCase {
  int kh = 3, kw = 3;
  int c = 64, m = 64;
  int rank = 0;  // K; <= 0: K = m (the notebook's choice)
  int h = 28, w = 28;
  int batch = 32;
  Padding padding = Padding::Valid;
  int k() const { return rank > 0 ? rank : m; }
  bool operator==(const ConvCase&) const = default;
};

// "3x3 64->64 K=64 on 28x28, batch 32, valid"
std::string describe(const ConvCase& s);
// Throws InputError for a shape that cannot run (a size below 1, a kernel larger than a
// valid map), naming the fault.
void check_case(const ConvCase& s);
// The conv layers of each side, shaped by build_model (the geometry the backends use):
// {nxn} and {pair_v (K kh×1), pair_h (m 1×kw)}.
std::vector<Layer> nxn_layers(const ConvCase& s);
std::vector<Layer> pair_layers(const ConvCase& s);
// The same convs as a model an engine can plan (make_plan wants a classifier): a max-pool over
// the last map, a flatten and a dense head of 2 follow them (m·2 + 2 parameters, so the head's
// gradient adds nearly nothing to what a step sums); the benchmarks run only the convs.
Model nxn_model(const ConvCase& s);
Model pair_model(const ConvCase& s);
// Any convs so, from an input map (each a conv LayerSpec with ReLU: conv_spec), and the conv
// layers of such a model (the head left out). Throws InputError for convs that do not fit.
LayerSpec conv_spec(const std::string& name, int units, int kh, int kw, Padding padding);
Model conv_model(Shape input, std::vector<LayerSpec> convs);
std::vector<Layer> conv_layers(const Model& model);
// The shape of a model's conv layer at a batch size, the pair at rank K (<= 0: m).
ConvCase layer_case(const Layer& conv, int batch, int rank);

// The tensors of one side (its 1 or 2 conv layers) at some batch.
struct SideTensors {
  std::vector<float> x, dy;               // input; gradient arriving at the last output
  std::vector<std::vector<float>> w, b;   // per layer
};
// What a side's forward and backward produce.
struct SideOutputs {
  std::vector<std::vector<float>> act;    // per layer output after ReLU (the pair: z, then y)
  std::vector<float> dx;                  // input gradient
  std::vector<std::vector<float>> dw, db; // per layer
};

SideTensors random_tensors(const std::vector<Layer>& side, int batch, uint64_t seed);
// The reference: the plain CPU ops, single-threaded, on the first `batch` images of `in`.
// The backward starts from in.dy masked by the side's own ReLU outputs.
SideOutputs reference_outputs(const std::vector<Layer>& side, int batch, const SideTensors& in);

// max |got − ref| / max |ref|; infinite for a NaN or for tensors of different sizes.
double relative_error(std::span<const float> got, std::span<const float> ref);
struct Mismatch {
  double error = 0;
  std::string tensor;  // where the error is largest: "act1", "dx", "dw0", ...
};
// The largest relative error over every tensor of `ref` (each against its own largest value).
Mismatch compare_outputs(const SideOutputs& got, const SideOutputs& ref);

struct TimingOptions {
  int warmups = 1;
  int runs = 7;               // timed samples at most; the median is reported
  int min_runs = 3;           // at least this many, whatever the budget
  double budget_s = 1.0;      // no new sample (round, when alternating) once this is spent
  double min_sample_ms = 2;   // a sample repeats the call until it lasts this long
  int threads = 0;            // CPU: threads splitting the batch (0: all cores, as the backend)
  bool tf32 = false;          // CUDA: allow TF32 (and cuDNN's transformed algorithms)
  uint64_t seed = 1;
  // Tests only: alters a variant's outputs (side, impl, outputs) before they are checked.
  std::function<void(const std::string&, const std::string&, SideOutputs&)> tamper;
};
// cpu: 1 warm-up, up to 7 samples of ≥ 2 ms within 1 s; cuda: 3 warm-ups, up to 20 samples of
// ≥ 0.5 ms within 0.5 s.
TimingOptions default_timing(const std::string& device);

struct VariantResult {
  std::string side;  // "nxn" | "pair"
  std::string impl;  // "cpu" | "cudnn" | "own" | "own-fused"
  double error = 0, tolerance = 0;  // largest relative error against the reference
  std::string worst;                // the tensor with that error
  bool valid = false;               // error <= tolerance; only valid variants are timed
  double forward_ms = -1, train_ms = -1;  // medians at the full batch; < 0: not measured
};

struct ConvBenchResult {
  ConvCase shape;
  std::string device;       // "cpu" | "cuda"
  std::string description;  // "CPU, 2 threads", "NVIDIA H100 80GB HBM3 (sm_90)"
  int validated_batch = 0;  // images the variants were checked on (the budget of the reference)
  int64_t params_nxn = 0, params_pair = 0;
  int64_t macs_nxn = 0, macs_pair = 0;  // per image
  std::vector<VariantResult> variants;
  std::vector<std::string> notes;  // variants left out, and why
  bool all_valid() const;
};

// The images a case is checked on: all of them while the reference stays under ~2·10⁹ MACs,
// else fewer, never under min(batch, at_least).
int validation_batch(const ConvCase& s, int at_least);

// Checks every variant against the reference, then times the valid ones (forward, and
// forward + backward with both gradients). device: cpu | cuda. A wrong variant is reported,
// not thrown (all_valid() says); bad shapes throw InputError, a missing device Error.
ConvBenchResult bench_conv(const ConvCase& s, const std::string& device, const TimingOptions& o);
ConvBenchResult bench_conv_cpu(const ConvCase& s, const TimingOptions& o);

// Figures derived from a result. Theoretical saving: 1 − MACs_pair/MACs_nxn. Against the
// fastest valid n×n: speed-up t_nxn/t, time saving 1 − t/t_nxn, realised saving
// (t_nxn/t)/(MACs_nxn/MACs_pair): 1 when time shrinks exactly as MACs do.
double param_saving(const ConvBenchResult& r);
double theoretical_saving(const ConvBenchResult& r);
const VariantResult* fastest(const ConvBenchResult& r, const std::string& side, bool train);
struct Gain {
  bool known = false;
  double speedup = 0, time_saving = 0, realised = 0;
};
Gain gain(const ConvBenchResult& r, const VariantResult& v, bool train);
// 2·MACs·batch per forward; three times that for forward + backward (data and filter).
double gflops(const ConvBenchResult& r, const VariantResult& v, bool train);

std::string format_conv(const ConvBenchResult& r);
nlohmann::json conv_json(const ConvBenchResult& r);
// One CSV row per variant (docs/results-bench.md lists the columns).
std::string csv_header();
std::string csv_rows(const ConvBenchResult& r);

// --- the sweep ---
// n 3, 5, 7; c = m 16, 32, 64, 128, 256; maps 5, 14, 28, 56; batch 32 ("small", the CPU
// default) or 32 and 256 ("full", the GPU default), batch-major so that a time limit cuts the
// big batch first. Shapes whose kernel does not fit a valid map are left out. Throws
// InputError for another name.
std::vector<ConvCase> sweep_grid(const std::string& grid, Padding padding);
// One line per shape: MAC saving, then n×n and the fastest pair, forward and forward+backward.
std::string sweep_table_header();
std::string sweep_table_row(const ConvBenchResult& r);

// --- the measured rule ---
// Forward + backward times of one shape on one device: the n×n and its fastest pair.
struct ShapeTiming {
  ConvCase shape;
  double nxn_ms = 0, pair_ms = 0;
  std::string pair_impl;
};
struct TimingTable {
  std::string device, description;
  std::vector<ShapeTiming> rows;
  const ShapeTiming* find(const ConvCase& s) const;  // null when not timed
};
struct MeasuredDecision {
  std::string layer;
  bool timed = false;    // the table holds this layer's shape
  bool smaller = false;  // P1 < P0 (the exact parameter rule)
  bool faster = false;   // the pair's forward + backward is faster than the n×n's
  bool split = false;    // smaller and faster
  double nxn_ms = 0, pair_ms = 0;
  std::string pair_impl;
};
// Pure: one decision per conv layer (in analyze_splits order), from the table alone. A layer
// splits only where it is splittable, P1 < P0 and the table says the pair is faster.
std::vector<MeasuredDecision> measured_rule(const Model& model, int batch, int rank,
                                            const TimingTable& table);
// Times every splittable conv of the model (each shape once) on the device: the table above.
TimingTable time_conv_layers(const Model& model, int batch, int rank, const std::string& device,
                             const TimingOptions& o);

// --- per-layer times of a model ---
struct LayerTime {
  std::string name, kind;  // "conv1", "conv 3x3"; extra rows: "input", "loss", "update"
  Shape out;
  int64_t params = 0, macs = 0;  // per image
  double forward_ms = 0, backward_ms = 0;
};
struct LayersResult {
  std::string model, device, description;
  int batch = 0;
  std::vector<LayerTime> rows;
  double step_ms = 0;  // the backend's own train_step, timed in the same run
  // CPU: an empty parallel section (waking the threads and waiting for them). Every row pays
  // one; the backend's step pays one for its whole forward, loss and backward.
  double handoff_ms = 0;
};
LayersResult bench_layers(const Model& model, int batch, const std::string& device,
                          const TimingOptions& o);
LayersResult bench_layers_cpu(const Model& model, int batch, const TimingOptions& o);
std::string format_layers(const LayersResult& r);
nlohmann::json layers_json(const LayersResult& r);

}  // namespace splitconv::bench

namespace splitconv::gpu {

// The CUDA halves of bench_conv and bench_layers (cuda/), or stubs that throw Error when the
// CUDA backend is not built (host/cuda_absent.cpp).
bench::ConvBenchResult bench_conv_cuda(const bench::ConvCase& s, const bench::TimingOptions& o);
bench::LayersResult bench_layers_cuda(const Model& model, int batch, const bench::TimingOptions& o);

}  // namespace splitconv::gpu
