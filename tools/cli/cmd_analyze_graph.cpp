// analyze and factorize on an ONNX graph of any CNN (docs/design.md, Real architectures): the
// convs, params and MACs per layer and in total, and the split rules per conv.
#include <algorithm>
#include <cctype>
#include <cstdio>

#include "cli.h"
#include "splitconv/bench.h"
#include "splitconv/error.h"
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

// The benchmark's case for a conv of a graph, or why it has none (it times stride-1,
// ungrouped, undilated convs padded valid or as the spec's same).
std::string bench_case(const ConvGeometry& c, int batch, int rank, bench::ConvCase* out) {
  if (c.groups != 1) return "groups " + std::to_string(c.groups);
  if (c.stride_h != 1 || c.stride_w != 1) return "stride " + pair_text(c.stride_h, c.stride_w);
  if (c.dilation_h != 1 || c.dilation_w != 1) return "dilation";
  const bool valid = c.pad_top == 0 && c.pad_left == 0 && c.pad_bottom == 0 && c.pad_right == 0;
  const bool same = c.pad_top == (c.kh - 1) / 2 && c.pad_bottom == c.kh - 1 - (c.kh - 1) / 2 &&
                    c.pad_left == (c.kw - 1) / 2 && c.pad_right == c.kw - 1 - (c.kw - 1) / 2;
  if (!valid && !same) return "pads neither valid nor same";
  out->kh = int(c.kh), out->kw = int(c.kw);
  out->c = int(c.c), out->m = int(c.m);
  out->rank = rank;
  out->h = int(c.in_h), out->w = int(c.in_w);
  out->batch = batch;
  out->padding = valid ? Padding::Valid : Padding::Same;
  return "";
}

}  // namespace

bool is_onnx_path(const std::string& path) {
  if (path.size() < 5) return false;
  std::string ext = path.substr(path.size() - 5);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".onnx";
}

nlohmann::json analyze_graph_report(const std::string& path, int rank, const std::string& pick,
                                    const GraphMeasure& measure) {
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
  if (!measure.device.empty()) {
    std::fflush(stdout);
    const bench::TimingOptions timing = rule_timing(measure.device, measure.runs);
    std::vector<std::pair<bench::ConvCase, bench::ConvBenchResult>> timed;  // each shape once
    std::string description = measure.device;
    double nxn_total = 0, chosen_total = 0;
    int split = 0, timed_convs = 0;
    std::printf("  measured rule on %s, batch %d: forward + backward of the n×n and of its "
                "fastest pair; split when P1 < P0 and the pair is faster\n",
                measure.device.c_str(), measure.batch);
    std::printf("  %-28s %-6s %-13s %-9s %-6s %-6s %10s %10s %9s  %s\n", "layer", "kernel",
                "c -> m", "map", "P1<P0", "M1<M0", "nxn ms", "pair ms", "pair/nxn", "measured");
    for (size_t i = 0; i < splits.size(); ++i) {
      SplitAnalysis& a = splits[i];
      nlohmann::json& js = j["split"][i];
      js["measured_rule"] = false;
      if (!a.splittable) continue;
      const ConvGeometry& c = g.convs[i];
      bench::ConvCase cc;
      const std::string why = bench_case(c, measure.batch, rank, &cc);
      const std::string cm = std::to_string(c.c) + " -> " + std::to_string(c.m);
      if (!why.empty()) {
        std::printf("  %-28s %-6s %-13s %-9s (not timed: %s)\n", a.layer.c_str(),
                    pair_text(a.kh, a.kw).c_str(), cm.c_str(), pair_text(c.in_h, c.in_w).c_str(),
                    why.c_str());
        js["not_timed"] = why;
        continue;
      }
      auto it = std::find_if(timed.begin(), timed.end(), [&](const auto& t) { return t.first == cc; });
      if (it == timed.end()) {
        timed.push_back({cc, bench::bench_conv(cc, measure.device, timing)});
        it = timed.end() - 1;
      }
      const bench::ConvBenchResult& r = it->second;
      description = r.description;
      const bench::VariantResult* n = bench::fastest(r, "nxn", true);
      const bench::VariantResult* p = bench::fastest(r, "pair", true);
      if (!r.all_valid() || !n || !p)
        throw Error("measured rule: " + a.layer + " (" + bench::describe(cc) + "): " +
                    (r.all_valid() ? "no valid timing" : "a variant does not match the CPU reference") +
                    "\n" + bench::format_conv(r));
      const bool faster = p->train_ms < n->train_ms;
      const bool chosen = a.exact_rule && faster;
      ++timed_convs;
      split += chosen;
      nxn_total += n->train_ms;
      chosen_total += chosen ? p->train_ms : n->train_ms;
      std::printf("  %-28s %-6s %-13s %-9s %-6s %-6s %10.3f %10.3f %8.2fx  %s\n", a.layer.c_str(),
                  pair_text(a.kh, a.kw).c_str(), cm.c_str(), pair_text(c.in_h, c.in_w).c_str(),
                  a.exact_rule ? "Yes" : "No", a.macs_rule ? "Yes" : "No", n->train_ms,
                  p->train_ms, p->train_ms / n->train_ms, chosen ? "Yes" : "No");
      js["measured_rule"] = chosen;
      js["nxn_ms"] = n->train_ms;
      js["pair_ms"] = p->train_ms;
      js["pair_impl"] = p->impl;
    }
    std::printf("  measured rule on %s: splits %d of the %d timed convs; their forward + backward "
                "%.3f ms -> %.3f ms (%s)\n",
                description.c_str(), split, timed_convs, nxn_total, chosen_total,
                nxn_total > 0 ? change(int64_t(nxn_total * 1e6), int64_t(chosen_total * 1e6)).c_str() : "-");
    j["measured"] = {{"device", measure.device}, {"description", description},
                     {"batch", measure.batch}, {"timed_convs", timed_convs}, {"split", split},
                     {"nxn_ms_total", nxn_total}, {"chosen_ms_total", chosen_total}};
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
