// The conv dispatch point: which implementation runs each conv layer, chosen once at plan time.
#include <algorithm>
#include <cstdio>
#include <vector>

#include "resources.h"
#include "conv.h"
#include "splitconv/error.h"
#include "splitconv/random.h"
#include "splitconv/tensor.h"

namespace splitconv::gpu {
namespace {

// Median time in ms of forward + backward of `impl` at the planned batch, on scratch buffers.
// Runs only at plan time; the step loop never measures.
double time_fwd_bwd(ConvImpl& impl, const Layer& l, int batch, bool need_dx, ConvContext& ctx) {
  const ConvGeom g = conv_geom(l, batch);
  std::vector<float> host(size_t(std::max({g.x_size(), g.y_size(), g.w_size()})));
  Rng rng(17);
  for (auto& v : host) v = rng.uniform(-1.0f, 1.0f);
  DeviceBuffer<float> x(size_t(g.x_size()), "conv timing x"), y(size_t(g.y_size()), "conv timing y"),
      dy(size_t(g.y_size()), "conv timing dy"), w(size_t(g.w_size()), "conv timing w"),
      dw(size_t(g.w_size()), "conv timing dw"), b(size_t(g.m), "conv timing b"),
      db(size_t(g.m), "conv timing db"), dx(size_t(g.x_size()), "conv timing dx");
  DeviceBuffer<uint8_t> ws(std::max<size_t>(impl.workspace_bytes(), 1), "conv timing workspace");
  CUDA_CHECK(cudaMemcpyAsync(x.get(), host.data(), x.bytes(), cudaMemcpyHostToDevice, ctx.stream));
  CUDA_CHECK(cudaMemcpyAsync(w.get(), host.data(), w.bytes(), cudaMemcpyHostToDevice, ctx.stream));
  CUDA_CHECK(cudaMemsetAsync(b.get(), 0, b.bytes(), ctx.stream));
  ConvContext saved = ctx;
  ctx.workspace = ws.get();
  ctx.workspace_bytes = ws.bytes();
  Event start = new_event(), stop = new_event();
  std::vector<float> ms;
  try {
    for (int i = 0; i < 13; ++i) {  // 3 warm-up runs, then the median of 10
      CUDA_CHECK(cudaMemcpyAsync(dy.get(), host.data(), dy.bytes(), cudaMemcpyHostToDevice, ctx.stream));
      CUDA_CHECK(cudaEventRecord(start, ctx.stream));
      impl.forward(batch, x.get(), w.get(), b.get(), y.get());
      impl.backward(batch, x.get(), y.get(), dy.get(), w.get(), need_dx ? dx.get() : nullptr,
                    dw.get(), db.get());
      CUDA_CHECK(cudaEventRecord(stop, ctx.stream));
      CUDA_CHECK(cudaEventSynchronize(stop));
      float t = 0;
      CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
      if (i >= 3) ms.push_back(t);
    }
  } catch (...) {
    ctx = saved;
    throw;
  }
  ctx = saved;
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Tells what auto chose, and by how much, through describe().
class Chosen : public ConvImpl {
 public:
  Chosen(std::unique_ptr<ConvImpl> impl, std::string why) : impl_(std::move(impl)), why_(std::move(why)) {}
  void forward(int n, const float* x, const float* w, const float* b, float* y) override {
    impl_->forward(n, x, w, b, y);
  }
  void backward(int n, const float* x, const float* y, float* dy, const float* w, float* dx,
                float* dw, float* db) override {
    impl_->backward(n, x, y, dy, w, dx, dw, db);
  }
  size_t workspace_bytes() const override { return impl_->workspace_bytes(); }
  std::string describe() const override { return impl_->describe() + " (" + why_ + ")"; }

 private:
  std::unique_ptr<ConvImpl> impl_;
  std::string why_;
};

}  // namespace

void check_conv_impl(const std::string& conv_impl) {
  if (conv_impl == "auto" || conv_impl == "cudnn" || conv_impl == "own") return;
  throw InputError("--conv-impl: expected auto, cudnn or own, got '" + conv_impl + "'");
}

std::unique_ptr<ConvImpl> make_conv_impl(const Layer& layer, int max_batch, bool need_dx,
                                         const std::string& conv_impl, ConvContext& ctx) {
  check_conv_impl(conv_impl);
  const bool own_fits = own_conv_supports(layer, max_batch);
  if (conv_impl == "cudnn" || !own_fits) return make_cudnn_conv(layer, max_batch, need_dx, ctx);
  if (conv_impl == "own") return make_own_conv(layer, max_batch, need_dx, ctx);
  if (ctx.deterministic)
    return std::make_unique<Chosen>(make_own_conv(layer, max_batch, need_dx, ctx),
                                    "deterministic: fixed choice, not timed");
  // auto: an n×1 / 1×n layer; cuDNN cannot pad unevenly, so then the own kernels are the only way.
  auto own = make_own_conv(layer, max_batch, need_dx, ctx);
  std::unique_ptr<ConvImpl> cudnn;
  try {
    cudnn = make_cudnn_conv(layer, max_batch, need_dx, ctx);
  } catch (const InputError& e) {
    return std::make_unique<Chosen>(std::move(own), std::string("cuDNN cannot: ") + e.what());
  }
  double t_own = time_fwd_bwd(*own, layer, max_batch, need_dx, ctx);
  double t_cudnn = time_fwd_bwd(*cudnn, layer, max_batch, need_dx, ctx);
  char why[160];
  std::snprintf(why, sizeof why, "auto: own %.1f us, cudnn %.1f us per fwd+bwd", 1000 * t_own,
                1000 * t_cudnn);
  if (t_own <= t_cudnn) return std::make_unique<Chosen>(std::move(own), why);
  return std::make_unique<Chosen>(std::move(cudnn), why);
}

}  // namespace splitconv::gpu
