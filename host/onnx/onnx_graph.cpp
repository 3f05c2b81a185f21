// Analysis of any ONNX CNN graph (splitconv/onnx.h; docs/design.md, Real architectures): the
// shapes of every value inferred node by node from the image input, every conv's geometry,
// parameters and MACs. Nothing here runs the graph; it need not hold its weights.
//
// The file is untrusted as for import: it is read and its tensors checked by onnx_read.h, and
// every attribute and shape is checked before it is used, in 64-bit arithmetic.
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>

#include "onnx_read.h"
#include "splitconv/error.h"
#include "splitconv/onnx.h"

namespace splitconv {
namespace {

namespace pb = ONNX_NAMESPACE;
using namespace onnx_detail;

// Small integer tensors (shapes, axes, pads) keep their values; a flatten's shape arithmetic
// (Shape, Gather, Unsqueeze, Concat) and Reshape's target need them.
constexpr int64_t kMaxIntValues = 64;

struct Value {
  enum Kind { Activation, Weight, Constant } kind = Activation;
  std::vector<int64_t> dims;  // activations: the batch first
  std::optional<std::vector<int64_t>> ints;
  bool is_float = true;
};

class GraphReader : public NodeReader {
 public:
  explicit GraphReader(std::string path) : NodeReader(std::move(path)) {}
  GraphAnalysis run();

 private:

  void read_inputs();
  void node(const pb::NodeProto& n);

  // --- values ---
  const Value& in(const pb::NodeProto& n, int i) const;
  bool has_in(const pb::NodeProto& n, int i) const {
    return n.input_size() > i && !n.input(i).empty();
  }
  const Value& activation(const pb::NodeProto& n, int i, size_t rank) const;
  std::vector<int64_t> ints_of(const pb::NodeProto& n, int i, const char* role) const;
  void set(const pb::NodeProto& n, int i, Value v);
  std::vector<int64_t> checked_dims(const pb::NodeProto& n, std::vector<int64_t> dims) const;
  int64_t per_image(const std::vector<int64_t>& dims) const;

  // --- attributes ---
  std::vector<int64_t> spatial(const pb::NodeProto& n, const char* name, int64_t def,
                               int64_t min) const;
  int64_t axis(const pb::NodeProto& n, int64_t a, size_t rank) const;

  // --- ops ---
  void conv(const pb::NodeProto& n);
  void pool(const pb::NodeProto& n);
  void global_pool(const pb::NodeProto& n);
  void reduce(const pb::NodeProto& n);
  void broadcast(const pb::NodeProto& n);
  void gemm(const pb::NodeProto& n);
  void matmul(const pb::NodeProto& n);
  void reshape(const pb::NodeProto& n);
  void concat(const pb::NodeProto& n);
  void pad(const pb::NodeProto& n);
  void split(const pb::NodeProto& n);
  void squeeze(const pb::NodeProto& n, bool un);
  // Adds a layer row for a node that reads learnable tensors (their elements counted once)
  // or does MACs.
  GraphLayer& layer(const pb::NodeProto& n, const std::vector<int>& learnable, int64_t macs);

  pb::ModelProto model_;
  int opset_ = 0;
  int64_t batch_ = 1;
  std::map<std::string, Value> values_;
  std::set<std::string> counted_;  // learnable tensors already counted
  GraphAnalysis out_;
};

// --- values ---

const Value& GraphReader::in(const pb::NodeProto& n, int i) const {
  if (!has_in(n, i)) fail(n, "has no input " + std::to_string(i));
  auto it = values_.find(n.input(i));
  if (it == values_.end()) fail(n, "reads " + n.input(i) + ", which no earlier node produces");
  return it->second;
}

const Value& GraphReader::activation(const pb::NodeProto& n, int i, size_t rank) const {
  const Value& v = in(n, i);
  if (rank && v.dims.size() != rank)
    fail(n, "its input " + n.input(i) + " is " + ints_text(v.dims) + ", not " +
                std::to_string(rank) + "-D" + (rank == 4 ? " NCHW (2-D ops only)" : ""));
  return v;
}

std::vector<int64_t> GraphReader::ints_of(const pb::NodeProto& n, int i, const char* role) const {
  const Value& v = in(n, i);
  if (!v.ints)
    fail(n, std::string("its ") + role + " " + n.input(i) + " is not a constant list of integers");
  return *v.ints;
}

std::vector<int64_t> GraphReader::checked_dims(const pb::NodeProto& n,
                                               std::vector<int64_t> dims) const {
  int64_t count = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 1 || dims[i] > kMaxTensor)
      fail(n, "its output would be " + ints_text(dims) + ": dimension " + std::to_string(i) +
                  " outside 1 to " + std::to_string(kMaxTensor));
    count = product_within(count, dims[i], INT64_MAX);
    if (count < 0) fail(n, "its output " + ints_text(dims) + " is too large");
  }
  return dims;
}

// Elements per image of an activation (the batch is its first dimension).
int64_t GraphReader::per_image(const std::vector<int64_t>& dims) const {
  int64_t count = 1;
  for (size_t i = 1; i < dims.size(); ++i) count = product_within(count, dims[i], INT64_MAX);
  return count;
}

