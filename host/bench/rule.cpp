// The measured split rule: a layer splits where the pair is smaller (P1 < P0) and faster,
// forward + backward, on the device at the layer's shape and batch size. The decision reads a
// timing table only, so a test can hand it any table.
#include "splitconv/bench.h"

namespace splitconv::bench {
namespace {

// Shapes are the same when they run the same work: the rank compared as K.
bool same_work(const ConvCase& a, const ConvCase& b) {
  return a.kh == b.kh && a.kw == b.kw && a.c == b.c && a.m == b.m && a.k() == b.k() &&
         a.h == b.h && a.w == b.w && a.batch == b.batch && a.padding == b.padding;
}

}  // namespace

const ShapeTiming* TimingTable::find(const ConvCase& s) const {
  for (const ShapeTiming& t : rows)
    if (same_work(t.shape, s)) return &t;
  return nullptr;
}

std::vector<MeasuredDecision> measured_rule(const Model& model, int batch, int rank,
                                            const TimingTable& table) {
  std::vector<MeasuredDecision> out;
  for (const Layer& l : model.layers) {
    if (l.kind() != LayerKind::Conv) continue;
    const SplitAnalysis a = analyze_split(l, rank);
    MeasuredDecision d;
    d.layer = l.name();
    d.smaller = a.splittable && a.exact_rule;
    if (a.splittable) {
      if (const ShapeTiming* t = table.find(layer_case(l, batch, rank))) {
        d.timed = true;
        d.nxn_ms = t->nxn_ms;
        d.pair_ms = t->pair_ms;
        d.pair_impl = t->pair_impl;
        d.faster = t->pair_ms > 0 && t->nxn_ms > 0 && t->pair_ms < t->nxn_ms;
      }
    }
    d.split = d.smaller && d.faster;
    out.push_back(d);
  }
  return out;
}

}  // namespace splitconv::bench
