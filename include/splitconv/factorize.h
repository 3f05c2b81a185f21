// Rewrites a spec with chosen n×n convolutions split into n×1 then 1×n.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "splitconv/analysis.h"
#include "splitconv/model.h"
#include "splitconv/spec.h"

namespace splitconv {

enum class SplitRule { Exact, Thumb, Macs, All };

struct FactorizeOptions {
  SplitRule rule = SplitRule::Exact;
  int rank = 0;                       // <= 0: K = m
  std::map<std::string, int> layer_rank;  // per-layer K, overriding rank for the layers named
  std::vector<std::string> layers;    // explicit layers; overrides the rule when not empty
  bool mid_relu = true;               // ReLU between the pair (the notebook's choice)
};

struct FactorizeResult {
  Spec spec;
  std::vector<std::string> split;     // names of the layers that were split
};

// Names of the pair: NAME_v (n×1) and NAME_h (1×n). Throws InputError for an unknown or
// unsplittable layer named in opts.layers.
FactorizeResult factorize_spec(const Model& model, const FactorizeOptions& opts);
SplitRule parse_rule(const std::string& text);
// Whether `rule` chooses to split a layer with this analysis (a layer that cannot be split
// never is).
bool rule_picks(const SplitAnalysis& a, SplitRule rule);

}  // namespace splitconv
