// `bench layers --device cuda`: the graph engine's own pieces (forward_layer, backward_layer:
// what every step enqueues, CUDA graph aside) timed one at a time with CUDA events, next to a
// whole train_step replayed from its graph.
#include <numeric>

#include "bench/bench_internal.h"
#include "bench/bench_util.h"
#include "cuda_backend.h"
#include "splitconv/error.h"

namespace splitconv::gpu {
namespace {

class CudaProbe final : public bench::LayerProbe {
 public:
  explicit CudaProbe(CudaBackend& b) : b_(b), e_(b.graph_engine()) {
    StepParams sp;
    sp.lr_t = 1e-4f;
    b_.state().write_step_params(sp);
  }
  const Model& model() const override { return b_.state().model(); }
  const StepPlan& plan() const override { return e_.plan(); }
  std::string device() const override { return "cuda"; }
  std::string description() const override { return b_.description(); }
  std::string update_kind() const override { return "adam"; }
  void gather() override { e_.gather(batch()); }
  void forward(const PlanOp& op) override { e_.forward_layer(op, batch()); }
  void loss() override { e_.loss(batch()); }
  void backward(const PlanOp& op) override { e_.backward_layer(op, batch()); }
  void update() override { e_.adam(); }
  void step() override { b_.train_step(0, batch(), ++t_, Hyper{}); }
  double time_ms(const std::function<void()>& run, const bench::TimingOptions& o) override {
    return median_ms(run, b_.state().stream(), o);
  }

 private:
  int batch() const { return e_.plan().max_batch; }
  CudaBackend& b_;
  GraphEngine& e_;
  int64_t t_ = 0;
};

}  // namespace

bench::LayersResult bench_layers_cuda(const Model& model, int batch, const bench::TimingOptions& o) {
  if (batch < 1) throw InputError("--batch must be positive");
  const CudaStatus st = cuda_status();
  if (st.devices.empty()) throw Error("bench layers --device cuda: no CUDA device: " + st.why_none);
  BackendOptions bo;  // conv_impl auto, float32: as train runs by default
  bo.tf32 = o.tf32;
  CudaBackend backend(bo);
  backend.plan(model, batch);
  backend.upload(Split::Train, bench::random_images(model, batch, o.seed));
  backend.set_parameters(init_parameters(model, 1));
  std::vector<int32_t> order(static_cast<size_t>(batch));
  std::iota(order.begin(), order.end(), 0);
  backend.set_order(order);
  CudaProbe probe(backend);
  bench::LayersResult r = bench::time_layers(probe, o);
  backend.reset_train_metrics();
  return r;
}

}  // namespace splitconv::gpu
