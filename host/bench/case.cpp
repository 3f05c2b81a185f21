// One benchmark case: the n×n layer and its pair as the backends see them (shaped by
// build_model), random inputs, the plain-CPU reference every variant is checked against, and
// the comparison.
#include <algorithm>
#include <cmath>

#include "cpu/cpu_ops.h"
#include "splitconv/bench.h"
#include "splitconv/error.h"
#include "splitconv/random.h"
#include "splitconv/spec.h"

namespace splitconv::bench {
namespace {

// The reference of a validated batch stays under this many MACs (~1 s single-threaded even on
// a slow core); bigger cases are checked on fewer images.
constexpr double kReferenceMacs = 2e9;

std::vector<float> uniform(Rng& rng, int64_t count, float limit) {
  std::vector<float> v(static_cast<size_t>(count));
  for (float& f : v) f = rng.uniform(-limit, limit);
  return v;
}

int64_t per_image_macs(const std::vector<Layer>& side) {
  int64_t macs = 0;
  for (const Layer& l : side) macs += l.macs;
  return macs;
}

}  // namespace

LayerSpec conv_spec(const std::string& name, int units, int kh, int kw, Padding padding) {
  LayerSpec l;
  l.kind = LayerKind::Conv;
  l.name = name;
  l.line = 1;
  l.units = units;
  l.kh = kh, l.kw = kw;
  l.padding = padding;
  l.activation = Activation::Relu;
  return l;
}

Model conv_model(Shape input, std::vector<LayerSpec> convs) {
  Spec spec;
  spec.source = "bench";
  spec.in_h = input.h, spec.in_w = input.w, spec.in_c = input.c;
  spec.layers = std::move(convs);
  const size_t count = spec.layers.size();
  LayerSpec pool, flat, head;
  pool.kind = LayerKind::MaxPool, pool.name = "pool";
  pool.kh = pool.kw = pool.stride = 1;  // first a 1×1 pool, to learn the convs' output map
  flat.kind = LayerKind::Flatten, flat.name = "flatten";
  head.kind = LayerKind::Dense, head.name = "head", head.units = 2;
  spec.layers.push_back(pool);
  spec.layers.push_back(flat);
  spec.layers.push_back(head);
  const Shape out = build_model(spec).layers[count - 1].out;
  spec.layers[count].kh = out.h, spec.layers[count].kw = out.w;
  spec.layers[count].stride = out.h;
  Model m = build_model(spec);
  if (m.layers.size() != count + 3 || m.layers[count].out.size() != out.c)
    throw Error("bench: the side model's head is not a global max-pool");
  return m;
}

std::vector<Layer> conv_layers(const Model& m) {
  return {m.layers.begin(), m.layers.end() - 3};  // the head's pool, flatten and dense left out
}

std::string describe(const ConvCase& s) {
  return std::to_string(s.kh) + "x" + std::to_string(s.kw) + " " + std::to_string(s.c) + "->" +
         std::to_string(s.m) + " K=" + std::to_string(s.k()) + " on " + std::to_string(s.h) + "x" +
         std::to_string(s.w) + ", batch " + std::to_string(s.batch) + ", " + to_string(s.padding);
}

void check_case(const ConvCase& s) {
  if (s.kh < 2 || s.kw < 2)
    throw InputError("bench: the kernel must be at least 2x2 to split, got " + std::to_string(s.kh) +
                     "x" + std::to_string(s.kw));
  if (s.c < 1 || s.m < 1 || s.h < 1 || s.w < 1 || s.batch < 1 || s.rank < 0)
    throw InputError("bench: channels, filters, map, batch must be positive and the rank not negative");
  if (s.padding == Padding::Valid && (s.kh > s.h || s.kw > s.w))
    throw InputError("bench: a valid " + std::to_string(s.kh) + "x" + std::to_string(s.kw) +
                     " kernel does not fit a " + std::to_string(s.h) + "x" + std::to_string(s.w) +
                     " map");
}

Model nxn_model(const ConvCase& s) {
  check_case(s);
  return conv_model({s.h, s.w, s.c}, {conv_spec("nxn", s.m, s.kh, s.kw, s.padding)});
}

Model pair_model(const ConvCase& s) {
  check_case(s);
  return conv_model({s.h, s.w, s.c}, {conv_spec("pair_v", s.k(), s.kh, 1, s.padding),
                                      conv_spec("pair_h", s.m, 1, s.kw, s.padding)});
}

std::vector<Layer> nxn_layers(const ConvCase& s) { return conv_layers(nxn_model(s)); }
std::vector<Layer> pair_layers(const ConvCase& s) { return conv_layers(pair_model(s)); }

ConvCase layer_case(const Layer& l, int batch, int rank) {
  ConvCase s;
  s.kh = l.spec.kh, s.kw = l.spec.kw;
  s.c = l.in.c, s.m = l.out.c;
  s.rank = rank > 0 ? rank : 0;
  s.h = l.in.h, s.w = l.in.w;
  s.batch = batch;
  s.padding = l.spec.padding;
  return s;
}

int validation_batch(const ConvCase& s, int at_least) {
  const double per_image =
      3.0 * double(per_image_macs(nxn_layers(s)) + per_image_macs(pair_layers(s)));
  const int fit = int(std::clamp(std::floor(kReferenceMacs / per_image), 1.0, double(s.batch)));
  return std::max(fit, std::min(s.batch, at_least));
}

SideTensors random_tensors(const std::vector<Layer>& side, int batch, uint64_t seed) {
  Rng rng(seed);
  SideTensors t;
  t.x = uniform(rng, int64_t(batch) * side.front().in.size(), 1.0f);
  for (const Layer& l : side) {
    // Scaled by the fan-in, so every layer's outputs stay near the size of its inputs.
    const float limit = 1.0f / std::sqrt(float(l.in.c * l.spec.kh * l.spec.kw));
    const ConvGeom g = conv_geom(l, 1);
    t.w.push_back(uniform(rng, g.w_size(), limit));
    t.b.push_back(uniform(rng, g.m, limit));
  }
  t.dy = uniform(rng, int64_t(batch) * side.back().out.size(), 1.0f);
  return t;
}

SideOutputs reference_outputs(const std::vector<Layer>& side, int batch, const SideTensors& in) {
  const size_t layers = side.size();
  int64_t ws = 0;
  for (const Layer& l : side) ws = std::max(ws, cpu::conv_workspace(conv_geom(l, 1)));
  std::vector<float> workspace(static_cast<size_t>(ws));
  SideOutputs out;
  out.act.resize(layers);
  out.dw.resize(layers);
  out.db.resize(layers);
  const float* x = in.x.data();
  for (size_t i = 0; i < layers; ++i) {
    const ConvGeom g = conv_geom(side[i], batch);
    out.act[i].resize(size_t(g.y_size()));
    cpu::conv_forward(g, x, in.w[i].data(), in.b[i].data(), out.act[i].data(), workspace.data());
    cpu::relu_forward(g.y_size(), out.act[i].data());
    x = out.act[i].data();
  }
  std::vector<float> grad(in.dy.begin(), in.dy.begin() + conv_geom(side.back(), batch).y_size());
  for (size_t i = layers; i-- > 0;) {
    const ConvGeom g = conv_geom(side[i], batch);
    const float* input = i ? out.act[i - 1].data() : in.x.data();
    cpu::relu_backward(g.y_size(), out.act[i].data(), grad.data());
    out.dw[i].resize(size_t(g.w_size()));
    out.db[i].resize(size_t(g.m));
    cpu::conv_backward_filter(g, input, grad.data(), out.dw[i].data(), out.db[i].data(),
                              workspace.data());
    std::vector<float> prev(size_t(g.x_size()));
    cpu::conv_backward_data(g, grad.data(), in.w[i].data(), prev.data(), workspace.data());
    grad = std::move(prev);
  }
  out.dx = std::move(grad);
  return out;
}

double relative_error(std::span<const float> got, std::span<const float> ref) {
  if (got.size() != ref.size()) return INFINITY;
  double diff = 0, scale = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::abs(double(got[i]) - double(ref[i]));
    diff = std::isnan(d) ? INFINITY : std::max(diff, d);
    scale = std::max(scale, std::abs(double(ref[i])));
  }
  return scale > 0 ? diff / scale : diff;
}

