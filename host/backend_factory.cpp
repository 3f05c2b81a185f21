// The only place that knows whether CUDA exists (docs/design.md, Layout).
#include "splitconv/backend.h"
#include "splitconv/error.h"
#include "splitconv/plan.h"

namespace splitconv {

void Backend::check_plan(const Model& model, int max_batch) const { make_plan(model, max_batch); }

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
