// Rewrites a spec: each chosen KH×KW conv becomes NAME_v (K filters KH×1) then NAME_h
// (m filters 1×KW), the pair keeping the original's padding and activation.
#include "splitconv/factorize.h"

#include <algorithm>

#include "splitconv/analysis.h"
#include "splitconv/error.h"

namespace splitconv {

SplitRule parse_rule(const std::string& text) {
  if (text == "exact") return SplitRule::Exact;
  if (text == "thumb") return SplitRule::Thumb;
  if (text == "macs") return SplitRule::Macs;
  if (text == "all") return SplitRule::All;
  throw InputError("--rule: expected exact, thumb, macs or all, got '" + text + "'");
}

bool rule_picks(const SplitAnalysis& a, SplitRule rule) {
  if (!a.splittable) return false;
  switch (rule) {
    case SplitRule::Exact: return a.exact_rule;
    case SplitRule::Thumb: return a.thumb_rule;
    case SplitRule::Macs: return a.macs_rule;
    case SplitRule::All: return true;
  }
  return false;
}

static int rank_of(const FactorizeOptions& opts, const std::string& layer) {
  auto it = opts.layer_rank.find(layer);
  return it != opts.layer_rank.end() ? it->second : opts.rank;
}

FactorizeResult factorize_spec(const Model& model, const FactorizeOptions& opts) {
  for (const auto& name : opts.layers) {
    auto it = std::find_if(model.layers.begin(), model.layers.end(),
                           [&](const Layer& l) { return l.name() == name; });
    if (it == model.layers.end())
      throw InputError(model.spec.source + ": no layer named '" + name + "'");
    auto a = analyze_split(*it, rank_of(opts, name));
    if (!a.splittable)
      throw InputError(model.spec.source + ": layer " + name + " cannot be split: " + a.why_not);
  }
  FactorizeResult r;
  r.spec = model.spec;
  r.spec.layers.clear();
  for (const auto& l : model.layers) {
    auto a = analyze_split(l, rank_of(opts, l.name()));
    bool split = opts.layers.empty()
                     ? rule_picks(a, opts.rule)
                     : std::find(opts.layers.begin(), opts.layers.end(), l.name()) !=
                           opts.layers.end();
    if (!split) {
      r.spec.layers.push_back(l.spec);
      continue;
    }
    LayerSpec v = l.spec, h = l.spec;
    v.name = l.name() + "_v";
    v.units = a.rank;
    v.kw = 1;
    v.activation = opts.mid_relu ? l.spec.activation : Activation::None;
    h.name = l.name() + "_h";
    h.kh = 1;
    r.spec.layers.push_back(v);
    r.spec.layers.push_back(h);
    r.split.push_back(l.name());
  }
  return r;
}

}  // namespace splitconv
