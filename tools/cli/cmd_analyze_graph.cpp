// analyze and factorize on an ONNX graph of any CNN (docs/design.md, Real architectures): the
// convs, params and MACs per layer and in total, and the split rules per conv.
#include <algorithm>
#include <cctype>
#include <cstdio>

#include "cli.h"
#include "splitconv/factorize.h"
#include "splitconv/onnx.h"

namespace splitconv::cli {
namespace {

std::string dims_text(const std::vector<int64_t>& d) {
  if (d.size() == 3) return std::to_string(d[1]) + "x" + std::to_string(d[2]) + "x" + std::to_string(d[0]);
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s.empty() ? "-" : s;
}

std::string pair_text(int64_t a, int64_t b) { return std::to_string(a) + "x" + std::to_string(b); }

struct RuleTotals {
  int split = 0;
  int64_t params_after = 0, macs_after = 0;
};

RuleTotals totals_for(const GraphAnalysis& g, const std::vector<SplitAnalysis>& splits,
                      SplitRule rule) {
  RuleTotals t;
  t.params_after = g.total_params, t.macs_after = g.total_macs;
  for (const auto& a : splits) {
    if (!rule_picks(a, rule)) continue;
    ++t.split;
    t.params_after += a.params_after - a.params_before;
    t.macs_after += a.macs_after - a.macs_before;
  }
  return t;
}

std::string change(int64_t before, int64_t after) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.2f%%", before ? 100.0 * double(after - before) / double(before) : 0.0);
  return buf;
}

}  // namespace

bool is_onnx_path(const std::string& path) {
  if (path.size() < 5) return false;
  std::string ext = path.substr(path.size() - 5);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".onnx";
}

