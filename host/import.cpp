// What the importers share (splitconv/import.h): naming and building the imported spec.
#include "splitconv/import.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "splitconv/error.h"

namespace splitconv {

bool is_spec_name(const std::string& s) {
  if (s.empty() || s.size() > 64 || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
  });
}

Model build_imported(Spec& spec, const std::vector<std::string>& names, const std::string& path) {
  std::map<std::string, int> counts;
  for (auto& l : spec.layers) {
    const char* prefix = l.kind == LayerKind::Conv      ? "conv"
                         : l.kind == LayerKind::MaxPool ? "pool"
                         : l.kind == LayerKind::Dense   ? "dense"
                                                        : "flatten";
    l.name = prefix + std::to_string(++counts[prefix]);
  }
  // Through the spec's text, so the spec's checks (sizes, shapes) speak of its lines.
  auto build = [&](const Spec& s) {
    return build_model(parse_spec(format_spec(s), path + ":spec"));
  };
  bool named = names.size() == spec.layers.size();
  std::set<std::string> seen;
  for (const auto& n : names) named = named && is_spec_name(n) && seen.insert(n).second;
  if (named) {
    Spec with = spec;
    for (size_t i = 0; i < names.size(); ++i) with.layers[i].name = names[i];
    try {
      Model m = build(with);
      spec = m.spec;
      return m;
    } catch (const InputError&) {
      // A name that equals another layer's default name: the defaults below.
    }
  }
  try {
    Model m = build(spec);
    spec = m.spec;
    return m;
  } catch (const InputError& e) {
    throw InputError(path + ": the imported model does not build: " + e.what());
  }
}

}  // namespace splitconv
