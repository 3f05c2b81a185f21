// Shape inference and the parameter slots of a model (docs/design.md, Data flow and Numeric
// conventions).
#include "splitconv/model.h"

#include <algorithm>
#include <cmath>

#include "splitconv/error.h"
#include "splitconv/format.h"
#include "splitconv/random.h"

namespace splitconv {
namespace {

std::string hwc(const Shape& s) {
  return std::to_string(s.h) + "x" + std::to_string(s.w) + "x" + std::to_string(s.c);
}

[[noreturn]] void misfit(const Spec& spec, const LayerSpec& l, const Shape& in,
                         const std::string& what) {
  throw InputError(spec.source + ":" + std::to_string(l.line) + ": layer " + l.name + " (" +
                   to_string(l.kind) + ") does not fit its input " + hwc(in) + ": " + what);
}

std::string elements(int64_t n) { return thousands(n) + " elements (" + bytes_text(n * 4) + ")"; }

// A size past the limits (docs/design.md, Size limits); `n` < 0 means past int64.
[[noreturn]] void too_big(const Spec& spec, const LayerSpec& l, const Shape& in,
                          const std::string& what, int64_t n) {
  throw InputError(spec.source + ":" + std::to_string(l.line) + ": layer " + l.name + " (" +
                   to_string(l.kind) + ") on input " + hwc(in) + ": " + what + " is " +
                   (n < 0 ? std::string("past 2^63") : elements(n)) + ", over the limit of " +
                   thousands(kMaxTensor) + " elements per tensor");
}

// Product of the dimensions when it is within kMaxTensor, else -1.
int64_t checked_size(std::initializer_list<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    n = product_within(n, d, kMaxTensor);
    if (n < 0) return -1;
  }
  return n;
}

int64_t checked_sum(const Spec& spec, const LayerSpec& l, const Shape& in, const char* what,
                    int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum))
    throw InputError(spec.source + ":" + std::to_string(l.line) + ": layer " + l.name +
                     " on input " + hwc(in) + ": the model's " + what + " are past 2^63");
  return sum;
}

int add_slot(Model& m, const std::string& name, std::vector<int64_t> shape) {
  ParamSlot slot;
  slot.name = name;
  slot.size = 1;
  for (auto d : shape) slot.size *= d;  // bounded: the caller checked it against kMaxTensor
  slot.shape = std::move(shape);
  slot.offset = m.param_floats;
  m.param_floats += (slot.size + kParamAlign - 1) / kParamAlign * kParamAlign;
  m.slots.push_back(std::move(slot));
  return int(m.slots.size()) - 1;
}

void conv_layer(const Spec& spec, Model& m, Layer& L) {
  const auto& l = L.spec;
  const Shape& in = L.in;
  L.stride = l.stride;
  if (l.padding == Padding::Valid && (l.kh > in.h || l.kw > in.w))
    misfit(spec, l, in, "kernel " + std::to_string(l.kh) + "x" + std::to_string(l.kw) +
                            " is larger than the map (valid padding)");
  int oh = conv_out_size(in.h, l.kh, l.stride, l.padding);
  int ow = conv_out_size(in.w, l.kw, l.stride, l.padding);
  // Each side is at most kMaxDim (the spec's limit), so oh·ow·m cannot pass int64.
  if (checked_size({oh, ow, l.units}) < 0)
    too_big(spec, l, in,
            "its output " + std::to_string(oh) + "x" + std::to_string(ow) + "x" +
                std::to_string(l.units),
            int64_t(oh) * ow * l.units);
  const int64_t weights = checked_size({l.units, in.c, l.kh, l.kw});
  if (weights < 0) {
    int64_t n = -1;
    if (product_within(product_within(product_within(l.units, in.c, INT64_MAX), l.kh, INT64_MAX),
                       l.kw, INT64_MAX) >= 0)
      n = int64_t(l.units) * in.c * l.kh * l.kw;
    too_big(spec, l, in,
            "its weight [" + std::to_string(l.units) + "," + std::to_string(in.c) + "," +
                std::to_string(l.kh) + "," + std::to_string(l.kw) + "]",
            n);
  }
  if (l.padding == Padding::Same) {
    // TensorFlow's split: the odd pixel of padding goes to the bottom/right.
    int ph = std::max((oh - 1) * l.stride + l.kh - in.h, 0);
    int pw = std::max((ow - 1) * l.stride + l.kw - in.w, 0);
    L.pad_top = ph / 2, L.pad_bottom = ph - ph / 2;
    L.pad_left = pw / 2, L.pad_right = pw - pw / 2;
  }
  L.out = {oh, ow, l.units};
  L.weight = add_slot(m, l.name + ".weight", {l.units, in.c, l.kh, l.kw});
  L.bias = add_slot(m, l.name + ".bias", {l.units});
  L.params = weights + l.units;
  // MACs: Hout·Wout·m·kh·kw·c, the output's size times the weights per filter: both factors
  // are within kMaxTensor, so the product is below 2^62.
  L.macs = int64_t(oh) * ow * l.units * (weights / l.units);
}

}  // namespace