void GraphReader::set(const pb::NodeProto& n, int i, Value v) {
  if (n.output_size() <= i || n.output(i).empty()) return;
  const std::string& name = n.output(i);
  if (values_.count(name))
    fail(n, "writes " + name + ", which an earlier node or initializer already defines");
  if (v.kind == Value::Activation) {
    v.dims = checked_dims(n, v.dims);
    if (per_image(v.dims) > kMaxTensor)
      fail(n, "its output " + ints_text(v.dims) + " holds more than " +
                  std::to_string(kMaxTensor) + " elements per image");
  }
  values_[name] = std::move(v);
}

// --- attributes ---

// A per-axis attribute of a 2-D op (kernel_shape, strides, dilations): two entries, each at
// least `min` and at most kMaxDim; `def` fills both when absent.
std::vector<int64_t> GraphReader::spatial(const pb::NodeProto& n, const char* name, int64_t def,
                                          int64_t min) const {
  auto v = attr_ints(n, name);
  if (!v) return {def, def};
  if (v->size() != 2)
    fail(n, std::string(name) + " " + ints_text(*v) + " has " + std::to_string(v->size()) +
                " entries; 2-D ops have 2");
  for (int64_t x : *v)
    if (x < min || x > kMaxDim)
      fail(n, std::string(name) + " " + ints_text(*v) + ": each must be " + std::to_string(min) +
                  " to " + std::to_string(kMaxDim));
  return *v;
}

int64_t GraphReader::axis(const pb::NodeProto& n, int64_t a, size_t rank) const {
  const int64_t r = int64_t(rank);
  if (a < -r || a >= r)
    fail(n, "axis " + std::to_string(a) + " is outside a " + std::to_string(rank) + "-D tensor");
  return a < 0 ? a + r : a;
}

// --- the graph ---

void GraphReader::read_inputs() {
  const pb::GraphProto& g = model_.graph();
  if (g.sparse_initializer_size() > 0) fail("holds sparse initializers; dense tensors only");
  for (const auto& t : g.initializer()) {
    if (t.name().empty()) fail("an initializer has no name");
    if (values_.count(t.name())) fail("two initializers are named " + t.name());
    const TensorInfo info = check_tensor(path_, t.name(), t, "initializer");
    Value v;
    v.kind = Value::Weight;
    v.dims = info.dims;
    v.is_float = t.data_type() == pb::TensorProto::FLOAT;
    if (info.count <= kMaxIntValues) v.ints = tensor_ints(t, info.count);
    values_[t.name()] = std::move(v);
  }
  // The image is the first input that no initializer gives; any further input stands for a
  // weight without its values (a graph exported without its parameters).
  bool image = false;
  for (const auto& in : g.input()) {
    if (values_.count(in.name()) && values_[in.name()].kind == Value::Weight) continue;
    const std::string what = "input " + in.name();
    if (!in.type().has_tensor_type() || !in.type().tensor_type().has_shape())
      fail(what + " has no tensor shape");
    const auto& d = in.type().tensor_type().shape().dim();
    Value v;
    v.is_float = in.type().tensor_type().elem_type() == pb::TensorProto::FLOAT;
    if (!image) {
      if (!v.is_float) fail(what + " (the image) is not float32");
      if (d.size() != 4) fail(what + " (the image) is not 4-D [N, C, H, W]");
      const char* names[4] = {"batch", "channels", "height", "width"};
      for (int i = 0; i < 4; ++i) {
        const bool fixed = d[i].has_dim_value();
        if (i == 0) {
          if (fixed && (d[0].dim_value() < 1 || d[0].dim_value() > kMaxDim))
            fail(what + ": batch " + std::to_string(d[0].dim_value()) + " is outside 1 to " +
                 std::to_string(kMaxDim));
          batch_ = fixed ? d[0].dim_value() : 1;
          v.dims.push_back(batch_);
          continue;
        }
        if (!fixed)
          fail(what + " has no fixed " + names[i] + " (" +
               (d[i].dim_param().empty() ? "?" : d[i].dim_param()) +
               "); export it with a fixed image size");
        if (d[i].dim_value() < 1 || d[i].dim_value() > kMaxDim)
          fail(what + ": " + names[i] + " " + std::to_string(d[i].dim_value()) +
               " is outside 1 to " + std::to_string(kMaxDim));
        v.dims.push_back(d[i].dim_value());
      }
      out_.in_c = v.dims[1], out_.in_h = v.dims[2], out_.in_w = v.dims[3];
      values_[in.name()] = std::move(v);
      image = true;
      continue;
    }
    v.kind = Value::Weight;
    int64_t count = 1;
    for (const auto& dim : d) {
      if (!dim.has_dim_value() || dim.dim_value() < 0)
        fail(what + " has no fixed shape; the graph has one image input, and weights");
      count = product_within(count, dim.dim_value(), kMaxTensor);
      if (count < 0) fail(what + " exceeds " + std::to_string(kMaxTensor) + " elements");
      v.dims.push_back(dim.dim_value());
    }
    values_[in.name()] = std::move(v);
    out_.has_weights = false;
  }
  if (!image) fail("the graph has no input for the image");
}

