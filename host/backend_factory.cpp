// The only place that knows whether CUDA exists (docs/design.md, Layout).
#include "splitconv/backend.h"
#include "splitconv/error.h"
#include "splitconv/plan.h"

namespace splitconv {

void check_predict(const char* who, const Model& model, const ImageSet& images,
                   std::span<const float> probabilities) {
  const Shape& in = model.input;
  if (images.h != in.h || images.w != in.w || images.c != in.c ||
      int64_t(images.pixels.size()) != images.count * in.size()) {
    throw Error(std::string(who) + ": the images to predict do not match the model input");
  }
  if (int64_t(probabilities.size()) != images.count * model.classes) {
    throw Error(std::string(who) + ": room for " + std::to_string(probabilities.size()) +
                " probabilities, expected " + std::to_string(images.count * model.classes));
  }
}

void Backend::check_plan(const Model& model, int max_batch) const { make_plan(model, max_batch); }

std::optional<MemoryEstimate> Backend::memory_estimate(const Model& model, int max_batch) const {
  make_plan(model, max_batch);
  return std::nullopt;
}

void Backend::train_steps(int64_t begin, int count, int64_t t, std::span<const Hyper> hypers) {
  for (size_t i = 0; i < hypers.size(); ++i)
    train_step(begin + int64_t(i) * count, count, t + int64_t(i), hypers[i]);
}

namespace {
int64_t sat_add(int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; }
int64_t sat_mul(int64_t a, int64_t b) { return b != 0 && a > INT64_MAX / b ? INT64_MAX : a * b; }
}  // namespace

MemoryEstimate graph_engine_memory(const Model& model, int max_batch) {
  const StepPlan plan = make_plan(model, max_batch);
  const int64_t batch = plan.max_batch;
  MemoryEstimate mem;
  mem.parameters = sat_mul(model.param_floats, 4 * int64_t(sizeof(float)));  // params, grads, m, v
  for (const PlanBuffer& b : plan.buffers)
    mem.activations = sat_add(mem.activations, sat_mul(b.floats(batch), int64_t(sizeof(float)) *
                                                                          (b.needs_grad ? 2 : 1)));
  for (const Shape& s : plan.argmax_shapes)
    mem.activations = sat_add(mem.activations, sat_mul(batch, s.size() * int64_t(sizeof(int32_t))));
  mem.activations = sat_add(mem.activations, batch);  // the batch's labels
  mem.activations = sat_add(mem.activations, sat_mul(batch, model.classes * int64_t(sizeof(float))));
  return mem;
}

int64_t MemoryEstimate::total() const {
  int64_t sum = 0;
  for (int64_t part : {parameters, activations, workspace})
    sum = part > INT64_MAX - sum ? INT64_MAX : sum + part;
  return sum;
}

std::unique_ptr<Backend> make_backend(const std::string& device, const BackendOptions& opts) {
  if (opts.engine != "graph" && opts.engine != "fused" && opts.engine != "auto")
    throw InputError("--engine: expected graph, fused or auto, got '" + opts.engine + "'");
  if (device == "cpu") return make_cpu_backend(opts);
  if (device != "cuda" && device != "auto")
    throw InputError("--device: expected cpu, cuda or auto, got '" + device + "'");
  CudaStatus st = cuda_status();
  if (!st.devices.empty()) return make_cuda_backend(opts);
  if (device == "cuda")
    throw Error("--device cuda: " + (st.compiled ? "no CUDA device: " + st.why_none
                                                  : std::string("this build has no CUDA backend")));
  return make_cpu_backend(opts);
}

}  // namespace splitconv