int conv_out_size(int in, int k, int stride, Padding pad) {
  if (pad == Padding::Same) return (in + stride - 1) / stride;
  return in < k ? 0 : (in - k) / stride + 1;
}

int64_t product_within(int64_t a, int64_t b, int64_t limit) {
  int64_t p = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &p) || p > limit) return -1;
  return p;
}

int64_t Model::max_activation() const {
  int64_t best = input.size();
  for (const auto& l : layers) best = std::max(best, l.out.size());
  return best;
}

Model build_model(const Spec& spec) {
  Model m;
  m.spec = spec;
  m.input = {spec.in_h, spec.in_w, spec.in_c};
  // The spec bounds each side by kMaxDim, so the product cannot pass int64.
  if (checked_size({spec.in_h, spec.in_w, spec.in_c}) < 0)
    throw InputError(spec.source + ":" + std::to_string(spec.input_line) + ": input " +
                     hwc(m.input) + " is " + elements(m.input.size()) +
                     " per image, over the limit of " + thousands(kMaxTensor) +
                     " elements per tensor");
  Shape cur = m.input;
  bool flat = false;
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    Layer L;
    L.spec = spec.layers[i];
    L.in = cur;
    const auto& l = L.spec;
    switch (l.kind) {
      case LayerKind::Conv:
        if (flat) misfit(spec, l, cur, "a convolution after flatten");
        conv_layer(spec, m, L);
        break;
      case LayerKind::MaxPool:
        if (flat) misfit(spec, l, cur, "a pool after flatten");
        if (l.kh > cur.h || l.kw > cur.w)
          misfit(spec, l, cur, "pool " + std::to_string(l.kh) + "x" + std::to_string(l.kw) +
                                   " is larger than the map");
        L.stride = l.stride;
        L.out = {(cur.h - l.kh) / l.stride + 1, (cur.w - l.kw) / l.stride + 1, cur.c};
        break;
      case LayerKind::Flatten:
        if (flat) misfit(spec, l, cur, "flatten twice");
        L.out = {1, 1, int(cur.size())};  // every activation is within kMaxTensor
        flat = true;
        break;
      case LayerKind::Dense:
        if (!flat) misfit(spec, l, cur, "dense before flatten (add a 'flatten' line)");
        L.out = {1, 1, l.units};
        if (checked_size({l.units, cur.c}) < 0)
          too_big(spec, l, cur,
                  "its weight [" + std::to_string(l.units) + "," + std::to_string(cur.c) + "]",
                  int64_t(l.units) * cur.c);
        L.weight = add_slot(m, l.name + ".weight", {l.units, cur.c});
        L.bias = add_slot(m, l.name + ".bias", {l.units});
        L.params = int64_t(l.units) * (cur.c + 1);
        L.macs = int64_t(l.units) * cur.c;  // in·out
        break;
    }
    if (l.activation == Activation::Softmax && i + 1 != spec.layers.size())
      misfit(spec, l, cur, "softmax is only allowed on the last layer");
    m.total_params = checked_sum(spec, l, cur, "parameters", m.total_params, L.params);
    m.total_macs = checked_sum(spec, l, cur, "MACs", m.total_macs, L.macs);
    cur = L.out;
    m.layers.push_back(L);
  }
  const Layer& last = m.layers.back();
  if (last.kind() != LayerKind::Dense)
    throw InputError(spec.source + ":" + std::to_string(last.spec.line) + ": the last layer (" +
                     last.name() + ") must be dense: its units are the classes");
  if (last.spec.activation == Activation::Relu)
    throw InputError(spec.source + ":" + std::to_string(last.spec.line) + ": the last layer (" +
                     last.name() + ") gives the logits: use softmax or none, not relu");
  if (last.out.c < 2)
    throw InputError(spec.source + ":" + std::to_string(last.spec.line) + ": the last layer (" +
                     last.name() + ") needs at least 2 classes");
  m.classes = last.out.c;
  return m;
}

std::vector<float> init_parameters(const Model& model, uint64_t seed) {
  std::vector<float> params(size_t(model.param_floats), 0.0f);
  Rng rng(seed ^ 0x6A09E667F3BCC908ull);
  for (const auto& l : model.layers) {
    if (l.weight < 0) continue;
    const ParamSlot& w = model.slots[size_t(l.weight)];
    // Glorot uniform: limit √(6/(fan_in+fan_out)); conv fans count kh·kw
    double fan_in, fan_out;
    if (l.kind() == LayerKind::Conv) {
      fan_in = double(l.in.c) * l.spec.kh * l.spec.kw;
      fan_out = double(l.out.c) * l.spec.kh * l.spec.kw;
    } else {
      fan_in = double(l.in.c);
      fan_out = double(l.out.c);
    }
    float limit = float(std::sqrt(6.0 / (fan_in + fan_out)));
    for (int64_t i = 0; i < w.size; ++i) params[size_t(w.offset + i)] = rng.uniform(-limit, limit);
  }
  return params;
}

}  // namespace splitconv