GraphLayer& GraphReader::layer(const pb::NodeProto& n, const std::vector<int>& learnable,
                               int64_t macs) {
  GraphLayer l;
  l.node = node_name(n);
  l.op = n.op_type();
  l.name = l.node;
  l.macs = macs;
  for (int i : learnable) {
    if (!has_in(n, i)) continue;
    const Value& v = in(n, i);
    if (v.kind != Value::Weight || !v.is_float) continue;
    const std::string& w = n.input(i);
    if (i == learnable.front() && w.size() > 7 && w.ends_with(".weight"))
      l.name = w.substr(0, w.size() - 7);
    if (!counted_.insert(w).second) continue;  // shared: counted where first read
    int64_t count = 1;
    for (int64_t d : v.dims) count *= d;  // within kMaxTensor: checked when read
    l.params += count;
  }
  if (!n.output(0).empty() && values_.count(n.output(0)) &&
      values_[n.output(0)].kind == Value::Activation) {
    const auto& d = values_[n.output(0)].dims;
    l.out.assign(d.begin() + 1, d.end());
  }
  out_.layers.push_back(l);
  return out_.layers.back();
}

void GraphReader::conv(const pb::NodeProto& n) {
  const Value& x = activation(n, 0, 4);
  const Value& w = in(n, 1);
  if (w.kind == Value::Activation) fail(n, "its weight " + n.input(1) + " is computed, not a weight");
  if (w.dims.size() != 4) fail(n, "weight " + n.input(1) + " is " + ints_text(w.dims) + ", not 4-D OIHW");
  for (int64_t d : w.dims)
    if (d < 1 || d > kMaxDim)
      fail(n, "weight " + n.input(1) + " " + ints_text(w.dims) + ": each dimension must be 1 to " +
                  std::to_string(kMaxDim));
  ConvGeometry g;
  g.c = x.dims[1], g.m = w.dims[0], g.kh = w.dims[2], g.kw = w.dims[3];
  g.in_h = x.dims[2], g.in_w = x.dims[3];
  g.groups = attr_int(n, "group").value_or(1);
  if (g.groups < 1 || g.groups > g.c || g.c % g.groups != 0 || g.m % g.groups != 0)
    fail(n, "group " + std::to_string(g.groups) + " does not divide its " + std::to_string(g.c) +
                " input channels and " + std::to_string(g.m) + " filters");
  if (w.dims[1] * g.groups != g.c)
    fail(n, "weight " + n.input(1) + " " + ints_text(w.dims) + " reads " +
                std::to_string(w.dims[1]) + " channels per group but its input has " +
                std::to_string(g.c) + " in " + std::to_string(g.groups) + " group(s)");
  if (auto ks = attr_ints(n, "kernel_shape"); ks && *ks != std::vector<int64_t>{g.kh, g.kw})
    fail(n, "kernel_shape " + ints_text(*ks) + " differs from its weight " + ints_text(w.dims));
  const auto strides = spatial(n, "strides", 1, 1), dil = spatial(n, "dilations", 1, 1);
  g.stride_h = strides[0], g.stride_w = strides[1];
  g.dilation_h = dil[0], g.dilation_w = dil[1];
  const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    // The output is ceil(in / stride); the padding that gives it, the odd pixel at the end
    // (UPPER) or the start (LOWER).
    auto total = [](int64_t in, int64_t k, int64_t s, int64_t d) {
      const int64_t out = (in + s - 1) / s;
      return std::max<int64_t>((out - 1) * s + d * (k - 1) + 1 - in, 0);
    };
    const int64_t th = total(g.in_h, g.kh, g.stride_h, g.dilation_h);
    const int64_t tw = total(g.in_w, g.kw, g.stride_w, g.dilation_w);
    const bool upper = auto_pad == "SAME_UPPER";
    g.pad_top = upper ? th / 2 : th - th / 2, g.pad_bottom = th - g.pad_top;
    g.pad_left = upper ? tw / 2 : tw - tw / 2, g.pad_right = tw - g.pad_left;
  } else if (auto_pad == "NOTSET") {
    const auto pads = attr_ints(n, "pads").value_or(std::vector<int64_t>{0, 0, 0, 0});
    if (pads.size() != 4)
      fail(n, "pads " + ints_text(pads) + " has " + std::to_string(pads.size()) + " entries, not 4");
    for (int64_t p : pads)
      if (p < 0 || p > kMaxDim)
        fail(n, "pads " + ints_text(pads) + ": each must be 0 to " + std::to_string(kMaxDim));
    g.pad_top = pads[0], g.pad_left = pads[1], g.pad_bottom = pads[2], g.pad_right = pads[3];
  } else if (auto_pad != "VALID") {
    fail(n, "auto_pad " + auto_pad + " is not an ONNX padding mode");
  }
  if (g.out_h() < 1 || g.out_w() < 1)
    fail(n, "its " + std::to_string(g.kh) + "x" + std::to_string(g.kw) + " kernel (dilations " +
                ints_text(dil) + ") does not fit its " + std::to_string(g.in_h) + "x" +
                std::to_string(g.in_w) + " input with its pads");
  g.bias = has_in(n, 2);
  if (g.bias) {
    const Value& b = in(n, 2);
    if (b.dims != std::vector<int64_t>{g.m})
      fail(n, "bias " + n.input(2) + " is " + ints_text(b.dims) + ", not [" + std::to_string(g.m) + "]");
  }
  Value y;
  y.dims = {x.dims[0], g.m, g.out_h(), g.out_w()};
  set(n, 0, y);
  int64_t macs = 1;
  for (int64_t f : {g.out_h(), g.out_w(), g.m, g.c / g.groups, g.kh, g.kw})
    macs = product_within(macs, f, INT64_MAX);
  if (macs < 0) fail(n, "its MACs exceed 64 bits");
  GraphLayer& l = layer(n, {1, 2}, macs);
  g.name = l.name;
  l.conv = int(out_.convs.size());
  out_.convs.push_back(g);
}