Mismatch compare_outputs(const SideOutputs& got, const SideOutputs& ref) {
  Mismatch worst;
  auto check = [&](const std::vector<float>* g, const std::vector<float>& r, std::string name) {
    const double e = g ? relative_error(*g, r) : INFINITY;
    if (worst.tensor.empty() || e > worst.error) worst = {e, std::move(name)};
  };
  auto at = [](const std::vector<std::vector<float>>& v, size_t i) {
    return i < v.size() ? &v[i] : nullptr;
  };
  for (size_t i = 0; i < ref.act.size(); ++i) check(at(got.act, i), ref.act[i], "act" + std::to_string(i));
  check(&got.dx, ref.dx, "dx");
  for (size_t i = 0; i < ref.dw.size(); ++i) check(at(got.dw, i), ref.dw[i], "dw" + std::to_string(i));
  for (size_t i = 0; i < ref.db.size(); ++i) check(at(got.db, i), ref.db[i], "db" + std::to_string(i));
  return worst;
}

TimingOptions default_timing(const std::string& device) {
  TimingOptions o;
  if (device == "cuda") {
    o.warmups = 3;
    o.runs = 20;
    o.budget_s = 0.5;
    o.min_sample_ms = 0.5;
  }
  return o;
}

}  // namespace splitconv::bench
