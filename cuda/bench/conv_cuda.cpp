// `bench conv --device cuda`: the n×n conv and its pair through the backend's own ConvImpl
// objects (conv.h: cuDNN as the backend plans it, the own n×1 / 1×n kernels) and the fused pair
// forward (conv_split.h). Every variant is checked against the plain CPU ops first, then timed
// with CUDA events at the full batch. Host code only.
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_internal.h"
#include "bench/bench_util.h"
#include "conv.h"
#include "conv_split.h"
#include "splitconv/backend.h"
#include "splitconv/error.h"

namespace splitconv::gpu {
namespace {

using bench::SideOutputs;
using bench::SideTensors;

// fp32 kernels against the fp32 CPU reference differ in summation order only (~√(c·n)·2⁻²⁴ of
// the largest value); cuDNN's algorithms a little more; TF32 keeps 10 mantissa bits.
constexpr double kOwnTolerance = 1e-4;
constexpr double kCudnnTolerance = 1e-3;
constexpr double kTf32Tolerance = 1e-2;

// One side's tensors on the device at the full batch: act[0] the input, act[i+1] layer i's
// output; grad[i] the gradient of act[i].
struct SideBuffers {
  std::vector<Layer> layers;
  std::vector<DeviceBuffer<float>> act, grad, w, b, dw, db;
};

// Fills images [have, want) of an NCHW buffer with copies of images [0, have), doubling.
void replicate(float* d, int64_t per_image, int have, int want) {
  for (int n = have; n < want; n += std::min(n, want - n))
    CUDA_CHECK(cudaMemcpy(d + int64_t(n) * per_image, d,
                          size_t(std::min(n, want - n)) * size_t(per_image) * sizeof(float),
                          cudaMemcpyDeviceToDevice));
}

// A pageable copy may still be in flight when cudaMemcpy returns, and the benchmark's stream
// does not wait for the legacy stream: synchronise the device before anything reads it.
void put(DeviceBuffer<float>& d, const std::vector<float>& host) {
  CUDA_CHECK(cudaMemcpy(d.get(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaDeviceSynchronize());
}

// Random inputs of `vb` images (the checked ones) repeated up to the full batch: the timing
// does not depend on the values.
SideBuffers make_buffers(const std::vector<Layer>& layers, int batch, const SideTensors& t, int vb) {
  SideBuffers s;
  s.layers = layers;
  s.act.emplace_back(size_t(batch) * size_t(layers.front().in.size()), "bench x");
  s.grad.emplace_back(s.act[0].size(), "bench dx");
  for (const Layer& l : layers) {
    s.act.emplace_back(size_t(batch) * size_t(l.out.size()), "bench activation");
    s.grad.emplace_back(s.act.back().size(), "bench gradient");
    const ConvGeom g = conv_geom(l, 1);
    s.w.emplace_back(size_t(g.w_size()), "bench w");
    s.b.emplace_back(size_t(g.m), "bench b");
    s.dw.emplace_back(size_t(g.w_size()), "bench dw");
    s.db.emplace_back(size_t(g.m), "bench db");
  }
  for (size_t i = 0; i < layers.size(); ++i) put(s.w[i], t.w[i]), put(s.b[i], t.b[i]);
  put(s.act[0], t.x);
  replicate(s.act[0].get(), layers.front().in.size(), vb, batch);
  put(s.grad.back(), t.dy);
  replicate(s.grad.back().get(), layers.back().out.size(), vb, batch);
  CUDA_CHECK(cudaDeviceSynchronize());
  return s;
}

// One implementation of a side: forward and backward over the first n images; `inference`,
// when set, a forward that keeps nothing for the backward (the fused pair without z).
struct SideImpl {
  std::string name;
  double tolerance = 0;
  std::function<void(int)> forward, backward, inference;
};

SideImpl layered(const std::string& name, double tolerance, SideBuffers& b,
                 std::vector<std::unique_ptr<ConvImpl>>& impls) {
  SideImpl s{name, tolerance, {}, {}, {}};
  s.forward = [&b, &impls](int n) {
    for (size_t i = 0; i < impls.size(); ++i)
      impls[i]->forward(n, b.act[i].get(), b.w[i].get(), b.b[i].get(), b.act[i + 1].get());
  };
  s.backward = [&b, &impls](int n) {
    for (size_t i = impls.size(); i-- > 0;)
      impls[i]->backward(n, b.act[i].get(), b.act[i + 1].get(), b.grad[i + 1].get(), b.w[i].get(),
                         b.grad[i].get(), b.dw[i].get(), b.db[i].get());
  };
  return s;
}

void poison(DeviceBuffer<float>& d, cudaStream_t s) {  // NaN everywhere: unwritten values fail
  CUDA_CHECK(cudaMemsetAsync(d.get(), 0xff, d.bytes(), s));
}

bench::VariantResult check_and_time(const std::string& side, SideImpl& impl, SideBuffers& b,
                                    const SideTensors& t, const SideOutputs& ref, int vb, int batch,
                                    cudaStream_t s, const bench::TimingOptions& o) {
  bench::VariantResult v;
  v.side = side;
  v.impl = impl.name;
  v.tolerance = impl.tolerance;
  const size_t L = b.layers.size();
  auto images = [&](const Shape& sh) { return size_t(vb) * size_t(sh.size()); };
  double inference_error = 0;
  if (impl.inference) {
    for (size_t i = 1; i <= L; ++i) poison(b.act[i], s);
    impl.inference(vb);
    inference_error = bench::relative_error(download(b.act[L].get(), images(b.layers.back().out)),
                                            ref.act.back());
  }
  for (size_t i = 1; i <= L; ++i) poison(b.act[i], s);
  impl.forward(vb);
  SideOutputs got;
  for (size_t i = 0; i < L; ++i) got.act.push_back(download(b.act[i + 1].get(), images(b.layers[i].out)));
  // The backward runs on the reference's activations (a ReLU rounding to the other side of
  // zero must not flip a gradient) and on fresh dy (it is masked in place).
  for (size_t i = 0; i < L; ++i) put(b.act[i + 1], ref.act[i]);
  put(b.grad[L], t.dy);
  for (size_t i = 0; i < L; ++i) poison(b.grad[i], s), poison(b.dw[i], s), poison(b.db[i], s);
  impl.backward(vb);
  got.dx = download(b.grad[0].get(), images(b.layers.front().in));
  for (size_t i = 0; i < L; ++i) {
    got.dw.push_back(download(b.dw[i].get(), b.dw[i].size()));
    got.db.push_back(download(b.db[i].get(), b.db[i].size()));
  }
  if (o.tamper) o.tamper(side, impl.name, got);
  const bench::Mismatch mm = bench::compare_outputs(got, ref);
  v.error = mm.error, v.worst = mm.tensor;
  if (inference_error > v.error) v.error = inference_error, v.worst = "act (inference)";
  v.valid = v.error <= v.tolerance;
  if (!v.valid) return v;
  const auto& fwd = impl.inference ? impl.inference : impl.forward;
  v.forward_ms = median_ms([&] { fwd(batch); }, s, o);
  v.train_ms = median_ms([&] {
    impl.forward(batch);
    impl.backward(batch);
  }, s, o);
  return v;
}

// Plans one implementation per layer; a kind that cannot take a layer leaves the side out,
// with a note.
bool plan_layers(const std::string& kind, const std::vector<Layer>& layers, int batch,
                 ConvContext& ctx, std::vector<std::unique_ptr<ConvImpl>>& out,
                 std::vector<std::string>& notes) {
  try {
    for (const Layer& l : layers)
      out.push_back(kind == "cudnn" ? make_cudnn_conv(l, batch, true, ctx)
                                    : make_own_conv(l, batch, true, ctx));
    return true;
  } catch (const InputError& e) {
    notes.push_back(kind + " left out for " + layers.front().name() + ": " + e.what());
    out.clear();
    return false;
  }
}

void bench_side(const std::string& side, const std::vector<Layer>& layers,
                bench::ConvBenchResult& r, ConvContext& ctx, const bench::TimingOptions& o) {
  const int batch = r.shape.batch, vb = r.validated_batch;
  const SideTensors t = bench::random_tensors(layers, vb, o.seed + (side == "nxn" ? 0 : 1));
  const SideOutputs ref = bench::reference_outputs(layers, vb, t);
  SideBuffers b = make_buffers(layers, batch, t, vb);
  std::vector<std::unique_ptr<ConvImpl>> cudnn, own;
  const bool with_cudnn = plan_layers("cudnn", layers, batch, ctx, cudnn, r.notes);
  const bool with_own = side == "pair" && plan_layers("own", layers, batch, ctx, own, r.notes);
  size_t ws = 1;
  for (auto* v : {&cudnn, &own})
    for (auto& impl : *v) ws = std::max(ws, impl->workspace_bytes());
  DeviceBuffer<uint8_t> workspace(ws, "bench workspace");
  ctx.workspace = workspace.get();
  ctx.workspace_bytes = workspace.bytes();

  std::vector<SideImpl> impls;
  if (with_cudnn)
    impls.push_back(layered("cudnn", o.tf32 ? kTf32Tolerance : kCudnnTolerance, b, cudnn));
  if (with_own) {
    impls.push_back(layered("own", kOwnTolerance, b, own));
    const ConvGeom gv = conv_geom(layers[0], batch), gh = conv_geom(layers[1], batch);
    if (split_pair_supports(gv, gh)) {
      SideImpl fused = layered("own-fused", kOwnTolerance, b, own);  // own backward
      auto run = [&b, &layers, &ctx](int n, bool keep_z) {
        split_pair_forward(conv_geom(layers[0], n), conv_geom(layers[1], n), b.act[0].get(),
                           b.w[0].get(), b.b[0].get(), true, b.w[1].get(), b.b[1].get(), true,
                           keep_z ? b.act[1].get() : nullptr, b.act[2].get(), ctx.stream);
      };
      fused.forward = [run](int n) { run(n, true); };
      fused.inference = [run](int n) { run(n, false); };
      impls.push_back(fused);
    } else {
      r.notes.push_back("own-fused left out: m·width too large for one band of rows");
    }
  }
  for (SideImpl& impl : impls)
    r.variants.push_back(check_and_time(side, impl, b, t, ref, vb, batch, ctx.stream, o));
  ctx.workspace = nullptr;
  ctx.workspace_bytes = 0;
}

}  // namespace

bench::ConvBenchResult bench_conv_cuda(const bench::ConvCase& s, const bench::TimingOptions& o) {
  bench::check_case(s);
  const CudaStatus st = cuda_status();
  if (st.devices.empty()) throw Error("bench --device cuda: no CUDA device: " + st.why_none);
  bench::ConvBenchResult r = bench::new_result(s, "cuda");
  r.description = device_text() + (o.tf32 ? ", TF32 allowed" : ", float32");
  r.validated_batch = bench::validation_batch(s, 1);
  Stream stream = new_stream();
  CudnnHandle cudnn = new_cudnn(stream);
  ConvContext ctx;
  ctx.cudnn = cudnn;
  ctx.stream = stream;
  ctx.tf32 = o.tf32;
  bench_side("nxn", bench::nxn_layers(s), r, ctx, o);
  bench_side("pair", bench::pair_layers(s), r, ctx, o);
  return r;
}

}  // namespace splitconv::gpu