// MaxPool, AveragePool, LpPool: floor or ceil of (in + pads − span) / stride, plus 1; with
// ceil, a last window that would start in the end padding is dropped (as PyTorch and ONNX
// Runtime do).
void GraphReader::pool(const pb::NodeProto& n) {
  const Value& x = activation(n, 0, 4);
  const auto ks = attr_ints(n, "kernel_shape");
  if (!ks) fail(n, "has no kernel_shape");
  const auto k = spatial(n, "kernel_shape", 1, 1);
  const auto s = spatial(n, "strides", 1, 1), d = spatial(n, "dilations", 1, 1);
  const bool ceil = attr_int(n, "ceil_mode").value_or(0) != 0;
  const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
  std::vector<int64_t> out = x.dims;
  for (int i = 0; i < 2; ++i) {
    const int64_t in = x.dims[size_t(2 + i)];
    int64_t o = 0;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      o = (in + s[size_t(i)] - 1) / s[size_t(i)];
    } else {
      std::vector<int64_t> pads = {0, 0, 0, 0};
      if (auto_pad == "NOTSET") pads = attr_ints(n, "pads").value_or(pads);
      else if (auto_pad != "VALID") fail(n, "auto_pad " + auto_pad + " is not an ONNX padding mode");
      if (pads.size() != 4)
        fail(n, "pads " + ints_text(pads) + " has " + std::to_string(pads.size()) + " entries, not 4");
      for (int64_t p : pads)
        if (p < 0 || p > kMaxDim) fail(n, "pads " + ints_text(pads) + ": each must be 0 to " + std::to_string(kMaxDim));
      const int64_t span = d[size_t(i)] * (k[size_t(i)] - 1) + 1;
      const int64_t room = in + pads[size_t(i)] + pads[size_t(i + 2)] - span;
      if (room < 0) fail(n, "its window " + ints_text(k) + " does not fit its input " + ints_text(x.dims));
      o = (ceil ? (room + s[size_t(i)] - 1) / s[size_t(i)] : room / s[size_t(i)]) + 1;
      if (ceil && (o - 1) * s[size_t(i)] >= in + pads[size_t(i)]) --o;
    }
    out[size_t(2 + i)] = o;
  }
  Value y;
  y.dims = out;
  set(n, 0, y);
  set(n, 1, y);  // MaxPool's indices
}

void GraphReader::global_pool(const pb::NodeProto& n) {
  const Value& x = activation(n, 0, 0);
  if (x.dims.size() < 3) fail(n, "its input " + ints_text(x.dims) + " has no spatial axes");
  Value y;
  y.dims = x.dims;
  for (size_t i = 2; i < y.dims.size(); ++i) y.dims[i] = 1;
  set(n, 0, y);
}

// ReduceMean, ReduceMax, ReduceSum, ...: axes from the attribute, or from the second input
// (ReduceSum from opset 13, the others from 18).
void GraphReader::reduce(const pb::NodeProto& n) {
  const Value& x = activation(n, 0, 0);
  std::vector<int64_t> axes;
  if (has_in(n, 1)) axes = ints_of(n, 1, "axes");
  else axes = attr_ints(n, "axes").value_or(std::vector<int64_t>{});
  const bool keep = attr_int(n, "keepdims").value_or(1) != 0;
  if (axes.empty() && attr_int(n, "noop_with_empty_axes").value_or(0) != 0) {
    set(n, 0, x);
    return;
  }
  std::set<int64_t> reduced;
  for (int64_t a : axes) reduced.insert(axis(n, a, x.dims.size()));
  if (reduced.count(0)) fail(n, "reduces over the batch axis");
  Value y;
  for (size_t i = 0; i < x.dims.size(); ++i) {
    const bool r = axes.empty() ? i > 0 : reduced.count(int64_t(i)) > 0;
    if (!r) y.dims.push_back(x.dims[i]);
    else if (keep) y.dims.push_back(1);
  }
  set(n, 0, y);
}

