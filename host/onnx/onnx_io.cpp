// ONNX import and export (splitconv/onnx.h; docs/design.md, ONNX import and export), read
// and written through the ONNX library's protobuf classes.
//
// Import walks the graph's nodes in order as one chain: each node that computes on the
// activation must read the output of the chain's previous node (or the graph's input) and
// nothing else but constants. A file from anywhere is untrusted: every tensor's element
// type, dims and data size are checked when it is looked up, before anything reads it, and
// every attribute's type and range before it is narrowed.
#include <google/protobuf/stubs/logging.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "splitconv/error.h"
#include "splitconv/files.h"
#include "splitconv/import.h"
#include "splitconv/onnx.h"
#include "onnx_read.h"

namespace splitconv {
namespace {

namespace pb = ONNX_NAMESPACE;
using namespace onnx_detail;

// Floats of a tensor's raw_data are little-endian.
void floats_from_le(const char* src, size_t n, float* dst) {
  std::memcpy(dst, src, n * 4);
  if constexpr (std::endian::native == std::endian::big) {
    auto* b = reinterpret_cast<uint8_t*>(dst);
    for (size_t i = 0; i < n; ++i) std::reverse(b + 4 * i, b + 4 * i + 4);
  }
}

std::string floats_to_le(const float* src, size_t n) {
  std::string out(n * 4, '\0');
  std::memcpy(out.data(), src, n * 4);
  if constexpr (std::endian::native == std::endian::big) {
    for (size_t i = 0; i < n; ++i) std::reverse(out.begin() + 4 * i, out.begin() + 4 * i + 4);
  }
  return out;
}

// A tensor known before the image arrives: an initializer, a Constant node's value, or (in
// a graph exported without its parameters) a graph input that stands for a weight.
struct Constant {
  std::string name;
  const pb::TensorProto* tensor = nullptr;  // null for a weight without its values
  std::vector<int64_t> dims;
  int64_t count = 0;
};

// One layer of the spec being built, with its weights in splitconv's layouts.
struct Pending {
  LayerSpec spec;
  std::vector<std::string> nodes;
  std::vector<float> weight, bias;
};

// The activation a chain node reads: NCHW with the batch first, or [N, features].
struct ActShape {
  bool flat = false;
  int64_t c = 0, h = 0, w = 0, features = 0;
  std::vector<int64_t> dims() const {
    return flat ? std::vector<int64_t>{kBatch, features} : std::vector<int64_t>{kBatch, c, h, w};
  }
  std::string text() const {
    return flat ? std::to_string(features) + " features"
                : std::to_string(h) + "x" + std::to_string(w) + "x" + std::to_string(c);
  }
};

class Importer : public NodeReader {
 public:
  explicit Importer(std::string path) : NodeReader(std::move(path)) {}
  ImportedModel run();

 private:

  void read_model();
  void read_input();
  void walk();
  void finish(ImportedModel& out);

  // --- tensors ---
  void add_constant(const std::string& name, const pb::TensorProto& t, const std::string& what);
  const Constant* constant(const std::string& name) const {
    auto it = constants_.find(name);
    return it == constants_.end() ? nullptr : &it->second;
  }
  const Constant& weight_input(const pb::NodeProto& n, int index, const char* role) const;
  std::vector<float> floats(const Constant& c) const;
  std::optional<std::vector<int64_t>> int_values(const std::string& name) const;
  std::vector<int64_t> ints_input(const pb::NodeProto& n, int index, const char* role) const;

  // --- attributes ---
  int dim_attr(const pb::NodeProto& n, const char* name, int64_t v) const;
  std::vector<int64_t> pair_attr(const pb::NodeProto& n, const char* name, int64_t def) const;

  // --- nodes ---
  bool shape_arithmetic(const pb::NodeProto& n);
  void chain_node(const pb::NodeProto& n);
  void conv(const pb::NodeProto& n);
  void relu(const pb::NodeProto& n);
  void maxpool(const pb::NodeProto& n);
  void flatten(const pb::NodeProto& n, bool reshape);
  void dense(const pb::NodeProto& n, bool gemm);
  void bias_add(const pb::NodeProto& n, int bias_input);
  void softmax(const pb::NodeProto& n);
  void require_image(const pb::NodeProto& n) const;

  std::string bytes_;
  pb::ModelProto model_;
  int opset_ = 0;
  std::string input_name_;
  int64_t fixed_batch_ = 0;  // the input's batch when the file fixes it, else 0
  int in_c_ = 0, in_h_ = 0, in_w_ = 0;
  bool has_weights_ = true;

  std::map<std::string, Constant> constants_;
  std::map<std::string, std::vector<int64_t>> shape_values_;  // rank-0 or rank-1 int vectors
  std::map<std::string, int> shape_value_rank_;
  std::map<std::string, ActShape> activations_;  // every activation of the chain so far
  std::string current_;
  ActShape shape_;

