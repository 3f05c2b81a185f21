// Fuzz target: the model spec parser and everything that reads a parsed spec without data
// (shape inference and size limits, the step plan, the split analysis, factorize).
//
// Promises checked: bad text is an InputError; format_spec's text parses back to the same
// canonical text; a spec that builds plans at batch 1 and 65,536 or is refused with an
// InputError; a factorized spec is itself a spec that parses and builds (or is refused).
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "splitconv/analysis.h"
#include "splitconv/error.h"
#include "splitconv/factorize.h"
#include "splitconv/model.h"
#include "splitconv/plan.h"
#include "splitconv/spec.h"

using namespace splitconv;

namespace {

// Text → Spec → canonical text → Spec → the same canonical text.
void round_trip(const Spec& spec, const char* what) {
  std::string canon = format_spec(spec);
  Spec again;
  try {
    again = parse_spec(canon, "canonical.net");
  } catch (const InputError& e) {
    fuzz::fail(std::string(what) + ": format_spec wrote text that does not parse: " + e.what() +
               "\n" + canon);
  }
  if (format_spec(again) != canon)
    fuzz::fail(std::string(what) + ": the canonical text changed on a second round:\n" + canon);
}

void use_model(const Model& model) {
  try {
    make_plan(model, 1);
    make_plan(model, 65536);
  } catch (const InputError&) {
  }
  analyze_splits(model);
  analyze_splits(model, 1);
  for (SplitRule rule : {SplitRule::Exact, SplitRule::All}) {
    FactorizeOptions opts;
    opts.rule = rule;
    opts.mid_relu = rule == SplitRule::All;
    FactorizeResult split = factorize_spec(model, opts);
    round_trip(split.spec, "factorized spec");
    try {
      build_model(split.spec);
    } catch (const InputError&) {
    }
  }
}

}  // namespace

SPLITCONV_FUZZ_TARGET(spec) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Spec spec;
  try {
    spec = parse_spec(text, "fuzz.net");
  } catch (const InputError&) {
    return 0;
  }
  round_trip(spec, "parsed spec");
  Model model;
  try {
    model = build_model(spec);
  } catch (const InputError&) {
    return 0;
  }
  use_model(model);
  return 0;
}
