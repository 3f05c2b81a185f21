// The split rule (docs/design.md, Numeric conventions): a layer of m filters n×n over c
// channels has P0 = m(n²c + 1) parameters; the pair (K filters n×1, then m filters 1×n) has
// P1 = K(nc + 1) + m(nK + 1), which is m(nc + nm + 2) for K = m. MACs follow the shapes of
// the two layers.
#include "splitconv/analysis.h"

namespace splitconv {

SplitAnalysis analyze_split(const Layer& layer, int rank) {
  SplitAnalysis a;
  a.layer = layer.name();
  a.kh = layer.spec.kh, a.kw = layer.spec.kw;
  a.c = layer.in.c, a.m = layer.out.c;
  a.rank = rank > 0 ? rank : a.m;
  a.params_before = layer.params;
  a.macs_before = layer.macs;
  if (layer.kind() != LayerKind::Conv) {
    a.why_not = "not a convolution";
    return a;
  }
  if (a.kh < 2 || a.kw < 2) {
    a.why_not = "already n×1 or 1×n";
    return a;
  }
  if (layer.stride != 1) {
    a.why_not = "stride " + std::to_string(layer.stride) + " (only stride 1 splits)";
    return a;
  }
  const int64_t c = a.c, m = a.m, K = a.rank, n1 = a.kh, n2 = a.kw;
  // The n×1 layer pads (or shrinks) the height only; the 1×n layer the width only.
  const Padding pad = layer.spec.padding;
  const int64_t mid_h = conv_out_size(layer.in.h, a.kh, 1, pad), mid_w = layer.in.w;
  const int64_t out_h = mid_h, out_w = conv_out_size(layer.in.w, a.kw, 1, pad);
  // In 64 bits with overflow checks: a rank from the command line can make the pair larger
  // than the layer (docs/design.md, Size limits).
  auto mul = [](std::initializer_list<int64_t> f) {
    int64_t p = 1;
    for (int64_t x : f)
      if (p >= 0) p = product_within(p, x, INT64_MAX);
    return p;
  };
  auto add = [](int64_t x, int64_t y) {
    int64_t s = 0;
    return x < 0 || y < 0 || __builtin_add_overflow(x, y, &s) ? int64_t(-1) : s;
  };
  a.params_after = add(mul({K, add(mul({n1, c}), 1)}), mul({m, add(mul({n2, K}), 1)}));
  a.macs_after = add(mul({mid_h, mid_w, K, n1, c}), mul({out_h, out_w, m, n2, K}));
  const int64_t thumb_lhs = mul({K, add(mul({n1, c}), mul({n2, m}))});
  auto fits = [](int64_t n) { return n >= 0 && n <= kMaxTensor; };
  if (a.params_after < 0 || a.macs_after < 0 || thumb_lhs < 0 || !fits(mul({mid_h, mid_w, K})) ||
      !fits(mul({K, c, n1})) || !fits(mul({m, K, n2}))) {
    a.params_after = a.macs_after = 0;
    a.why_not = "the pair at rank " + std::to_string(K) + " is past the size limits";
    return a;
  }
  a.splittable = true;
  a.exact_rule = a.params_after < a.params_before;
  a.thumb_rule = thumb_lhs < m * n1 * n2 * c;  // n > 1 + m/c when K = m, n1 = n2
  a.macs_rule = a.macs_after < a.macs_before;
  return a;
}

std::vector<SplitAnalysis> analyze_splits(const Model& model, int rank) {
  std::vector<SplitAnalysis> out;
  for (const auto& l : model.layers)
    if (l.kind() == LayerKind::Conv) out.push_back(analyze_split(l, rank));
  return out;
}

}  // namespace splitconv
