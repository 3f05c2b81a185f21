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
  a.splittable = true;
  const int64_t c = a.c, m = a.m, K = a.rank, n1 = a.kh, n2 = a.kw;
  a.params_after = K * (n1 * c + 1) + m * (n2 * K + 1);
  // The n×1 layer pads (or shrinks) the height only; the 1×n layer the width only.
  const Padding pad = layer.spec.padding;
  const int64_t mid_h = conv_out_size(layer.in.h, a.kh, 1, pad), mid_w = layer.in.w;
  const int64_t out_h = mid_h, out_w = conv_out_size(layer.in.w, a.kw, 1, pad);
  a.macs_after = mid_h * mid_w * K * n1 * c + out_h * out_w * m * n2 * K;
  a.exact_rule = a.params_after < a.params_before;
  a.thumb_rule = K * (n1 * c + n2 * m) < m * n1 * n2 * c;  // n > 1 + m/c when K = m, n1 = n2
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
