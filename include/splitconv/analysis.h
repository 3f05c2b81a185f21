// Parameters, MACs and the split rule (docs/design.md, Numeric conventions): P0 = m(n²c + 1),
// P1 = K(nc + 1) + m(nK + 1), which is m(nc + nm + 2) for K = m.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "splitconv/model.h"

namespace splitconv {

struct SplitAnalysis {
  std::string layer;
  int kh = 0, kw = 0, c = 0, m = 0, rank = 0;  // rank: filters of the n×1 layer
  bool splittable = false;  // a conv with stride 1 and a kernel larger than 1 in both directions
  std::string why_not;      // when not splittable
  int64_t params_before = 0, params_after = 0;
  int64_t macs_before = 0, macs_after = 0;
  bool exact_rule = false;  // P1 < P0
  bool thumb_rule = false;  // weights alone: K(n1·c + n2·m) < m·n1·n2·c (n > 1 + m/c when K = m)
  bool macs_rule = false;   // MACs after < MACs before
};

// rank <= 0 means K = m (the notebook's choice).
SplitAnalysis analyze_split(const Layer& layer, int rank = 0);
std::vector<SplitAnalysis> analyze_splits(const Model& model, int rank = 0);

}  // namespace splitconv
