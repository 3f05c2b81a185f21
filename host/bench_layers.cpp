// `bench layers` on the CPU: where a training step's time goes. Each layer runs the ops the CPU
// backend runs for it (host/cpu/cpu_backend.cpp: forward, backward), on the same buffers and
// the same batch slices per thread, timed one layer at a time; the backend's own train_step
// is timed in the same run, so the table shows what timing layers one by one adds.
#include <Eigen/Core>
#include <cstdio>
#include <numeric>

#include "bench_internal.h"
#include "cpu/aligned.h"
#include "cpu/cpu_ops.h"
#include "cpu/workers.h"
#include "splitconv/backend.h"
#include "splitconv/error.h"
#include "splitconv/random.h"

namespace splitconv::bench {
namespace {

using cpu::AlignedFloats;

// The buffers of CpuBackend::plan: per layer output and gradient (a flatten is a view of its
// input), pool arg-maxes, per-thread workspaces and gradient buffers.
struct CpuLayerState {
  std::vector<AlignedFloats> store;
  std::vector<float*> act, grad;
  std::vector<std::vector<int32_t>> argmax;
  std::vector<bool> need_dx;
  std::vector<AlignedFloats> workspace, grads;
  AlignedFloats params, m, v;
  std::vector<uint8_t> labels;

