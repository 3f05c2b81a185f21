// `bench layers --device cuda`: the CUDA backend's own per-layer calls (forward_layer,
// backward_layer: what every step enqueues, CUDA graph aside) timed one layer at a time with
// CUDA events, next to a whole train_step replayed from its graph.
#include <numeric>

#include "bench_internal.h"
#include "bench_util.h"
#include "cuda_backend.h"
#include "splitconv/error.h"

namespace splitconv::gpu {

bench::LayersResult CudaBackend::time_layers(const bench::TimingOptions& o) {
  require_plan("time_layers");
  const Stored& data = split_data(Split::Train);
  if (order_count_ < max_batch_) throw Error("cuda backend: time_layers needs an order of a batch");
  const int n = max_batch_;
  StepParams sp;
  sp.lr_t = 1e-4f;
  write_step_params(sp);
  enqueue_step(n);  // every buffer now holds a real step's values
  CUDA_CHECK(cudaStreamSynchronize(stream_));

  bench::LayersResult r;
  r.device = "cuda";
  r.description = description_;
  r.batch = n;
  bench::LayerTime input{"input", "gather", model_.input};
  input.forward_ms = median_ms([&] {
    gather_batch(stream_, data.pixels.get(), data.labels.get(), model_.input.size(), order_.get(),
                 step_params_.get(), n, act_[0], batch_labels_.get());
  }, stream_, o);
  r.rows.push_back(input);
  // A flatten is a view: nothing runs for it (unless it carries a ReLU).
  auto idle = [&](size_t i) {
    const Layer& l = model_.layers[i];
    return l.kind() == LayerKind::Flatten && l.spec.activation != Activation::Relu;
  };
  for (size_t i = 0; i < model_.layers.size(); ++i) {
    bench::LayerTime row = bench::layer_row(model_.layers[i]);
    if (!idle(i)) row.forward_ms = median_ms([&] { forward_layer(i, n); }, stream_, o);
    r.rows.push_back(row);
  }
  bench::LayerTime loss{"loss", "softmax + xent", {1, 1, classes_}};
  loss.forward_ms = median_ms([&] {
    softmax_xent(stream_, n, classes_, act_.back(), batch_labels_.get(), grad_.back(),
                 1.0f / float(n), loss_acc_.get() + kTrain, correct_acc_.get() + kTrain);
  }, stream_, o);
  for (size_t i = model_.layers.size(); i-- > 0;)
    if (!idle(i)) r.rows[i + 1].backward_ms = median_ms([&] { backward_layer(i, n); }, stream_, o);
  r.rows.push_back(loss);
  bench::LayerTime update{"update", "adam", {0, 0, 0}};
  update.params = model_.total_params;
  update.backward_ms = median_ms([&] {
    adam(stream_, model_.param_floats, params_.get(), grads_.get(), m_.get(), v_.get(),
         step_params_.get());
  }, stream_, o);
  r.rows.push_back(update);
  int64_t t = 0;
  r.step_ms = median_ms([&] { train_step(0, n, ++t, Hyper{}); }, stream_, o);
  reset_train_metrics();
  return r;
}

bench::LayersResult bench_layers_cuda(const Model& model, int batch, const bench::TimingOptions& o) {
  if (batch < 1) throw InputError("--batch must be positive");
  const CudaStatus st = cuda_status();
  if (st.devices.empty()) throw Error("bench layers --device cuda: no CUDA device: " + st.why_none);
  CudaBackend backend(BackendOptions{});  // conv_impl auto, float32: as train runs by default
  backend.plan(model, batch);
  backend.upload(Split::Train, bench::random_images(model, batch, o.seed));
  backend.set_parameters(init_parameters(model, 1));
  std::vector<int32_t> order(static_cast<size_t>(batch));
  std::iota(order.begin(), order.end(), 0);
  backend.set_order(order);
  bench::LayersResult r = backend.time_layers(o);
  r.model = model.spec.source;
  return r;
}

}  // namespace splitconv::gpu