  std::vector<Pending> layers_;
  int dense_awaiting_bias_ = -1;  // a MatMul (or Gemm without C) the next Add may give a bias
  bool ended_ = false;            // a Softmax ended the chain
  std::string softmax_node_;
  std::vector<std::string> notes_;
};

// --- reading the file ---

void Importer::read_model() { opset_ = read_model_file(path_, model_); }

void Importer::add_constant(const std::string& name, const pb::TensorProto& t,
                            const std::string& what) {
  const TensorInfo info = check_tensor(path_, name, t, what);
  Constant c;
  c.name = name;
  c.tensor = &t;
  c.dims = info.dims;
  c.count = info.count;
  constants_[name] = std::move(c);
}

std::vector<float> Importer::floats(const Constant& c) const {
  const pb::TensorProto& t = *c.tensor;
  if (t.data_type() != pb::TensorProto::FLOAT)
    fail("tensor " + c.name + " has element type " + std::to_string(t.data_type()) +
         "; import reads float32 weights");
  std::vector<float> out(size_t(c.count));
  if (t.has_raw_data())
    floats_from_le(t.raw_data().data(), out.size(), out.data());
  else
    std::copy(t.float_data().begin(), t.float_data().end(), out.begin());
  return out;
}

std::optional<std::vector<int64_t>> Importer::int_values(const std::string& name) const {
  if (auto it = shape_values_.find(name); it != shape_values_.end()) return it->second;
  const Constant* c = constant(name);
  if (!c || !c->tensor || c->count > 64) return std::nullopt;
  return tensor_ints(*c->tensor, c->count);
}

const Constant& Importer::weight_input(const pb::NodeProto& n, int index, const char* role) const {
  if (n.input_size() <= index || n.input(index).empty()) fail(n, std::string("has no ") + role);
  const Constant* c = constant(n.input(index));
  if (!c)
    fail(n,
         std::string("its ") + role + " " + n.input(index) + " is not a constant (an initializer)");
  return *c;
}

std::vector<int64_t> Importer::ints_input(const pb::NodeProto& n, int index,
                                          const char* role) const {
  if (n.input_size() <= index || n.input(index).empty()) fail(n, std::string("has no ") + role);
  auto v = int_values(n.input(index));
  if (!v)
    fail(n,
         std::string("its ") + role + " " + n.input(index) + " is not a constant list of integers");
  return *v;
}

// --- attributes ---

int Importer::dim_attr(const pb::NodeProto& n, const char* name, int64_t v) const {
  if (v < 1 || v > kMaxDim)
    fail(n, std::string(name) + " " + std::to_string(v) + " is outside 1 to " +
                std::to_string(kMaxDim));
  return int(v);
}

// A two-entry attribute (H, W): kernel_shape, strides, dilations; `def` fills both when absent.
std::vector<int64_t> Importer::pair_attr(const pb::NodeProto& n, const char* name,
                                         int64_t def) const {
  auto v = attr_ints(n, name);
  if (!v) return {def, def};
  if (v->size() != 2)
    fail(n, std::string(name) + " " + ints_text(*v) + " has " + std::to_string(v->size()) +
                " entries; a 2-D op has 2");
  return *v;
}

// --- the graph ---

void Importer::read_input() {
  const pb::GraphProto& g = model_.graph();
  for (const auto& t : g.initializer()) {
    if (t.name().empty()) fail("an initializer has no name");
    if (constant(t.name())) fail("two initializers are named " + t.name());
    add_constant(t.name(), t, "initializer");
  }
  if (g.sparse_initializer_size() > 0)
    fail("holds sparse initializers; import reads dense tensors only");
  // Older exporters list the initializers among the inputs too; the image is the first input
  // that no initializer gives. Any further input stands for a weight without its values.
  std::vector<const pb::ValueInfoProto*> inputs;
  for (const auto& v : g.input())
    if (!constant(v.name())) inputs.push_back(&v);
  if (inputs.empty()) fail("the graph has no input for the image");
  const pb::ValueInfoProto& in = *inputs[0];
  input_name_ = in.name();
  const std::string what = "input " + in.name();
  if (!in.type().has_tensor_type()) fail(what + " is not a tensor");
  const auto& tt = in.type().tensor_type();
  if (tt.elem_type() != pb::TensorProto::FLOAT) fail(what + " is not float32");
  if (!tt.has_shape() || tt.shape().dim_size() != 4)
    fail(what + " is not 4-D [N, C, H, W]; the spec's input is an image H x W x C");
  const auto& d = tt.shape().dim();
  if (d[0].has_dim_value()) fixed_batch_ = d[0].dim_value();
  int sides[3];
  const char* names[3] = {"channels", "height", "width"};
  for (int i = 1; i < 4; ++i) {
    if (!d[i].has_dim_value())
      fail(what + " has no fixed " + names[i - 1] + " (" +
           (d[i].dim_param().empty() ? "?" : d[i].dim_param()) +
           "); export it with a fixed image size");
    const int64_t v = d[i].dim_value();
    if (v < 1 || v > kMaxDim)
      fail(what + ": " + names[i - 1] + " " + std::to_string(v) + " is outside 1 to " +
           std::to_string(kMaxDim));
    sides[i - 1] = int(v);
  }
  in_c_ = sides[0], in_h_ = sides[1], in_w_ = sides[2];
  for (size_t i = 1; i < inputs.size(); ++i) {
    const pb::ValueInfoProto& v = *inputs[i];
    Constant c;
    c.name = v.name();
    if (!v.type().has_tensor_type() || !v.type().tensor_type().has_shape())
      fail("input " + v.name() + " has no tensor shape; the graph has one image input and weights");
    int64_t count = 1;
    for (const auto& dim : v.type().tensor_type().shape().dim()) {
      if (!dim.has_dim_value() || dim.dim_value() < 0)
        fail("input " + v.name() +
             " has no fixed shape; the graph has one image input and weights");
      count = product_within(count, dim.dim_value(), kMaxTensor);
      if (count < 0)
        fail("input " + v.name() + " exceeds " + std::to_string(kMaxTensor) + " elements");
      c.dims.push_back(dim.dim_value());
    }
    c.count = count;
    constants_[c.name] = std::move(c);
    has_weights_ = false;
  }
  current_ = input_name_;
  shape_ = {false, in_c_, in_h_, in_w_, 0};
  activations_[current_] = shape_;
}

// Shape, Gather, Unsqueeze, Concat and Identity over constants: the integer arithmetic of a
// flatten written as x.view(x.size(0), -1). Returns false for a node that is none of these.
bool Importer::shape_arithmetic(const pb::NodeProto& n) {
  const std::string& op = n.op_type();
  if (n.output_size() < 1) return false;
  const std::string& out = n.output(0);
  auto set = [&](std::vector<int64_t> v, int rank) {
    shape_values_[out] = std::move(v);
    shape_value_rank_[out] = rank;
  };
  auto rank_of = [&](const std::string& name) -> int {
    if (auto it = shape_value_rank_.find(name); it != shape_value_rank_.end()) return it->second;
    const Constant* c = constant(name);
    return c ? int(c->dims.size()) : -1;
  };
  if (op == "Shape" && n.input_size() == 1) {
    auto it = activations_.find(n.input(0));
    if (it == activations_.end()) return false;
    if (attr(n, "start") || attr(n, "end")) fail(n, "Shape with start or end is not read");
    set(it->second.dims(), 1);
    return true;
  }
  if (op == "Identity" && n.input_size() == 1) {
    if (const Constant* c = constant(n.input(0))) {
      Constant alias = *c;
      alias.name = out;
      constants_[out] = alias;
      return true;
    }
    if (shape_values_.count(n.input(0))) {
      set(shape_values_[n.input(0)], shape_value_rank_[n.input(0)]);
      return true;
    }
    return false;
  }
  bool all_integer = n.input_size() > 0;
  for (const auto& i : n.input()) all_integer = all_integer && int_values(i).has_value();
  if (!all_integer) return false;
  if (op == "Gather") {
    if (attr_int(n, "axis").value_or(0) != 0 || rank_of(n.input(0)) != 1)
      fail(n, "only a gather from a 1-D shape is read");
    auto data = *int_values(n.input(0));
    auto idx = *int_values(n.input(1));
    std::vector<int64_t> v;
    for (int64_t i : idx) {
      const int64_t size = int64_t(data.size());
      if (i < -size || i >= size)
        fail(n, "index " + std::to_string(i) + " is outside the shape " + ints_text(data));
      v.push_back(data[size_t(i < 0 ? i + size : i)]);
    }
    set(v, rank_of(n.input(1)) == 0 ? 0 : 1);
    return true;
  }
  if (op == "Unsqueeze") {
    auto axes = opset_ >= 13
                    ? (n.input_size() > 1 ? std::optional(*int_values(n.input(1))) : std::nullopt)
                    : attr_ints(n, "axes");
    if (rank_of(n.input(0)) != 0 || !axes || axes->size() != 1 ||
        ((*axes)[0] != 0 && (*axes)[0] != -1))
      fail(n, "only a scalar unsqueezed to a 1-D list is read");
    set(*int_values(n.input(0)), 1);
    return true;
  }
  if (op == "Concat") {
    std::vector<int64_t> v;
    for (const auto& i : n.input()) {
      if (rank_of(i) != 1) fail(n, "only 1-D lists are concatenated");
      auto part = *int_values(i);
      v.insert(v.end(), part.begin(), part.end());
    }
    set(v, 1);
    return true;
  }
  return false;
}

void Importer::require_image(const pb::NodeProto& n) const {
  if (shape_.flat)
    fail(n, "comes after the flatten; the spec has convolutions and pools before it only");
}

void Importer::conv(const pb::NodeProto& n) {
  require_image(n);
  const Constant& w = weight_input(n, 1, "weight");
  if (w.dims.size() != 4)
    fail(n, "weight " + w.name + " is " + ints_text(w.dims) + ", not 4-D OIHW");
  const int64_t group = attr_int(n, "group").value_or(1);
  if (group != 1)
    fail(n, "group " + std::to_string(group) +
                ": grouped and depthwise convolutions are not trainable here");
  for (int64_t d : pair_attr(n, "dilations", 1))
    if (d != 1)
      fail(n, "dilations " + ints_text(pair_attr(n, "dilations", 1)) +
                  ": only dilation 1 is supported");
  if (w.dims[1] != shape_.c)
    fail(n, "weight " + w.name + " " + ints_text(w.dims) + " reads " + std::to_string(w.dims[1]) +
                " channels but its input has " + std::to_string(shape_.c));
  LayerSpec l;
  l.kind = LayerKind::Conv;
  l.units = dim_attr(n, "filters", w.dims[0]);
  l.kh = dim_attr(n, "kernel height", w.dims[2]);
  l.kw = dim_attr(n, "kernel width", w.dims[3]);
  if (auto ks = attr_ints(n, "kernel_shape"); ks && *ks != std::vector<int64_t>{l.kh, l.kw})
    fail(n, "kernel_shape " + ints_text(*ks) + " differs from its weight " + ints_text(w.dims));
  const auto strides = pair_attr(n, "strides", 1);
  if (strides[0] != strides[1])
    fail(n, "strides " + ints_text(strides) + ": the spec has one stride for both directions");
  l.stride = dim_attr(n, "stride", strides[0]);
  // Padding: none is valid; the spec's same pads (TensorFlow's split, the odd pixel at the
  // bottom/right: ONNX's SAME_UPPER) for this input are same; anything else is refused.
  const int oh = conv_out_size(int(shape_.h), l.kh, l.stride, Padding::Same);
  const int ow = conv_out_size(int(shape_.w), l.kw, l.stride, Padding::Same);
  const int64_t th = std::max<int64_t>(int64_t(oh - 1) * l.stride + l.kh - shape_.h, 0);
  const int64_t tw = std::max<int64_t>(int64_t(ow - 1) * l.stride + l.kw - shape_.w, 0);
  const std::vector<int64_t> same = {th / 2, tw / 2, th - th / 2, tw - tw / 2};
  const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
  std::vector<int64_t> pads = attr_ints(n, "pads").value_or(std::vector<int64_t>{0, 0, 0, 0});
  if (auto_pad == "VALID") {
    pads = {0, 0, 0, 0};
  } else if (auto_pad == "SAME_UPPER") {
    pads = same;
  } else if (auto_pad == "SAME_LOWER") {
    pads = {th - th / 2, tw - tw / 2, th / 2, tw / 2};
  } else if (auto_pad != "NOTSET") {
    fail(n, "auto_pad " + auto_pad + " is not an ONNX padding mode");
  }
  if (pads.size() != 4)
    fail(n, "pads " + ints_text(pads) + " has " + std::to_string(pads.size()) + " entries, not 4");
  if (pads == std::vector<int64_t>{0, 0, 0, 0}) {
    l.padding = Padding::Valid;
    if (l.kh > shape_.h || l.kw > shape_.w)
      fail(n, "its " + std::to_string(l.kh) + "x" + std::to_string(l.kw) +
                  " kernel is larger than its " + shape_.text() + " input");
  } else if (pads == same) {
    l.padding = Padding::Same;
  } else {
    const bool symmetric = pads[0] == pads[2] && pads[1] == pads[3];
    fail(n, std::string(symmetric ? "" : "asymmetric ") + "pads " + ints_text(pads) +
                " (top, left, bottom, right) on its " + shape_.text() +
                " input: the spec pads valid (none) or same (here " + ints_text(same) + ")");
  }
  Pending p;
  p.spec = l;
  p.nodes.push_back(node_name(n));
  if (w.tensor) p.weight = floats(w);
  if (n.input_size() > 2 && !n.input(2).empty()) {
    const Constant& b = weight_input(n, 2, "bias");
    if (b.dims != std::vector<int64_t>{l.units})
      fail(n, "bias " + b.name + " is " + ints_text(b.dims) + ", not [" + std::to_string(l.units) +
                  "]");
    if (b.tensor) p.bias = floats(b);
  } else if (w.tensor) {
    p.bias.assign(size_t(l.units), 0.0f);
    notes_.push_back(node_name(n) + ": no bias, zero biases");
  }
  layers_.push_back(std::move(p));
  shape_.h = conv_out_size(int(shape_.h), l.kh, l.stride, l.padding);
  shape_.w = conv_out_size(int(shape_.w), l.kw, l.stride, l.padding);
  shape_.c = l.units;
}

void Importer::relu(const pb::NodeProto& n) {
  int last = -1;
  for (int i = int(layers_.size()) - 1; i >= 0 && last < 0; --i)
    if (layers_[size_t(i)].spec.kind == LayerKind::Conv ||
        layers_[size_t(i)].spec.kind == LayerKind::Dense)
      last = i;
  if (last < 0) fail(n, "comes before any Conv or Gemm; the spec's activations belong to a layer");
  Pending& p = layers_[size_t(last)];
  if (p.spec.activation == Activation::Relu) {
    notes_.push_back(node_name(n) + ": a second Relu on " + p.nodes.front() +
                     ", skipped (Relu twice is Relu)");
    return;
  }
  // Pools and the flatten commute with ReLU (max and ReLU are both monotone), so a Relu after
  // them is the same as one on the layer before them.
  if (last + 1 != int(layers_.size()))
    notes_.push_back(node_name(n) + ": Relu after a pool or flatten moved onto " + p.nodes.front() +
                     " (max-pooling and ReLU commute)");
  p.spec.activation = Activation::Relu;
  p.nodes.push_back(node_name(n));
}

void Importer::maxpool(const pb::NodeProto& n) {
  require_image(n);
  const auto ks = attr_ints(n, "kernel_shape");
  if (!ks || ks->size() != 2) fail(n, "kernel_shape is missing or not 2-D");
  LayerSpec l;
  l.kind = LayerKind::MaxPool;
  l.kh = dim_attr(n, "pool height", (*ks)[0]);
  l.kw = dim_attr(n, "pool width", (*ks)[1]);
  const auto strides = pair_attr(n, "strides", 1);
  if (strides[0] != strides[1])
    fail(n, "strides " + ints_text(strides) + ": the spec has one stride for both directions");
  l.stride = dim_attr(n, "stride", strides[0]);
  for (int64_t d : pair_attr(n, "dilations", 1))
    if (d != 1) fail(n, "dilations other than 1 are not supported");
  const std::string auto_pad = attr_string(n, "auto_pad", "NOTSET");
  const auto pads = attr_ints(n, "pads").value_or(std::vector<int64_t>{0, 0, 0, 0});
  if ((auto_pad != "NOTSET" && auto_pad != "VALID") || pads != std::vector<int64_t>{0, 0, 0, 0})
    fail(n, "padded pooling (pads " + ints_text(pads) + ", auto_pad " + auto_pad +
                "): the spec's pools have no padding");
  if (l.kh > shape_.h || l.kw > shape_.w)
    fail(n, "its " + std::to_string(l.kh) + "x" + std::to_string(l.kw) +
                " pool is larger than its " + shape_.text() + " input");
  if (attr_int(n, "ceil_mode").value_or(0) != 0) {
    // Ceiling mode changes nothing where the windows fit the map exactly.
    if ((shape_.h - l.kh) % l.stride != 0 || (shape_.w - l.kw) % l.stride != 0)
      fail(n, "ceil_mode 1 on a " + shape_.text() +
                  " input adds a partial window; the spec's pools floor");
  }
  Pending p;
  p.spec = l;
  p.nodes.push_back(node_name(n));
  layers_.push_back(std::move(p));
  shape_.h = (shape_.h - l.kh) / l.stride + 1;
  shape_.w = (shape_.w - l.kw) / l.stride + 1;
}

void Importer::flatten(const pb::NodeProto& n, bool reshape) {
  if (!reshape) {
    int64_t axis = attr_int(n, "axis").value_or(1);
    const int rank = shape_.flat ? 2 : 4;
    if (axis < 0) axis += rank;
    if (axis != 1)
      fail(n, "axis " + std::to_string(attr_int(n, "axis").value_or(1)) +
                  ": import reads a flatten to [N, -1] (axis 1)");
  } else {
    const auto target = ints_input(n, 1, "shape");
    const bool allowzero = attr_int(n, "allowzero").value_or(0) != 0;
    const int64_t features = shape_.flat ? shape_.features : shape_.c * shape_.h * shape_.w;
    bool ok = target.size() == 2;
    if (ok) {
      const int64_t a = target[0], b = target[1];
      const bool batch = a == kBatch || (a == 0 && !allowzero) || (a == -1 && b == features) ||
                         (fixed_batch_ > 0 && a == fixed_batch_);
      ok = batch && (b == -1 || b == features);
    }
    if (!ok)
      fail(n, "reshape to " + ints_text(target) + " of a " + shape_.text() +
                  " input: import reads a reshape to [N, -1] (the flatten)");
  }
  if (shape_.flat) {
    notes_.push_back(node_name(n) + ": " + n.op_type() +
                     " of a flat input changes nothing, skipped");
    return;
  }
  Pending p;
  p.spec.kind = LayerKind::Flatten;
  p.nodes.push_back(node_name(n));
  layers_.push_back(std::move(p));
  shape_ = {true, 0, 0, 0, shape_.c * shape_.h * shape_.w};
}

void Importer::dense(const pb::NodeProto& n, bool gemm) {
  if (!shape_.flat)
    fail(n, "reads the " + shape_.text() +
                " image activation; flatten it first (Flatten, or Reshape to [N, -1])");
  const Constant& w = weight_input(n, 1, "weight");
  if (w.dims.size() != 2) fail(n, "weight " + w.name + " is " + ints_text(w.dims) + ", not 2-D");
  bool trans_b = false;
  if (gemm) {
    if (attr_int(n, "transA").value_or(0) != 0)
      fail(n, "transA 1: import reads Gemm of the activation as it is");
    trans_b = attr_int(n, "transB").value_or(0) != 0;
    const float alpha = attr_float(n, "alpha").value_or(1.0f),
                beta = attr_float(n, "beta").value_or(1.0f);
    if (alpha != 1.0f || beta != 1.0f)
      fail(n, "alpha " + std::to_string(alpha) + ", beta " + std::to_string(beta) +
                  ": import reads alpha = beta = 1");
  }
  // splitconv's dense weight is [out, in]: Gemm's B with transB, else B transposed.
  const int64_t in = trans_b ? w.dims[1] : w.dims[0];
  const int64_t out = trans_b ? w.dims[0] : w.dims[1];
  if (in != shape_.features)
    fail(n, "weight " + w.name + " " + ints_text(w.dims) + (trans_b ? " (transB)" : "") +
                " reads " + std::to_string(in) + " features but its input has " + shape_.text());
  LayerSpec l;
  l.kind = LayerKind::Dense;
  l.units = dim_attr(n, "units", out);
  Pending p;
  p.spec = l;
  p.nodes.push_back(node_name(n));
  if (w.tensor) {
    std::vector<float> b = floats(w);
    if (trans_b) {
      p.weight = std::move(b);
    } else {
      p.weight.resize(b.size());
      for (int64_t i = 0; i < in; ++i)
        for (int64_t o = 0; o < out; ++o) p.weight[size_t(o * in + i)] = b[size_t(i * out + o)];
    }
  }
  const bool has_c = gemm && n.input_size() > 2 && !n.input(2).empty();
  if (has_c) {
    const Constant& c = weight_input(n, 2, "bias");
    if (c.dims != std::vector<int64_t>{out} && c.dims != std::vector<int64_t>{1, out})
      fail(n, "bias " + c.name + " is " + ints_text(c.dims) + "; import reads a bias of [" +
                  std::to_string(out) + "] or [1," + std::to_string(out) + "]");
    if (c.tensor) p.bias = floats(c);
  } else if (w.tensor) {
    p.bias.assign(size_t(out), 0.0f);
  }
  layers_.push_back(std::move(p));
  dense_awaiting_bias_ = has_c ? -1 : int(layers_.size()) - 1;
  shape_ = {true, 0, 0, 0, out};
}

void Importer::bias_add(const pb::NodeProto& n, int bias_input) {
  if (dense_awaiting_bias_ < 0)
    fail(n,
         "adds a constant that is not the bias of the MatMul just before it; import reads Add only "
         "as that bias");
  Pending& p = layers_[size_t(dense_awaiting_bias_)];
  const Constant& c = weight_input(n, bias_input, "bias");
  const int64_t out = p.spec.units;
  if (c.dims != std::vector<int64_t>{out} && c.dims != std::vector<int64_t>{1, out})
    fail(n, "bias " + c.name + " is " + ints_text(c.dims) + "; import reads a bias of [" +
                std::to_string(out) + "] or [1," + std::to_string(out) + "]");
  if (c.tensor) p.bias = floats(c);
  p.nodes.push_back(node_name(n));
  dense_awaiting_bias_ = -1;
}

void Importer::softmax(const pb::NodeProto& n) {
  if (!shape_.flat)
    fail(n, "on a " + shape_.text() + " image activation; the spec's softmax ends the model");
  const int64_t axis = attr_int(n, "axis").value_or(opset_ >= 13 ? -1 : 1);
  if (axis != 1 && axis != -1)
    fail(n, "axis " + std::to_string(axis) + ": import reads a softmax over the classes (axis 1)");
  if (layers_.empty() || layers_.back().spec.kind != LayerKind::Dense ||
      layers_.back().spec.activation != Activation::None)
    fail(n,
         "does not follow a Gemm or MatMul directly; the spec's softmax is the last dense layer's");
  layers_.back().spec.activation = Activation::Softmax;
  layers_.back().nodes.push_back(node_name(n));
  ended_ = true;
  softmax_node_ = node_name(n);
}

const char* kSupported =
    "import reads Conv, Relu, MaxPool, Flatten, Reshape to [N, -1], Gemm, MatMul + Add, Softmax at "
    "the end, "
    "Identity and Dropout (and Constant, Shape, Gather, Unsqueeze, Concat for the reshape)";

void Importer::chain_node(const pb::NodeProto& n) {
  const std::string& op = n.op_type();
  // The inputs that are activations (not constants, not integer lists).
  std::vector<int> data;
  for (int i = 0; i < n.input_size(); ++i) {
    const std::string& name = n.input(i);
    if (name.empty() || constant(name) || shape_values_.count(name)) continue;
    if (!activations_.count(name)) fail(n, "reads " + name + ", which no earlier node produces");
    data.push_back(i);
  }
  if (data.size() > 1) {
    const std::string what = op == "Add" || op == "Sum"
                                 ? "adds two activations (a residual connection)"
                             : op == "Concat" ? "concatenates activations (a branching graph)"
                                              : "reads two activations (a branching graph)";
    fail(n, what + ", " + n.input(data[0]) + " and " + n.input(data[1]) +
                "; import reads a sequential chain, one layer after another");
  }
  if (data.empty())
    fail(n, "computes on constants only; export with constant folding (the default)");
  const std::string& in = n.input(data[0]);
  if (in != current_)
    fail(n, "reads " + in + ", not the output of the chain's last node (" + current_ +
                "): a branching graph; import reads a sequential chain");
  if (ended_ && op != "Identity" && op != "Dropout")
    fail(n, "comes after the final Softmax (" + softmax_node_ +
                "); the spec's softmax ends the model");
  if (op != "Add" && op != "Identity" && op != "Dropout") dense_awaiting_bias_ = -1;
  const bool first_input = data[0] == 0;
  if (op == "Conv" && first_input)
    conv(n);
  else if (op == "Relu")
    relu(n);
  else if (op == "MaxPool" && first_input)
    maxpool(n);
  else if (op == "Flatten")
    flatten(n, false);
  else if (op == "Reshape" && first_input)
    flatten(n, true);
  else if (op == "Gemm" && first_input)
    dense(n, true);
  else if (op == "MatMul" && first_input)
    dense(n, false);
  else if (op == "Add")
    bias_add(n, data[0] == 0 ? 1 : 0);
  else if (op == "Softmax")
    softmax(n);
  else if (op == "Identity")
    notes_.push_back(node_name(n) + ": Identity skipped");
  else if (op == "Dropout") {
    // From opset 12 a third input may switch training on: only a constant false is read.
    if (n.input_size() > 2 && !n.input(2).empty()) {
      const Constant* c = constant(n.input(2));
      const pb::TensorProto* t = c ? c->tensor : nullptr;
      const bool off = t && t->data_type() == pb::TensorProto::BOOL && c->count == 1 &&
                       (t->has_raw_data() ? t->raw_data()[0] == 0 : t->int32_data(0) == 0);
      if (!off) fail(n, "training_mode is on or not a constant; import reads the inference graph");
    }
    notes_.push_back(node_name(n) + ": Dropout skipped (inference)");
  } else if (op == "BatchNormalization")
    fail(n,
         "BatchNormalization not folded into the Conv before it: export the model in eval mode "
         "(model.eval(), with constant folding), which folds it; the spec has no batch "
         "normalization");
  else if (op == "Conv" || op == "MaxPool" || op == "Reshape" || op == "Gemm" || op == "MatMul")
    fail(n,
         "reads the activation as its input " + std::to_string(data[0]) + " rather than its first");
  else
    fail(n, "unsupported op; " + std::string(kSupported));
  // The chain moves on to this node's first output; further outputs (a Dropout's mask, a
  // MaxPool's indices) are activations no later node may read.
  for (int i = 0; i < n.output_size(); ++i)
    if (!n.output(i).empty()) activations_[n.output(i)] = shape_;
  if (n.output_size() < 1 || n.output(0).empty()) fail(n, "has no output");
  current_ = n.output(0);
}

void Importer::walk() {
  const pb::GraphProto& g = model_.graph();
  for (node_index_ = 0; node_index_ < g.node_size(); ++node_index_) {
    const pb::NodeProto& n = g.node(node_index_);
    if (!n.domain().empty() && n.domain() != "ai.onnx")
      fail(n, "op of the domain " + n.domain() + "; " + kSupported);
    for (const auto& o : n.output())
      if (!o.empty() && (activations_.count(o) || constants_.count(o) || shape_values_.count(o)))
        fail(n, "writes " + o + ", which an earlier node or initializer already defines");
    if (n.op_type() == "Constant") {
      if (n.output_size() != 1)
        fail(n, "has " + std::to_string(n.output_size()) + " outputs, not 1");
      const auto* v = attr(n, "value");
      if (v && v->type() == pb::AttributeProto::TENSOR) {
        add_constant(n.output(0), v->t(), "constant");
      } else if (const auto* vi = attr(n, "value_ints");
                 vi && vi->type() == pb::AttributeProto::INTS) {
        shape_values_[n.output(0)] = {vi->ints().begin(), vi->ints().end()};
        shape_value_rank_[n.output(0)] = 1;
      } else if (const auto* i = attr(n, "value_int"); i && i->type() == pb::AttributeProto::INT) {
        shape_values_[n.output(0)] = {i->i()};
        shape_value_rank_[n.output(0)] = 0;
      } else {
        fail(n, "import reads a Constant with a tensor or integer value");
      }
      continue;
    }
    if (shape_arithmetic(n)) continue;
    chain_node(n);
  }
  if (g.output_size() != 1)
    fail("the graph has " + std::to_string(g.output_size()) + " outputs; a classifier has one");
  if (g.output(0).name() != current_)
    fail("the graph's output " + g.output(0).name() + " is not the end of the chain (" + current_ +
         ")");
}

void Importer::finish(ImportedModel& out) {
  if (layers_.empty()) fail("the graph has no layers");
  Pending& last = layers_.back();
  if (last.spec.kind != LayerKind::Dense)
    fail("the graph ends in " + last.nodes.front() +
         ", not a Gemm or MatMul; the spec's last layer is dense (the class logits)");
  if (last.spec.activation == Activation::Relu)
    fail("the graph ends in a Relu after its last dense layer (" + last.nodes.front() +
         "); the spec's last layer gives the class logits");
  if (last.spec.activation == Activation::None) {
    last.spec.activation = Activation::Softmax;
    notes_.push_back("the graph ends in logits: its last layer becomes dense " +
                     std::to_string(last.spec.units) +
                     " softmax (splitconv trains the last layer with softmax cross-entropy; "
                     "predict gives probabilities)");
  }
  Spec spec;
  spec.source = path_;
  spec.in_h = in_h_, spec.in_w = in_w_, spec.in_c = in_c_;
  // A layer takes its first node's name when every such name is a valid spec name (as in a
  // model splitconv exported); else the default names.
  std::vector<std::string> names;
  for (const auto& p : layers_) {
    spec.layers.push_back(p.spec);
    names.push_back(p.nodes.front());
  }
  const Model model = build_imported(spec, names, path_);
  out.spec = spec;
  out.model = model;
  out.has_weights = has_weights_;
  if (has_weights_) {
    out.params.assign(size_t(model.param_floats), 0.0f);
    for (size_t i = 0; i < layers_.size(); ++i) {
      const Layer& L = model.layers[i];
      const Pending& p = layers_[i];
      for (auto [slot, values] : {std::pair{L.weight, &p.weight}, std::pair{L.bias, &p.bias}}) {
        if (slot < 0) continue;
        const ParamSlot& s = model.slots[size_t(slot)];
        if (int64_t(values->size()) != s.size)
          throw Error(path_ + ": internal: " + s.name + " has " + std::to_string(values->size()) +
                      " values for a slot of " + std::to_string(s.size));
        std::copy(values->begin(), values->end(), out.params.begin() + s.offset);
      }
    }
  }
  out.origin = "ONNX opset " + std::to_string(opset_);
  if (!model_.producer_name().empty()) out.origin += ", " + model_.producer_name();
  if (!model_.producer_version().empty()) out.origin += " " + model_.producer_version();
  out.part_kind = "nodes";
  out.parts = model_.graph().node_size();
  for (size_t i = 0; i < layers_.size(); ++i)
    out.sources.push_back({model.layers[i].name(), layers_[i].nodes});
  out.notes = notes_;
}

ImportedModel Importer::run() {
  read_model();
  read_input();
  walk();
  ImportedModel out;
  finish(out);
  return out;
}

// --- export ---

void add_ints(pb::NodeProto* n, const char* name, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(pb::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

void add_int(pb::NodeProto* n, const char* name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(pb::AttributeProto::INT);
  a->set_i(v);
}

void set_shape(pb::ValueInfoProto* v, const std::string& name, std::vector<int64_t> dims) {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(pb::TensorProto::FLOAT);
  auto* shape = t->mutable_shape();
  shape->add_dim()->set_dim_param("N");
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

}  // namespace

bool onnx_available() { return true; }

ImportedModel import_onnx(const std::string& path) { return Importer(path).run(); }

void export_onnx(const std::string& path, const Model& model, const std::vector<float>& params) {
  if (params.size() != size_t(model.param_floats))
    throw Error(path + ": cannot export: " + std::to_string(params.size()) +
                " parameters for a model of " + std::to_string(model.param_floats));
  pb::ModelProto m;
  m.set_ir_version(7);  // the IR version of opset 13 (ONNX 1.8)
  m.set_producer_name("splitconv");
  m.set_producer_version("0.1.0");
  m.set_doc_string("input: images NCHW float32, pixels / 255; output: class probabilities");
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxExportOpset);
  auto* meta = m.add_metadata_props();
  meta->set_key("splitconv.spec");
  meta->set_value(format_spec(model.spec));
  pb::GraphProto* g = m.mutable_graph();
  g->set_name("splitconv");
  set_shape(g->add_input(), "input", {model.input.c, model.input.h, model.input.w});

  std::string x = "input";
  // Nodes are named after their layer (import takes a layer's name from its first node);
  // activations NAME/out, which no spec name or initializer (NAME.weight) can equal.
  auto node = [&](const std::string& op, const std::string& name, std::vector<std::string> inputs,
                  const std::string& output) {
    pb::NodeProto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(output);
    x = output;
    return n;
  };
  auto initializer = [&](int slot) {
    const ParamSlot& s = model.slots[size_t(slot)];
    pb::TensorProto* t = g->add_initializer();
    t->set_name(s.name);
    t->set_data_type(pb::TensorProto::FLOAT);
    for (int64_t d : s.shape) t->add_dims(d);
    t->set_raw_data(floats_to_le(params.data() + s.offset, size_t(s.size)));
    return s.name;
  };
  for (const Layer& L : model.layers) {
    const LayerSpec& l = L.spec;
    switch (l.kind) {
      case LayerKind::Conv: {
        pb::NodeProto* n =
            node("Conv", l.name, {x, initializer(L.weight), initializer(L.bias)}, l.name + "/out");
        add_ints(n, "kernel_shape", {l.kh, l.kw});
        add_ints(n, "strides", {L.stride, L.stride});
        add_ints(n, "pads", {L.pad_top, L.pad_left, L.pad_bottom, L.pad_right});
        add_ints(n, "dilations", {1, 1});
        add_int(n, "group", 1);
        break;
      }
      case LayerKind::MaxPool: {
        pb::NodeProto* n = node("MaxPool", l.name, {x}, l.name + "/out");
        add_ints(n, "kernel_shape", {l.kh, l.kw});
        add_ints(n, "strides", {L.stride, L.stride});
        add_ints(n, "pads", {0, 0, 0, 0});
        break;
      }
      case LayerKind::Flatten:
        add_int(node("Flatten", l.name, {x}, l.name + "/out"), "axis", 1);
        break;
      case LayerKind::Dense: {
        pb::NodeProto* n =
            node("Gemm", l.name, {x, initializer(L.weight), initializer(L.bias)}, l.name + "/out");
        add_int(n, "transB", 1);
        break;
      }
    }
    if (l.activation == Activation::Relu) node("Relu", l.name + "/relu", {x}, l.name + "/relu");
  }
  // The last layer's softmax (or none: the same network, docs/design.md, Loss) as a Softmax.
  add_int(node("Softmax", "softmax", {x}, "probabilities"), "axis", -1);
  set_shape(g->add_output(), "probabilities", {model.classes});
  try {
    pb::checker::check_model(m);
  } catch (const std::exception& e) {
    throw Error(path + ": internal: the exported model fails the ONNX checker: " + e.what());
  }
  std::string bytes;
  if (!m.SerializeToString(&bytes)) throw Error(path + ": cannot serialise the ONNX model");
  write_file_atomic(path, {{bytes.data(), bytes.size()}}, "ONNX model");
}

}  // namespace splitconv