// Elementwise ops over any number of inputs, numpy broadcasting. Integer values are carried
// through the arithmetic of a flatten's shape (Add, Sub, Mul, Div of constant lists).
void GraphReader::broadcast(const pb::NodeProto& n) {
  if (n.input_size() < 1) fail(n, "has no inputs");
  std::vector<int64_t> dims;
  bool any_activation = false, all_ints = true;
  for (int i = 0; i < n.input_size(); ++i) {
    if (!has_in(n, i)) continue;
    const Value& v = in(n, i);
    any_activation = any_activation || v.kind == Value::Activation;
    all_ints = all_ints && v.ints.has_value();
    std::vector<int64_t> a = dims, b = v.dims;
    const size_t r = std::max(a.size(), b.size());
    a.insert(a.begin(), r - a.size(), 1);
    b.insert(b.begin(), r - b.size(), 1);
    for (size_t k = 0; k < r; ++k) {
      if (a[k] != b[k] && a[k] != 1 && b[k] != 1)
        fail(n, "its inputs " + ints_text(dims) + " and " + ints_text(v.dims) + " do not broadcast");
      a[k] = a[k] == 1 ? b[k] : a[k];
    }
    dims = a;
  }
  Value y;
  y.kind = any_activation ? Value::Activation : Value::Constant;
  y.dims = dims;
  const std::string& op = n.op_type();
  if (!any_activation && all_ints && n.input_size() == 2 &&
      (op == "Add" || op == "Sub" || op == "Mul" || op == "Div")) {
    const auto a = *in(n, 0).ints, b = *in(n, 1).ints;
    if (a.size() == b.size() || a.size() == 1 || b.size() == 1) {
      std::vector<int64_t> v(std::max(a.size(), b.size()));
      for (size_t i = 0; i < v.size(); ++i) {
        const int64_t p = a[a.size() == 1 ? 0 : i], q = b[b.size() == 1 ? 0 : i];
        if (op == "Div" && (q == 0 || (p == INT64_MIN && q == -1)))
          fail(n, "divides " + std::to_string(p) + " by " + std::to_string(q));
        bool over = false;
        if (op == "Add") over = __builtin_add_overflow(p, q, &v[i]);
        else if (op == "Sub") over = __builtin_sub_overflow(p, q, &v[i]);
        else if (op == "Mul") over = __builtin_mul_overflow(p, q, &v[i]);
        else v[i] = p / q;
        if (over) fail(n, "its integers " + std::to_string(p) + " and " + std::to_string(q) + " overflow");
      }
      y.ints = v;
    }
  }
  if (!any_activation && !all_ints) y.kind = Value::Constant;
  set(n, 0, y);
  // A learnable operand (a bias or a scale stored as a weight) counts as parameters.
  bool learnable = false;
  for (int i = 0; i < n.input_size(); ++i)
    learnable = learnable || (has_in(n, i) && in(n, i).kind == Value::Weight && in(n, i).is_float);
  if (any_activation && learnable) {
    std::vector<int> all;
    for (int i = 0; i < n.input_size(); ++i) all.push_back(i);
    layer(n, all, 0);
  }
}

void GraphReader::gemm(const pb::NodeProto& n) {
  const Value& a = in(n, 0);
  const Value& b = in(n, 1);
  if (a.dims.size() != 2 || b.dims.size() != 2)
    fail(n, "its inputs " + ints_text(a.dims) + " and " + ints_text(b.dims) + " are not 2-D");
  const bool ta = attr_int(n, "transA").value_or(0) != 0, tb = attr_int(n, "transB").value_or(0) != 0;
  const int64_t rows = ta ? a.dims[1] : a.dims[0], k = ta ? a.dims[0] : a.dims[1];
  const int64_t kb = tb ? b.dims[1] : b.dims[0], cols = tb ? b.dims[0] : b.dims[1];
  if (k != kb)
    fail(n, "A " + ints_text(a.dims) + (ta ? " (transA)" : "") + " and B " + ints_text(b.dims) +
                (tb ? " (transB)" : "") + " do not multiply");
  if (has_in(n, 2)) {
    const auto& c = in(n, 2).dims;
    if (c.size() > 2 || (!c.empty() && c.back() != 1 && c.back() != cols))
      fail(n, "its C " + ints_text(c) + " does not broadcast to [" + std::to_string(rows) + "," +
                  std::to_string(cols) + "]");
  }
  Value y;
  y.dims = {rows, cols};
  set(n, 0, y);
  const int64_t macs = product_within(product_within(rows, k, INT64_MAX), cols, INT64_MAX);
  if (macs < 0) fail(n, "its MACs exceed 64 bits");
  layer(n, {1, 0, 2}, macs / batch_);
}

void GraphReader::matmul(const pb::NodeProto& n) {
  const Value& a = in(n, 0);
  const Value& b = in(n, 1);
  if (a.dims.size() < 2 || b.dims.size() < 2)
    fail(n, "its inputs " + ints_text(a.dims) + " and " + ints_text(b.dims) +
                " are not matrices (1-D MatMul is not read)");
  const int64_t k = a.dims.back();
  if (b.dims[b.dims.size() - 2] != k)
    fail(n, "its inputs " + ints_text(a.dims) + " and " + ints_text(b.dims) + " do not multiply");
  std::vector<int64_t> lead_a(a.dims.begin(), a.dims.end() - 2), lead_b(b.dims.begin(), b.dims.end() - 2);
  const size_t r = std::max(lead_a.size(), lead_b.size());
  lead_a.insert(lead_a.begin(), r - lead_a.size(), 1);
  lead_b.insert(lead_b.begin(), r - lead_b.size(), 1);
  Value y;
  for (size_t i = 0; i < r; ++i) {
    if (lead_a[i] != lead_b[i] && lead_a[i] != 1 && lead_b[i] != 1)
      fail(n, "its inputs " + ints_text(a.dims) + " and " + ints_text(b.dims) + " do not broadcast");
    y.dims.push_back(std::max(lead_a[i], lead_b[i]));
  }
  y.dims.push_back(a.dims[a.dims.size() - 2]);
  y.dims.push_back(b.dims.back());
  set(n, 0, y);
  int64_t macs = k;
  for (int64_t d : y.dims) macs = product_within(macs, d, INT64_MAX);
  if (macs < 0) fail(n, "its MACs exceed 64 bits");
  layer(n, {1, 0}, macs / batch_);
}