nlohmann::json analyze_graph_report(const std::string& path, int rank, const std::string& pick) {
  const GraphAnalysis g = analyze_onnx(path);
  std::vector<SplitAnalysis> splits;
  for (const auto& c : g.convs) splits.push_back(analyze_conv_split(c, rank));

  std::string ops;
  for (const auto& [op, count] : g.op_counts)
    ops += (ops.empty() ? "" : ", ") + op + " " + std::to_string(count);
  std::printf("%s: %s; %d nodes (%s); input %lldx%lldx%lld%s\n", path.c_str(), g.origin.c_str(),
              g.nodes, ops.c_str(), (long long)g.in_h, (long long)g.in_w, (long long)g.in_c,
              g.has_weights ? "" : "; without weights (shapes only)");
  if (g.not_trainable.empty())
    std::printf("  a sequential graph the engines train: splitconv import takes it\n");
  else
    std::printf("  analysed only, not trainable here: %s\n", g.not_trainable.c_str());

  std::printf("  %-28s %-5s %-6s %-6s %-6s %-13s %-17s %12s %15s\n", "layer", "op", "kernel",
              "stride", "groups", "c -> m", "map in -> out", "params", "MACs");
  int64_t norm_params = 0;
  int norm_nodes = 0;
  for (const auto& l : g.layers) {
    if (l.op == "BatchNormalization" || l.op == "InstanceNormalization") {
      norm_params += l.params, ++norm_nodes;
      continue;
    }
    if (l.conv >= 0) {
      const ConvGeometry& c = g.convs[size_t(l.conv)];
      std::printf("  %-28s %-5s %-6s %-6s %-6lld %-13s %-17s %12s %15s\n", l.name.c_str(), "Conv",
                  pair_text(c.kh, c.kw).c_str(), pair_text(c.stride_h, c.stride_w).c_str(),
                  (long long)c.groups,
                  (std::to_string(c.c) + " -> " + std::to_string(c.m)).c_str(),
                  (pair_text(c.in_h, c.in_w) + " -> " + pair_text(c.out_h(), c.out_w())).c_str(),
                  thousands(l.params).c_str(), thousands(l.macs).c_str());
    } else {
      std::printf("  %-28s %-5s %-6s %-6s %-6s %-13s %-17s %12s %15s\n", l.name.c_str(),
                  l.op.substr(0, 5).c_str(), "", "", "", "", ("-> " + dims_text(l.out)).c_str(),
                  thousands(l.params).c_str(), thousands(l.macs).c_str());
    }
  }
  if (norm_nodes)
    std::printf("  %-28s %-5s %-52s %12s %15s\n",
                ("(" + std::to_string(norm_nodes) + " normalizations)").c_str(), "BN",
                "scale and shift; running statistics not counted", thousands(norm_params).c_str(),
                "0");
  std::printf("  %-28s %-5s %-52s %12s %15s\n", "total", "", "", thousands(g.total_params).c_str(),
              thousands(g.total_macs).c_str());

  std::printf("  split n×n into n×1 (stride (s,1)) + 1×n (stride (1,s)), per group: P0 = m(n²c+b), "
              "P1 = K(nc+b) + m(nK+b), c, K per group, b = 1 with a bias; exact rule P1 < P0, "
              "thumb rule n > 1 + m/c\n");
  std::printf("  %-28s %-6s %-6s %-6s %6s %6s %6s %11s %11s %8s %-5s %-5s %-5s %15s %15s\n", "layer",
              "kernel", "stride", "groups", "c", "m", "K", "P0", "P1", "saving", "exact", "thumb",
              "MACs", "MACs before", "MACs after");
  int skipped = 0;
  for (const auto& a : splits) {
    if (!a.splittable) {
      ++skipped;
      continue;
    }
    const double saving = 1.0 - double(a.params_after) / double(a.params_before);
    std::printf("  %-28s %-6s %-6s %-6d %6d %6d %6d %11s %11s %7.1f%% %-5s %-5s %-5s %15s %15s\n",
                a.layer.c_str(), pair_text(a.kh, a.kw).c_str(),
                pair_text(a.stride_h, a.stride_w).c_str(), a.groups, a.c, a.m, a.rank,
                thousands(a.params_before).c_str(), thousands(a.params_after).c_str(),
                100.0 * saving, a.exact_rule ? "Yes" : "No", a.thumb_rule ? "Yes" : "No",
                a.macs_rule ? "Yes" : "No", thousands(a.macs_before).c_str(),
                thousands(a.macs_after).c_str());
  }
  if (skipped)
    std::printf("  (%d conv(s) not listed: 1×1, n×1 or 1×n already%s)\n", skipped,
                rank > 0 ? ", or the rank does not divide into their groups" : "");

  nlohmann::json j;
  j["model"] = path;
  j["origin"] = g.origin;
  j["nodes"] = g.nodes;
  j["ops"] = nlohmann::json::object();
  for (const auto& [op, count] : g.op_counts) j["ops"][op] = count;
  j["input"] = {{"h", g.in_h}, {"w", g.in_w}, {"c", g.in_c}};
  j["has_weights"] = g.has_weights;
  j["trainable"] = g.not_trainable.empty();
  if (!g.not_trainable.empty()) j["not_trainable"] = g.not_trainable;
  j["layers"] = nlohmann::json::array();
  for (const auto& l : g.layers)
    j["layers"].push_back({{"name", l.name}, {"node", l.node}, {"op", l.op}, {"output", l.out},
                           {"params", l.params}, {"macs", l.macs}});
  j["total_params"] = g.total_params;
  j["total_macs"] = g.total_macs;
  j["split"] = nlohmann::json::array();
  for (size_t i = 0; i < splits.size(); ++i) {
    const SplitAnalysis& a = splits[i];
    const ConvGeometry& c = g.convs[i];
    nlohmann::json s = {{"layer", a.layer},
                        {"kernel", {a.kh, a.kw}},
                        {"stride", {c.stride_h, c.stride_w}},
                        {"dilation", {c.dilation_h, c.dilation_w}},
                        {"pads", {c.pad_top, c.pad_left, c.pad_bottom, c.pad_right}},
                        {"groups", a.groups},
                        {"c", a.c},
                        {"m", a.m},
                        {"map_in", {c.in_h, c.in_w}},
                        {"map_out", {c.out_h(), c.out_w()}},
                        {"bias", c.bias},
                        {"rank", a.rank},
                        {"splittable", a.splittable},
                        {"params_before", a.params_before},
                        {"macs_before", a.macs_before},
                        {"params_after", a.splittable ? a.params_after : a.params_before},
                        {"macs_after", a.splittable ? a.macs_after : a.macs_before},
                        {"exact_rule", a.exact_rule},
                        {"thumb_rule", a.thumb_rule},
                        {"macs_rule", a.macs_rule}};
    if (!a.splittable) s["why_not"] = a.why_not;
    j["split"].push_back(s);
  }
  j["rules"] = nlohmann::json::object();
  for (const auto& [name, rule] : {std::pair{"exact", SplitRule::Exact},
                                   std::pair{"thumb", SplitRule::Thumb},
                                   std::pair{"macs", SplitRule::Macs}}) {
    const RuleTotals t = totals_for(g, splits, rule);
    std::printf("  %-5s rule: splits %d of %zu convs; params %s -> %s (%s), MACs %s -> %s (%s)\n",
                name, t.split, splits.size(), thousands(g.total_params).c_str(),
                thousands(t.params_after).c_str(), change(g.total_params, t.params_after).c_str(),
                thousands(g.total_macs).c_str(), thousands(t.macs_after).c_str(),
                change(g.total_macs, t.macs_after).c_str());
    j["rules"][name] = {{"split", t.split}, {"params_after", t.params_after},
                        {"macs_after", t.macs_after}};
  }
  if (!pick.empty()) {
    const SplitRule rule = parse_rule(pick);
    std::vector<std::string> chosen;
    for (const auto& a : splits)
      if (rule_picks(a, rule)) chosen.push_back(a.layer);
    const RuleTotals t = totals_for(g, splits, rule);
    std::string list;
    for (const auto& c : chosen) list += (list.empty() ? "" : ", ") + c;
    std::printf("factorize --rule %s would split %zu conv(s)%s%s\n", pick.c_str(), chosen.size(),
                chosen.empty() ? "" : ": ", list.c_str());
    j["factorize"] = {{"rule", pick}, {"layers", chosen}, {"params_after", t.params_after},
                      {"macs_after", t.macs_after}};
  }
  return j;
}

}  // namespace splitconv::cli
