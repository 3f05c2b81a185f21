// The backend interface: what the trainer drives. A backend owns its memory (planned once),
// its copy of the data and the whole training step; it knows nothing of files or printing.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "splitconv/data.h"
#include "splitconv/model.h"

namespace splitconv {

enum class Split { Train, Test };

struct Hyper {  // Adam in Keras's form (docs/design.md, Numeric conventions)
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-7f;
};

struct Metrics {  // sums over images
  double loss_sum = 0;   // sum of cross-entropies
  int64_t correct = 0;
  int64_t count = 0;
  double loss() const { return count ? loss_sum / double(count) : 0.0; }
  double accuracy() const { return count ? double(correct) / double(count) : 0.0; }
};

struct BackendOptions {
  std::string conv_impl = "auto";  // auto | cudnn | own (CUDA only)
  bool tf32 = false;               // CUDA only: allow TF32 tensor-core math
  // CUDA only: the same seed gives the same bits on the same card — cuDNN algorithms limited to
  // deterministic ones, the conv implementation fixed rather than timed (auto: own kernels
  // wherever they apply), every reduction in a fixed order. The CPU always is, for a given
  // thread count.
  bool deterministic = false;
  // CUDA only: the engine that runs a training step — "graph" (cuDNN, cuBLAS and own kernels,
  // a step replayed as a CUDA graph), "fused" (own kernels: a block per image, two kernels a
  // step; a model it cannot run falls back to graph, saying why) or "auto" (fused where it
  // runs, else graph).
  std::string engine = "graph";
  // CUDA, fused engine: thread blocks per image — 0 chooses (a cluster on Hopper and later when
  // the batch leaves SMs idle), 1 one block (the arena in shared memory where it fits), 2–8 a
  // cluster of that many.
  int fused_blocks = 0;
  // CUDA, fused engine: the most full-batch training steps one launch runs (a persistent
  // kernel with grid-wide barriers between a step's images and its Adam update); the host
  // looks in between launches only. 1: a launch (graph) per step.
  int steps_per_launch = 64;
  bool verbose = false;            // record per-layer choices in choices()
  int threads = 0;                 // CPU only: 0 = all cores, at most kMaxThreads
};

// The most CPU threads a backend or benchmark starts (docs/design.md, Size limits).
inline constexpr int kMaxThreads = 1024;

// The bytes an engine allocates for a plan, by kind (docs/design.md, Engines).
struct MemoryEstimate {
  int64_t parameters = 0;   // parameters, their gradients, Adam's m and v
  int64_t activations = 0;  // activation, gradient and arg-max buffers, the labels
  int64_t workspace = 0;    // scratch space (the CPU's im2col buffers)
  int64_t total() const;    // saturates at INT64_MAX
};

// What the CUDA backend's plan() allocates on the device for `model` at `max_batch` images a
// step with the graph engine (parameters, gradients, m and v; activation, gradient and
// arg-max buffers, the batch's labels and probabilities), computed on the host. Not in it: the
// convolution workspace, which cuDNN's algorithm search chooses within the memory then free,
// and what the device state holds from its start (the cuBLAS workspace). The fused engine
// needs at least as much. InputError past the size limits.
MemoryEstimate graph_engine_memory(const Model& model, int max_batch);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;         // "cpu" or "cuda"
  virtual std::string description() const = 0; // e.g. "CPU, 2 threads" or "NVIDIA H100 (sm_90)"

  // Throws InputError, before anything is allocated, when `model` at `max_batch` images a
  // step is past the size limits or cannot fit this device's memory: the message gives the
  // bytes needed and available. plan() makes the same check; the command line calls this
  // first for every model of a run. The default checks only the size limits.
  virtual void check_plan(const Model& model, int max_batch) const;
  // What plan() would allocate for `model` at `max_batch` images a step, computed without
  // allocating (InputError past the size limits); nullopt where the backend does not estimate
  // it (the default; the CPU backend does).
  virtual std::optional<MemoryEstimate> memory_estimate(const Model& model, int max_batch) const;
  // Plans and allocates all memory for `model` with at most `max_batch` images a step.
  virtual void plan(const Model& model, int max_batch) = 0;
  // Copies a data split into backend memory (uint8, normalised when a batch is gathered).
  virtual void upload(Split split, const ImageSet& set) = 0;

  // Parameters and Adam state as flat buffers of Model::param_floats floats.
  virtual void set_parameters(std::span<const float> params) = 0;
  virtual void get_parameters(std::span<float> params) = 0;
  virtual void set_moments(std::span<const float> m, std::span<const float> v) = 0;
  virtual void get_moments(std::span<float> m, std::span<float> v) = 0;

  // The epoch's order of training images (indices into the uploaded train split).
  virtual void set_order(std::span<const int32_t> order) = 0;
  // One step on images order[begin, begin+count): forward, loss, backward, Adam step t (1-based).
  virtual void train_step(int64_t begin, int count, int64_t t, const Hyper& hyper) = 0;
  // `hypers.size()` full steps in a row: step i on order[begin + i·count, begin + (i+1)·count),
  // Adam step t + i with hypers[i] — the same as train_step one after the other, which is what
  // this does unless an engine runs them in one launch. steps_per_call() is the most such a
  // call should hold (1: the engine gains nothing; the trainer then calls train_step).
  virtual void train_steps(int64_t begin, int count, int64_t t, std::span<const Hyper> hypers);
  virtual int steps_per_call() const { return 1; }
  // Loss and accuracy summed over the steps since the last reset.
  virtual Metrics train_metrics() = 0;
  virtual void reset_train_metrics() = 0;

  // Loss and accuracy over the first `limit` images of a split (all when limit <= 0).
  virtual Metrics evaluate(Split split, int64_t limit = 0) = 0;
  // Class probabilities, N×classes, of images given here (not uploaded).
  virtual void predict(const ImageSet& images, std::span<float> probabilities) = 0;

  // Per-layer implementation choices, e.g. {"conv3: cudnn (algo 1)"}.
  virtual std::vector<std::string> choices() const { return {}; }
  // The engine that runs the steps after plan(): "cpu", "graph" or "fused".
  virtual std::string engine() const { return name(); }
  // Why the engine asked for is not the one running ("" when it is).
  virtual std::string engine_note() const { return ""; }
};

// What every backend's predict() checks first: the images match the model's input and there
// is room for images.count × classes probabilities. Throws Error naming `who` otherwise.
void check_predict(const char* who, const Model& model, const ImageSet& images,
                   std::span<const float> probabilities);

// The only place that knows whether CUDA exists. device: "cpu", "cuda" or "auto" (CUDA when a
// device is present, else the CPU). Throws InputError for an unknown name, Error when "cuda"
// is asked for and there is none.
std::unique_ptr<Backend> make_backend(const std::string& device, const BackendOptions& opts);

struct DeviceInfo {
  int index = 0;
  std::string name;
  int major = 0, minor = 0;
  int64_t memory_bytes = 0;
  int multiprocessors = 0;
};

struct CudaStatus {
  bool compiled = false;            // built with the CUDA backend
  std::string why_none;             // empty when devices were found
  std::vector<DeviceInfo> devices;
  std::string cudnn_version, cublas_version, runtime_version, driver_version;
};
// Lists CUDA devices; any error from the runtime reads as "no device" with its message.
CudaStatus cuda_status();

// Implemented by the CUDA backend, or by a stub that says it was not built.
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& opts);
std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& opts);

}  // namespace splitconv