  CpuLayerState(const Model& model, int batch, int threads) {
    const size_t layers = model.layers.size();
    store.reserve(2 * layers + 2);
    auto add = [&](const Shape& s) {
      store.emplace_back(size_t(batch) * size_t(s.size()));
      return store.back().data();
    };
    act.push_back(add(model.input));
    grad.push_back(add(model.input));
    argmax.resize(layers);
    int64_t ws = 0;
    bool params_before = false;
    for (const Layer& l : model.layers) {
      need_dx.push_back(params_before);
      params_before = params_before || l.weight >= 0;
      if (l.kind() == LayerKind::Flatten) {
        act.push_back(act.back());
        grad.push_back(grad.back());
        continue;
      }
      const size_t i = act.size() - 1;  // this layer's index
      act.push_back(add(l.out));
      grad.push_back(add(l.out));
      if (l.kind() == LayerKind::MaxPool) argmax[i].resize(size_t(batch) * size_t(l.out.size()));
      if (l.kind() == LayerKind::Conv) ws = std::max(ws, cpu::conv_workspace(conv_geom(l, 1)));
    }
    workspace.assign(size_t(threads), AlignedFloats(size_t(ws)));
    grads.assign(size_t(threads), AlignedFloats(size_t(model.param_floats), 0.0f));
    const std::vector<float> init = init_parameters(model, 1);
    params.assign(init.begin(), init.end());
    m.assign(params.size(), 0.0f);
    v.assign(params.size(), 0.0f);
    labels.assign(size_t(batch), 0);
  }
};

float* slot(const Model& model, int index, AlignedFloats& flat) {
  return flat.data() + model.slots[size_t(index)].offset;
}

}  // namespace

ImageSet random_images(const Model& model, int64_t count, uint64_t seed) {
  Rng rng(seed);
  ImageSet set;
  set.count = count;
  set.h = model.input.h, set.w = model.input.w, set.c = model.input.c;
  set.pixels.resize(size_t(count * set.image_size()));
  for (uint8_t& p : set.pixels) p = uint8_t(rng.below(256));
  set.labels.resize(size_t(count));
  for (uint8_t& l : set.labels) l = uint8_t(rng.below(uint64_t(model.classes)));
  return set;
}

LayerTime layer_row(const Layer& l) {
  LayerTime t;
  t.name = l.name();
  t.kind = to_string(l.kind());
  if (l.kind() == LayerKind::Conv || l.kind() == LayerKind::MaxPool) {
    char window[32];
    std::snprintf(window, sizeof window, " %dx%d", l.spec.kh, l.spec.kw);
    t.kind += window;
  }
  t.out = l.out;
  t.params = l.params;
  t.macs = l.macs;
  return t;
}

LayersResult bench_layers_cpu(const Model& model, int batch, const TimingOptions& o) {
  if (batch < 1) throw InputError("--batch must be positive");
  const int threads = cpu_threads(o);
  Eigen::initParallel();
  cpu::Workers workers(threads);
  CpuLayerState st(model, batch, threads);
  const ImageSet data = random_images(model, batch, o.seed);
  std::vector<int32_t> order(static_cast<size_t>(batch));
  std::iota(order.begin(), order.end(), 0);
  const int64_t image = model.input.size();
  const auto& L = model.layers;

  LayersResult r;
  r.model = model.spec.source;
  r.device = "cpu";
  r.description = "CPU, " + std::to_string(threads) + (threads == 1 ? " thread" : " threads");
  r.batch = batch;

  LayerTime input{"input", "gather", model.input};
  input.forward_ms = median_ms([&] {
    cpu::for_slices(workers, batch, [&](int lo, int n, int) {
      cpu::gather_batch(data.pixels.data(), image, order.data() + lo, n, st.act[0] + lo * image);
      for (int i = 0; i < n; ++i) st.labels[size_t(lo + i)] = data.labels[size_t(order[size_t(lo + i)])];
    });
  }, o);
  r.rows.push_back(input);

  // A flatten is a view: the backend runs nothing for it (unless it carries a ReLU).
  auto idle = [](const Layer& l) {
    return l.kind() == LayerKind::Flatten && l.spec.activation != Activation::Relu;
  };
  for (size_t i = 0; i < L.size(); ++i) {
    const Layer& l = L[i];
    LayerTime row = layer_row(l);
    if (idle(l)) {
      r.rows.push_back(row);
      continue;
    }
    row.forward_ms = median_ms([&] {
      cpu::for_slices(workers, batch, [&](int lo, int n, int t) {
        const float* x = st.act[i] + int64_t(lo) * l.in.size();
        float* y = st.act[i + 1] + int64_t(lo) * l.out.size();
        switch (l.kind()) {
          case LayerKind::Conv:
            cpu::conv_forward(conv_geom(l, n), x, slot(model, l.weight, st.params),
                              slot(model, l.bias, st.params), y, st.workspace[size_t(t)].data());
            break;
          case LayerKind::MaxPool:
            cpu::maxpool_forward(pool_geom(l, n), x, y, st.argmax[i].data() + int64_t(lo) * l.out.size());
            break;
          case LayerKind::Flatten:
            break;
          case LayerKind::Dense:
            cpu::dense_forward(dense_geom(l, n), x, slot(model, l.weight, st.params),
                               slot(model, l.bias, st.params), y);
            break;
        }
        if (l.spec.activation == Activation::Relu) cpu::relu_forward(int64_t(n) * l.out.size(), y);
      });
    }, o);
    r.rows.push_back(row);
  }

  LayerTime loss{"loss", "softmax + xent", {1, 1, model.classes}};
  loss.forward_ms = median_ms([&] {
    cpu::for_slices(workers, batch, [&](int lo, int n, int) {
      double sum = 0;
      int64_t correct = 0;
      cpu::softmax_xent(n, model.classes, st.act.back() + int64_t(lo) * model.classes,
                        st.labels.data() + lo, st.grad.back() + int64_t(lo) * model.classes,
                        1.0f / float(batch), &sum, &correct);
    });
  }, o);

  for (size_t i = L.size(); i-- > 0;) {
    const Layer& l = L[i];
    if (idle(l)) continue;
    r.rows[i + 1].backward_ms = median_ms([&] {
      cpu::for_slices(workers, batch, [&](int lo, int n, int t) {
        const float* x = st.act[i] + int64_t(lo) * l.in.size();
        const float* y = st.act[i + 1] + int64_t(lo) * l.out.size();
        float* dy = st.grad[i + 1] + int64_t(lo) * l.out.size();
        float* dx = st.need_dx[i] ? st.grad[i] + int64_t(lo) * l.in.size() : nullptr;
        AlignedFloats& g = st.grads[size_t(t)];
        float* ws = st.workspace[size_t(t)].data();
        if (l.spec.activation == Activation::Relu) cpu::relu_backward(int64_t(n) * l.out.size(), y, dy);
        switch (l.kind()) {
          case LayerKind::Conv:
            cpu::conv_backward_filter(conv_geom(l, n), x, dy, slot(model, l.weight, g),
                                      slot(model, l.bias, g), ws);
            if (dx) cpu::conv_backward_data(conv_geom(l, n), dy, slot(model, l.weight, st.params), dx, ws);
            break;
          case LayerKind::MaxPool:
            if (dx)
              cpu::maxpool_backward(pool_geom(l, n), dy, st.argmax[i].data() + int64_t(lo) * l.out.size(), dx);
            break;
          case LayerKind::Flatten:
            break;
          case LayerKind::Dense:
            cpu::dense_backward(dense_geom(l, n), x, slot(model, l.weight, st.params), dy, dx,
                                slot(model, l.weight, g), slot(model, l.bias, g));
            break;
        }
      });
    }, o);
  }
  r.rows.push_back(loss);

  // As train_step ends: the per-thread gradients summed in thread order, then one Adam step.
  LayerTime update{"update", "grad sum + adam", {0, 0, 0}};
  update.params = model.total_params;
  const int parts = std::min(threads, batch);
  update.backward_ms = median_ms([&] {
    float* sum = st.grads[0].data();
    for (int p = 1; p < parts; ++p)
      for (size_t j = 0; j < st.grads[size_t(p)].size(); ++j) sum[j] += st.grads[size_t(p)][j];
    cpu::adam(int64_t(st.params.size()), st.params.data(), sum, st.m.data(), st.v.data(), 1e-4f,
              0.9f, 0.999f, 1e-7f);
  }, o);
  r.rows.push_back(update);

  r.handoff_ms = median_ms([&] { cpu::for_slices(workers, batch, [](int, int, int) {}); }, o);

  BackendOptions bo;
  bo.threads = threads;
  auto backend = make_cpu_backend(bo);
  backend->plan(model, batch);
  backend->upload(Split::Train, data);
  backend->set_parameters(init_parameters(model, 1));
  backend->set_order(order);
  int64_t t = 0;
  r.step_ms = median_ms([&] { backend->train_step(0, batch, ++t, Hyper{}); }, o);
  return r;
}

}  // namespace splitconv::bench
