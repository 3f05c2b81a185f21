// The split rule (docs/design.md, Numeric conventions): a layer of m filters n×n over c
// channels has P0 = m(n²c + 1) parameters; the pair (K filters n×1, then m filters 1×n) has
// P1 = K(nc + 1) + m(nK + 1), which is m(nc + nm + 2) for K = m. MACs follow the shapes of
// the two layers. A grouped conv is the same per group.
#include "splitconv/analysis.h"

namespace splitconv {
namespace {

// In 64 bits with overflow checks: -1 when past INT64_MAX (a rank from the command line, or
// a graph from a file, can make the numbers large; docs/design.md, Size limits).
int64_t mul(std::initializer_list<int64_t> f) {
  int64_t p = 1;
  for (int64_t x : f)
    if (p >= 0) p = x < 0 ? -1 : product_within(p, x, INT64_MAX);
  return p;
}
int64_t add(int64_t x, int64_t y) {
  int64_t s = 0;
  return x < 0 || y < 0 || __builtin_add_overflow(x, y, &s) ? int64_t(-1) : s;
}

int64_t out_size(int64_t in, int64_t k, int64_t stride, int64_t dilation, int64_t pads) {
  const int64_t span = dilation * (k - 1) + 1;
  const int64_t room = in + pads - span;
  return room < 0 ? 0 : room / stride + 1;
}

}  // namespace

int64_t ConvGeometry::out_h() const {
  return out_size(in_h, kh, stride_h, dilation_h, pad_top + pad_bottom);
}
int64_t ConvGeometry::out_w() const {
  return out_size(in_w, kw, stride_w, dilation_w, pad_left + pad_right);
}

SplitAnalysis analyze_conv_split(const ConvGeometry& g, int rank) {
  SplitAnalysis a;
  a.layer = g.name;
  a.kh = int(g.kh), a.kw = int(g.kw);
  a.c = int(g.c), a.m = int(g.m);
  a.groups = int(g.groups);
  a.stride_h = int(g.stride_h), a.stride_w = int(g.stride_w);
  a.rank = rank > 0 ? rank : a.m;
  const int64_t b = g.bias ? 1 : 0;
  const int64_t cg = g.c / g.groups;
  const int64_t out_h = g.out_h(), out_w = g.out_w();
  a.params_before = add(mul({g.m, g.kh, g.kw, cg}), mul({g.m, b}));
  a.macs_before = mul({out_h, out_w, g.m, cg, g.kh, g.kw});
  if (g.kh < 2 || g.kw < 2) {
    a.why_not = "already n×1 or 1×n";
    return a;
  }
  if (a.rank % g.groups != 0) {
    a.why_not = "rank " + std::to_string(a.rank) + " is not a multiple of its " +
                std::to_string(g.groups) + " groups";
    return a;
  }
  const int64_t c = cg, m = g.m, K = a.rank, Kg = K / g.groups, n1 = g.kh, n2 = g.kw;
  // The kh×1 layer strides, dilates and pads the height only; the 1×kw layer the width only.
  const int64_t mid_h = out_h, mid_w = g.in_w;
  a.params_after = add(mul({K, add(mul({n1, c}), b)}), mul({m, add(mul({n2, Kg}), b)}));
  a.macs_after = add(mul({mid_h, mid_w, K, n1, c}), mul({out_h, out_w, m, n2, Kg}));
  const int64_t thumb_lhs = mul({K, add(mul({n1, c}), mul({n2, m / g.groups}))});
  const int64_t thumb_rhs = mul({m, n1, n2, c});
  auto fits = [](int64_t n) { return n >= 0 && n <= kMaxTensor; };
  if (a.params_before < 0 || a.macs_before < 0 || a.params_after < 0 || a.macs_after < 0 ||
      thumb_lhs < 0 || thumb_rhs < 0 || !fits(mul({mid_h, mid_w, K})) || !fits(mul({K, c, n1})) ||
      !fits(mul({m, Kg, n2}))) {
    a.params_after = a.macs_after = 0;
    a.why_not = "the pair at rank " + std::to_string(K) + " is past the size limits";
    return a;
  }
  a.splittable = true;
  a.exact_rule = a.params_after < a.params_before;
  a.thumb_rule = thumb_lhs < thumb_rhs;  // n > 1 + m/c per group when K = m, n1 = n2
  a.macs_rule = a.macs_after < a.macs_before;
  return a;
}

SplitAnalysis analyze_split(const Layer& layer, int rank) {
  if (layer.kind() != LayerKind::Conv) {
    SplitAnalysis a;
    a.layer = layer.name();
    a.kh = layer.spec.kh, a.kw = layer.spec.kw;
    a.c = layer.in.c, a.m = layer.out.c;
    a.rank = rank > 0 ? rank : a.m;
    a.params_before = layer.params;
    a.macs_before = layer.macs;
    a.why_not = "not a convolution";
    return a;
  }
  ConvGeometry g;
  g.name = layer.name();
  g.c = layer.in.c, g.m = layer.out.c;
  g.kh = layer.spec.kh, g.kw = layer.spec.kw;
  g.stride_h = g.stride_w = layer.stride;
  g.pad_top = layer.pad_top, g.pad_left = layer.pad_left;
  g.pad_bottom = layer.pad_bottom, g.pad_right = layer.pad_right;
  g.in_h = layer.in.h, g.in_w = layer.in.w;
  SplitAnalysis a = analyze_conv_split(g, rank);
  a.params_before = layer.params;
  a.macs_before = layer.macs;
  if (a.splittable && layer.stride != 1) {
    const std::string s = std::to_string(layer.stride);
    a.splittable = a.exact_rule = a.thumb_rule = a.macs_rule = false;
    a.params_after = a.macs_after = 0;
    a.why_not = "stride " + s + " (only stride 1 splits in a spec: the pair needs strides (" + s +
                ", 1) and (1, " + s + "))";
  }
  return a;
}

std::vector<SplitAnalysis> analyze_splits(const Model& model, int rank) {
  std::vector<SplitAnalysis> out;
  for (const auto& l : model.layers)
    if (l.kind() == LayerKind::Conv) out.push_back(analyze_split(l, rank));
  return out;
}

}  // namespace splitconv