void GraphReader::reshape(const pb::NodeProto& n) {
  const Value& x = in(n, 0);
  const auto target = ints_of(n, 1, "shape");
  const bool allowzero = attr_int(n, "allowzero").value_or(0) != 0;
  int64_t total = 1;
  for (int64_t d : x.dims) total = product_within(total, d, INT64_MAX);
  std::vector<int64_t> dims;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < target.size(); ++i) {
    int64_t d = target[i];
    if (d == 0 && !allowzero) {
      if (i >= x.dims.size()) fail(n, "shape " + ints_text(target) + " copies a dimension its input " + ints_text(x.dims) + " lacks");
      d = x.dims[i];
    }
    if (d == -1) {
      if (infer >= 0) fail(n, "shape " + ints_text(target) + " has two -1");
      infer = int(i);
      d = 1;
    } else if (d < 1) {
      fail(n, "shape " + ints_text(target) + ": dimension " + std::to_string(d));
    }
    known = product_within(known, d, INT64_MAX);
    if (known < 0) fail(n, "shape " + ints_text(target) + " is too large");
    dims.push_back(d);
  }
  if (infer >= 0) {
    if (total % known != 0)
      fail(n, "shape " + ints_text(target) + " does not fit its input " + ints_text(x.dims));
    dims[size_t(infer)] = total / known;
  } else if (known != total) {
    fail(n, "shape " + ints_text(target) + " does not hold its input " + ints_text(x.dims));
  }
  Value y = x;
  y.dims = dims;
  set(n, 0, y);
}

void GraphReader::concat(const pb::NodeProto& n) {
  const auto a = attr_int(n, "axis");
  if (!a) fail(n, "has no axis");
  if (n.input_size() < 1) fail(n, "has no inputs");
  const Value& first = in(n, 0);
  const int64_t ax = axis(n, *a, first.dims.size());
  Value y = first;
  y.kind = Value::Constant;
  bool all_ints = true, any_activation = false;
  std::vector<int64_t> ints;
  y.dims[size_t(ax)] = 0;
  for (int i = 0; i < n.input_size(); ++i) {
    const Value& v = in(n, i);
    if (v.dims.size() != first.dims.size())
      fail(n, "its inputs " + ints_text(first.dims) + " and " + ints_text(v.dims) + " differ in rank");
    for (size_t k = 0; k < v.dims.size(); ++k)
      if (int64_t(k) != ax && v.dims[k] != first.dims[k])
        fail(n, "its inputs " + ints_text(first.dims) + " and " + ints_text(v.dims) +
                    " differ off the axis " + std::to_string(ax));
    y.dims[size_t(ax)] += v.dims[size_t(ax)];
    any_activation = any_activation || v.kind == Value::Activation;
    all_ints = all_ints && v.ints.has_value();
    if (v.ints) ints.insert(ints.end(), v.ints->begin(), v.ints->end());
  }
  y.ints = all_ints && !any_activation && first.dims.size() == 1 ? std::optional(ints) : std::nullopt;
  if (any_activation) y.kind = Value::Activation;
  set(n, 0, y);
}

void GraphReader::pad(const pb::NodeProto& n) {
  const Value& x = activation(n, 0, 0);
  const auto pads = opset_ >= 11 ? ints_of(n, 1, "pads")
                                 : attr_ints(n, "pads").value_or(std::vector<int64_t>{});
  if (pads.size() != 2 * x.dims.size())
    fail(n, "pads " + ints_text(pads) + " has " + std::to_string(pads.size()) + " entries for a " +
                std::to_string(x.dims.size()) + "-D input");
  if (opset_ >= 18 && has_in(n, 3)) fail(n, "its axes input is not read");
  Value y = x;
  for (size_t i = 0; i < x.dims.size(); ++i) {
    const int64_t p = pads[i], q = pads[i + x.dims.size()];
    if (p < -kMaxDim || p > kMaxDim || q < -kMaxDim || q > kMaxDim)
      fail(n, "pads " + ints_text(pads) + " are outside ±" + std::to_string(kMaxDim));
    y.dims[i] = x.dims[i] + p + q;
  }
  if (y.dims[0] != x.dims[0]) fail(n, "pads the batch axis");
  set(n, 0, y);
}

void GraphReader::split(const pb::NodeProto& n) {
  const Value& x = activation(n, 0, 0);
  const int64_t ax = axis(n, attr_int(n, "axis").value_or(0), x.dims.size());
  if (ax == 0) fail(n, "splits the batch axis");
  std::vector<int64_t> parts;
  if (has_in(n, 1)) parts = ints_of(n, 1, "split");
  else parts = attr_ints(n, "split").value_or(std::vector<int64_t>{});
  const int64_t size = x.dims[size_t(ax)], outs = n.output_size();
  if (outs < 1) fail(n, "has no outputs");
  if (parts.empty()) {
    if (size % outs != 0)
      fail(n, "cannot split " + std::to_string(size) + " into " + std::to_string(outs) + " equal parts");
    parts.assign(size_t(outs), size / outs);
  }
  int64_t sum = 0;
  for (int64_t p : parts) {
    if (p < 1) fail(n, "split " + ints_text(parts) + " has a part below 1");
    sum += p;
  }
  if (int64_t(parts.size()) != outs || sum != size)
    fail(n, "split " + ints_text(parts) + " does not cut its axis of " + std::to_string(size) +
                " into its " + std::to_string(outs) + " outputs");
  for (int i = 0; i < outs; ++i) {
    Value y = x;
    y.dims[size_t(ax)] = parts[size_t(i)];
    set(n, i, y);
  }
}

