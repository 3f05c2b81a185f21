// What the benchmark commands and the measured rule share on the command line.
#include <cstdio>

#include "cli.h"
#include "splitconv/backend.h"
#include "splitconv/error.h"

namespace splitconv::cli {

void parse_size(const std::string& text, const char* option, int* h, int* w) {
  int a = 0, b = 0, used = 0;
  char x = 0;
  if (std::sscanf(text.c_str(), "%d%c%d%n", &a, &x, &b, &used) != 3 || (x != 'x' && x != 'X') ||
      a <= 0 || b <= 0 || size_t(used) != text.size())
    throw InputError(std::string(option) + ": expected HxW, e.g. 28x28, got '" + text + "'");
  *h = a, *w = b;
}

Padding parse_padding(const std::string& text) {
  if (text == "valid") return Padding::Valid;
  if (text == "same") return Padding::Same;
  throw InputError("--padding: expected valid or same, got '" + text + "'");
}

std::string bench_device(const std::string& device) {
  if (device == "cpu" || device == "cuda") return device;
  if (device == "auto") return cuda_status().devices.empty() ? "cpu" : "cuda";
  throw InputError("--device: expected cpu, cuda or auto, got '" + device + "'");
}

bench::TimingOptions rule_timing(const std::string& device, int runs) {
  bench::TimingOptions o = bench::default_timing(device);
  o.runs = runs > 0 ? runs : 5;
  o.budget_s = 0.3;
  return o;
}

std::string measured_table(const std::vector<SplitAnalysis>& splits,
                           const std::vector<bench::MeasuredDecision>& decisions,
                           const bench::TimingTable& table, int batch) {
  std::string out = "  measured rule on " + table.description + ", batch " + std::to_string(batch) +
                    ": forward + backward of the n×n and of its fastest pair; split when P1 < P0 "
                    "and the pair is faster\n  (P1<P0: the parameter rule; M1<M0: the MAC rule, "
                    "fewer MACs after the split)\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-10s %-6s %-7s %-6s %10s %10s %-10s %9s  %s\n", "layer",
                "kernel", "P1<P0", "M1<M0", "nxn ms", "pair ms", "(impl)", "pair/nxn", "measured");
  out += line;
  for (size_t i = 0; i < splits.size() && i < decisions.size(); ++i) {
    const SplitAnalysis& a = splits[i];
    const bench::MeasuredDecision& d = decisions[i];
    const std::string kernel = std::to_string(a.kh) + "x" + std::to_string(a.kw);
    if (!a.splittable) {
      std::snprintf(line, sizeof line, "  %-10s %-6s (%s)\n", a.layer.c_str(), kernel.c_str(),
                    a.why_not.c_str());
      out += line;
      continue;
    }
    std::snprintf(line, sizeof line, "  %-10s %-6s %-7s %-6s %10.3f %10.3f %-10s %8.2fx  %s\n",
                  a.layer.c_str(), kernel.c_str(), a.exact_rule ? "Yes" : "No",
                  a.macs_rule ? "Yes" : "No", d.nxn_ms, d.pair_ms, ("(" + d.pair_impl + ")").c_str(),
                  d.nxn_ms > 0 ? d.pair_ms / d.nxn_ms : 0.0, d.split ? "Yes" : "No");
    out += line;
  }
  return out;
}

void add_measured_json(nlohmann::json& report, const std::vector<bench::MeasuredDecision>& d,
                       const bench::TimingTable& table, int batch) {
  report["measured"] = {{"device", table.device}, {"description", table.description},
                        {"batch", batch}};
  auto& split = report["split"];
  for (size_t i = 0; i < d.size() && i < split.size(); ++i) {
    split[i]["measured_rule"] = d[i].split;
    if (!d[i].timed) continue;
    split[i]["nxn_ms"] = d[i].nxn_ms;
    split[i]["pair_ms"] = d[i].pair_ms;
    split[i]["pair_impl"] = d[i].pair_impl;
  }
}

}  // namespace splitconv::cli
