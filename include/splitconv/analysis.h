// Parameters, MACs and the split rule (docs/design.md, Numeric conventions): P0 = m(n²c + 1),
// P1 = K(nc + 1) + m(nK + 1), which is m(nc + nm + 2) for K = m. A grouped conv (g groups) is
// analysed per group: c and m above are then c/g and m/g, K/g per group.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "splitconv/model.h"

namespace splitconv {

struct SplitAnalysis {
  std::string layer;
  int kh = 0, kw = 0, c = 0, m = 0, rank = 0;  // rank: filters of the n×1 layer (all groups)
  int groups = 1, stride_h = 1, stride_w = 1;
  bool splittable = false;  // a conv with a kernel larger than 1 in both directions
  std::string why_not;      // when not splittable
  int64_t params_before = 0, params_after = 0;
  int64_t macs_before = 0, macs_after = 0;
  bool exact_rule = false;  // P1 < P0
  bool thumb_rule = false;  // weights alone: K(n1·c + n2·m) < m·n1·n2·c (n > 1 + m/c when K = m)
  bool macs_rule = false;   // MACs after < MACs before
};

// A 2-D convolution as any graph may hold it: NCHW, OIHW weights of [m, c/groups, kh, kw].
struct ConvGeometry {
  std::string name;
  int64_t c = 0, m = 0, groups = 1, kh = 0, kw = 0;
  int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t in_h = 0, in_w = 0;
  bool bias = true;
  int64_t out_h() const;  // < 1 when the kernel does not fit
  int64_t out_w() const;
};

// The conv against its pair: K filters kh×1 with stride (sh, 1), dilation (dh, 1) and pads
// (top, bottom), then m filters 1×kw with stride (1, sw), dilation (1, dw) and pads (left,
// right) — the same output map. Both layers keep the groups (K and m multiples of g) and
// have a bias when the conv has one: P1 = K(n1·c/g + b) + m(n2·K/g + b). rank <= 0: K = m.
SplitAnalysis analyze_conv_split(const ConvGeometry& conv, int rank = 0);

// A spec layer: the spec has one stride for both directions, so a strided layer is reported
// as not splittable here (its pair needs strides (s, 1) and (1, s)).
SplitAnalysis analyze_split(const Layer& layer, int rank = 0);
std::vector<SplitAnalysis> analyze_splits(const Model& model, int rank = 0);

}  // namespace splitconv