void GraphReader::squeeze(const pb::NodeProto& n, bool un) {
  const Value& x = in(n, 0);
  std::vector<int64_t> axes;
  if (has_in(n, 1)) axes = ints_of(n, 1, "axes");
  else axes = attr_ints(n, "axes").value_or(std::vector<int64_t>{});
  Value y = x;
  if (un) {
    if (axes.empty()) fail(n, "has no axes");
    const size_t rank = x.dims.size() + axes.size();
    std::set<int64_t> at;
    for (int64_t a : axes)
      if (!at.insert(axis(n, a, rank)).second) fail(n, "axes " + ints_text(axes) + " repeat an axis");
    y.dims.clear();
    size_t k = 0;
    for (size_t i = 0; i < rank; ++i) y.dims.push_back(at.count(int64_t(i)) ? 1 : x.dims[k++]);
  } else {
    std::set<int64_t> at;
    for (int64_t a : axes) at.insert(axis(n, a, x.dims.size()));
    y.dims.clear();
    for (size_t i = 0; i < x.dims.size(); ++i) {
      const bool drop = axes.empty() ? x.dims[i] == 1 : at.count(int64_t(i)) > 0;
      if (drop && x.dims[i] != 1)
        fail(n, "squeezes axis " + std::to_string(i) + " of " + ints_text(x.dims) + ", not of size 1");
      if (!drop) y.dims.push_back(x.dims[i]);
    }
    if (x.kind == Value::Activation && (y.dims.empty() || (x.dims[0] != 1 && y.dims[0] != x.dims[0])))
      fail(n, "squeezes the batch axis");
  }
  set(n, 0, y);
}

void GraphReader::node(const pb::NodeProto& n) {
  const std::string& op = n.op_type();
  if (!n.domain().empty() && n.domain() != "ai.onnx")
    fail(n, "an op of the domain " + n.domain() + " is not analysed");
  if (n.output_size() < 1 || n.output(0).empty()) fail(n, "has no output");
  static const std::set<std::string> unary = {
      "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu",
      "Softplus", "Softsign", "Gelu", "Mish", "Erf", "Exp", "Log", "Neg", "Abs", "Sqrt",
      "Reciprocal", "Clip", "Dropout", "Identity", "Softmax", "LogSoftmax", "Cast", "Floor",
      "Ceil", "Round", "Sign", "ThresholdedRelu", "Shrink", "LRN"};
  static const std::set<std::string> elementwise = {"Add", "Sub", "Mul", "Div", "Pow", "Max",
                                                    "Min", "Sum", "Mean", "Where"};
  if (op == "Constant") {
    if (n.output_size() != 1) fail(n, "has " + std::to_string(n.output_size()) + " outputs, not 1");
    Value v;
    v.kind = Value::Constant;
    const auto* t = attr(n, "value");
    if (t && t->type() == pb::AttributeProto::TENSOR) {
      const TensorInfo info = check_tensor(path_, n.output(0), t->t(), "constant");
      v.dims = info.dims;
      v.is_float = t->t().data_type() == pb::TensorProto::FLOAT;
      if (info.count <= kMaxIntValues) v.ints = tensor_ints(t->t(), info.count);
    } else if (const auto* vi = attr(n, "value_ints"); vi && vi->type() == pb::AttributeProto::INTS) {
      v.ints = std::vector<int64_t>(vi->ints().begin(), vi->ints().end());
      v.dims = {int64_t(v.ints->size())};
      v.is_float = false;
    } else if (const auto* i = attr(n, "value_int"); i && i->type() == pb::AttributeProto::INT) {
      v.ints = std::vector<int64_t>{i->i()};
      v.is_float = false;
    } else if (const auto* f = attr(n, "value_float"); f && f->type() == pb::AttributeProto::FLOAT) {
      // a scalar (Clip's bounds, a scale)
    } else {
      fail(n, "analysis reads a Constant with a tensor, integer or float value");
    }
    set(n, 0, v);
  } else if (op == "Conv") {
    conv(n);
  } else if (op == "BatchNormalization" || op == "InstanceNormalization") {
    const Value& x = activation(n, 0, 0);
    if (x.dims.size() < 2) fail(n, "its input " + ints_text(x.dims) + " has no channel axis");
    for (int i = 1; i < (op == "BatchNormalization" ? 5 : 3); ++i)
      if (in(n, i).dims != std::vector<int64_t>{x.dims[1]})
        fail(n, "its input " + n.input(i) + " is " + ints_text(in(n, i).dims) + ", not [" +
                    std::to_string(x.dims[1]) + "] for its " + std::to_string(x.dims[1]) + " channels");
    set(n, 0, x);
    Value stat;
    stat.kind = Value::Constant;
    stat.dims = {x.dims[1]};
    for (int i = 1; i < n.output_size(); ++i) set(n, i, stat);  // training mode: the statistics
    layer(n, {1, 2}, 0);  // scale and shift; the running mean and variance are not learned
  } else if (op == "PRelu") {
    set(n, 0, activation(n, 0, 0));
    layer(n, {1}, 0);
  } else if (unary.count(op)) {
    const Value& x = in(n, 0);
    Value y = x;
    if (op != "Identity" && op != "Cast") y.ints.reset();
    set(n, 0, y);
    if (op == "Dropout") set(n, 1, y);  // the mask
  } else if (elementwise.count(op)) {
    broadcast(n);
  } else if (op == "MaxPool" || op == "AveragePool" || op == "LpPool") {
    pool(n);
  } else if (op == "GlobalAveragePool" || op == "GlobalMaxPool" || op == "GlobalLpPool") {
    global_pool(n);
  } else if (op.starts_with("Reduce")) {
    reduce(n);
  } else if (op == "Gemm") {
    gemm(n);
  } else if (op == "MatMul") {
    matmul(n);
  } else if (op == "Flatten") {
    const Value& x = in(n, 0);
    const int64_t a = attr_int(n, "axis").value_or(1);
    const int64_t ax = a == int64_t(x.dims.size()) ? a : axis(n, a, x.dims.size());
    Value y = x;
    y.dims = {1, 1};
    for (size_t i = 0; i < x.dims.size(); ++i) y.dims[int64_t(i) < ax ? 0 : 1] *= x.dims[i];
    set(n, 0, y);
  } else if (op == "Reshape") {
    reshape(n);
  } else if (op == "Shape") {
    const Value& x = in(n, 0);
    if (attr(n, "start") || attr(n, "end")) fail(n, "Shape with start or end is not read");
    Value y;
    y.kind = Value::Constant;
    y.dims = {int64_t(x.dims.size())};
    y.ints = x.dims;
    y.is_float = false;
    set(n, 0, y);
  } else if (op == "Gather") {
    const Value& data = in(n, 0);
    const auto idx = ints_of(n, 1, "indices");
    if (!data.ints || data.dims.size() != 1 || attr_int(n, "axis").value_or(0) != 0)
      fail(n, "only a gather from a constant 1-D list (a shape) is analysed");
    Value y;
    y.kind = Value::Constant;
    y.is_float = false;
    y.dims = in(n, 1).dims;
    y.ints.emplace();
    const int64_t size = int64_t(data.ints->size());
    for (int64_t i : idx) {
      if (i < -size || i >= size)
        fail(n, "index " + std::to_string(i) + " is outside " + ints_text(*data.ints));
      y.ints->push_back((*data.ints)[size_t(i < 0 ? i + size : i)]);
    }
    set(n, 0, y);
  } else if (op == "Unsqueeze" || op == "Squeeze") {
    squeeze(n, op == "Unsqueeze");
  } else if (op == "Concat") {
    concat(n);
  } else if (op == "Pad") {
    pad(n);
  } else if (op == "Split") {
    split(n);
  } else if (op == "Transpose") {
    const Value& x = in(n, 0);
    std::vector<int64_t> perm = attr_ints(n, "perm").value_or(std::vector<int64_t>{});
    if (perm.empty())
      for (size_t i = x.dims.size(); i-- > 0;) perm.push_back(int64_t(i));
    if (perm.size() != x.dims.size()) fail(n, "perm " + ints_text(perm) + " is not of rank " + std::to_string(x.dims.size()));
    Value y = x;
    std::set<int64_t> seen;
    for (size_t i = 0; i < perm.size(); ++i) {
      const int64_t p = axis(n, perm[i], x.dims.size());
      if (!seen.insert(p).second) fail(n, "perm " + ints_text(perm) + " repeats an axis");
      y.dims[i] = x.dims[size_t(p)];
    }
    if (x.kind == Value::Activation && perm[0] != 0) fail(n, "moves the batch axis");
    set(n, 0, y);
  } else {
    fail(n, "not analysed; analysis reads Conv, BatchNormalization, elementwise ops (Add, Mul, "
            "Relu, Clip, ...), MaxPool, AveragePool, global pools, Reduce*, Pad, Concat, Split, "
            "Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Gemm, MatMul and shape arithmetic");
  }
}

GraphAnalysis GraphReader::run() {
  opset_ = read_model_file(path_, model_);
  out_.source = path_;
  out_.origin = "ONNX opset " + std::to_string(opset_);
  if (!model_.producer_name().empty()) out_.origin += ", " + model_.producer_name();
  if (!model_.producer_version().empty()) out_.origin += " " + model_.producer_version();
  read_inputs();
  const pb::GraphProto& g = model_.graph();
  out_.nodes = g.node_size();
  for (node_index_ = 0; node_index_ < g.node_size(); ++node_index_) {
    const pb::NodeProto& n = g.node(node_index_);
    auto it = std::find_if(out_.op_counts.begin(), out_.op_counts.end(),
                           [&](const auto& p) { return p.first == n.op_type(); });
    if (it == out_.op_counts.end()) out_.op_counts.push_back({n.op_type(), 1});
    else ++it->second;
    node(n);
  }
  if (g.output_size() < 1) fail("the graph has no output");
  for (const auto& o : g.output())
    if (!values_.count(o.name())) fail("the graph's output " + o.name() + " is never computed");
  if (out_.convs.empty()) fail("the graph has no Conv: nothing to analyse");
  for (const auto& l : out_.layers) {
    if (__builtin_add_overflow(out_.total_params, l.params, &out_.total_params) ||
        __builtin_add_overflow(out_.total_macs, l.macs, &out_.total_macs))
      fail("its totals exceed 64 bits");
  }
  return out_;
}

}  // namespace

GraphAnalysis analyze_onnx(const std::string& path) {
  GraphAnalysis a = GraphReader(path).run();
  // Whether the engines could train it: import's verdict, its reason when it refuses.
  try {
    import_onnx(path);
  } catch (const InputError& e) {
    std::string why = e.what();
    if (why.starts_with(path + ": ")) why = why.substr(path.size() + 2);
    a.not_trainable = why;
  }
  return a;
}

}  // namespace splitconv
