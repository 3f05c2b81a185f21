// splitconv analyze MODEL...: a Keras-like summary and the split analysis of every conv.
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "splitconv/error.h"
#include "splitconv/spec.h"

namespace splitconv::cli {
namespace {

nlohmann::json analysis_json(const Model& m, const std::vector<SplitAnalysis>& splits) {
  nlohmann::json j;
  j["model"] = m.spec.source;
  j["layers"] = nlohmann::json::array();
  for (const auto& l : m.layers)
    j["layers"].push_back({{"name", l.name()},
                           {"type", to_string(l.kind())},
                           {"output", {{"h", l.out.h}, {"w", l.out.w}, {"c", l.out.c}}},
                           {"params", l.params},
                           {"macs", l.macs}});
  j["total_params"] = m.total_params;
  j["total_macs"] = m.total_macs;
  j["split"] = nlohmann::json::array();
  for (const auto& a : splits) {
    nlohmann::json s = {{"layer", a.layer},   {"kernel", {a.kh, a.kw}},
                        {"c", a.c},           {"m", a.m},
                        {"rank", a.rank},     {"splittable", a.splittable},
                        {"params_before", a.params_before}, {"macs_before", a.macs_before}};
    if (a.splittable) {
      s["params_after"] = a.params_after;
      s["macs_after"] = a.macs_after;
      s["exact_rule"] = a.exact_rule;
      s["thumb_rule"] = a.thumb_rule;
      s["macs_rule"] = a.macs_rule;
    } else {
      s["params_after"] = a.params_before;
      s["macs_after"] = a.macs_before;
      s["exact_rule"] = false;
      s["thumb_rule"] = false;
      s["macs_rule"] = false;
      s["why_not"] = a.why_not;
    }
    j["split"].push_back(s);
  }
  return j;
}

void print_summary(const Model& m) {
  std::printf("%s: input %s\n", m.spec.source.c_str(), hwc(m.input).c_str());
  std::printf("  %-12s %-8s %-12s %10s %14s\n", "layer", "type", "output", "params", "MACs");
  for (const auto& l : m.layers) {
    std::string kind = to_string(l.kind());
    if (l.kind() == LayerKind::Conv || l.kind() == LayerKind::MaxPool)
      kind += " " + std::to_string(l.spec.kh) + "x" + std::to_string(l.spec.kw);
    std::printf("  %-12s %-12s %-8s %10s %14s\n", l.name().c_str(), kind.c_str(),
                hwc(l.out).c_str(), thousands(l.params).c_str(), thousands(l.macs).c_str());
  }
  std::printf("  %-12s %-12s %-8s %10s %14s\n", "total", "", "", thousands(m.total_params).c_str(),
              thousands(m.total_macs).c_str());
}

void print_splits(const std::vector<SplitAnalysis>& splits) {
  std::printf("  split n×n into n×1 + 1×n: P0 = m(n²c+1), P1 = K(nc+1) + m(nK+1); exact rule P1 < P0, "
              "thumb rule n > 1 + m/c\n");
  std::printf("  %-10s %-6s %5s %5s %5s %9s %9s %8s %-6s %-6s %12s %12s\n", "layer", "kernel",
              "c", "m", "K", "P0", "P1", "saving", "exact", "thumb", "MACs before", "MACs after");
  for (const auto& a : splits) {
    std::string kernel = std::to_string(a.kh) + "x" + std::to_string(a.kw);
    if (!a.splittable) {
      std::printf("  %-10s %-6s %5d %5d %5s %9s %9s %8s  (%s)\n", a.layer.c_str(), kernel.c_str(),
                  a.c, a.m, "-", thousands(a.params_before).c_str(), "-", "-", a.why_not.c_str());
      continue;
    }
    double saving = 1.0 - double(a.params_after) / double(a.params_before);
    std::printf("  %-10s %-6s %5d %5d %5d %9s %9s %7.1f%% %-6s %-6s %12s %12s\n", a.layer.c_str(),
                kernel.c_str(), a.c, a.m, a.rank, thousands(a.params_before).c_str(),
                thousands(a.params_after).c_str(), 100.0 * saving, a.exact_rule ? "Yes" : "No",
                a.thumb_rule ? "Yes" : "No", thousands(a.macs_before).c_str(),
                thousands(a.macs_after).c_str());
  }
}

// What training `m` at `batch` would allocate on the CPU (the engine's own estimate; the
// CUDA engines do not estimate theirs), or why it cannot be planned.
void print_memory(const Model& m, const Backend& cpu, int batch, nlohmann::json& report) {
  nlohmann::json j = {{"device", "cpu"}, {"description", cpu.description()}, {"batch", batch}};
  std::string text;
  try {
    const MemoryEstimate need = *cpu.memory_estimate(m, batch);
    text = memory_text(need);
    j.update(memory_json(need));
  } catch (const InputError& e) {
    text = std::string("cannot be planned: ") + e.what();
    j["error"] = e.what();
  }
  std::printf("  memory to train at batch %d on the %s: %s\n", batch, cpu.description().c_str(),
              text.c_str());
  report["memory"] = j;
}

}  // namespace

void add_analyze(CLI::App& app) {
  auto* cmd = app.add_subcommand("analyze", "Layer table (output, params, MACs) and the split "
                                            "analysis of every conv layer");
  static std::vector<std::string> models;
  static std::string json_path, rule = "params", device = "auto";
  static int rank = 0, batch = 32, runs = 0, threads = 0;
  cmd->add_option("MODEL", models, "model spec(s) (.net) or ONNX graphs (.onnx) of any CNN")->required();
  cmd->add_option("--json", json_path, "write a JSON report");
  cmd->add_option("--rank", rank, "filters K of the n×1 layer (default m, the notebook's choice)")
      ->check(CLI::Range(1, int(kMaxDim)));
  cmd->add_option("--rule", rule,
                  "params: the parameter rules only; measured: also time each splittable conv "
                  "and its pair (forward + backward) on --device at --batch, and show the "
                  "parameter rule, the MAC rule and the measured decision side by side")
      ->capture_default_str();
  auto* dev = cmd->add_option("--device", device, "with --rule measured: cpu, cuda or auto")
                  ->capture_default_str();
  cmd->add_option("--batch", batch,
                  "the training batch size: of the memory estimate, and of the timing with "
                  "--rule measured")
      ->capture_default_str()
      ->check(CLI::Range(1, kMaxBatch));
  cmd->add_option("--threads", threads,
                  "CPU threads of the memory estimate, 1 to " + thousands(kMaxThreads) +
                      " (default 0: all cores)")
      ->check(CLI::Range(0, kMaxThreads));
  auto* run = cmd->add_option("--runs", runs, "with --rule measured: timed samples at most")
                  ->check(CLI::PositiveNumber);
  cmd->callback([dev, run] {
    if (rule != "params" && rule != "measured")
      throw InputError("--rule: expected params or measured, got '" + rule + "'");
    const bool measured = rule == "measured";
    if (!measured && (dev->count() || run->count()))
      throw InputError("--device and --runs need --rule measured");
    if (!json_path.empty()) check_writable(json_path, "--json");
    const std::string where = measured ? bench_device(device) : "";
    BackendOptions cpu_options;
    cpu_options.threads = threads;
    const auto cpu = make_backend("cpu", cpu_options);
    nlohmann::json reports = nlohmann::json::array();
    for (size_t i = 0; i < models.size(); ++i) {
      if (is_onnx_path(models[i])) {  // any CNN graph, for analysis
        if (i) std::printf("\n");
        GraphMeasure measure;
        if (measured) measure = {where, batch, runs};
        reports.push_back(analyze_graph_report(models[i], rank, "", measure));
        continue;
      }
      Model m = build_model(load_spec(models[i]));
      auto splits = analyze_splits(m, rank);
      if (i) std::printf("\n");
      print_summary(m);
      print_splits(splits);
      reports.push_back(analysis_json(m, splits));
      print_memory(m, *cpu, batch, reports.back());
      if (!measured) continue;
      std::fflush(stdout);
      const bench::TimingTable table =
          bench::time_conv_layers(m, batch, rank, where, rule_timing(where, runs));
      const auto decisions = bench::measured_rule(m, batch, rank, table);
      std::printf("%s", measured_table(splits, decisions, table, batch).c_str());
      add_measured_json(reports.back(), decisions, table, batch);
    }
    if (!json_path.empty()) {
      if (reports.size() == 1) write_json(json_path, reports[0]);
      else write_json(json_path, {{"models", reports}});
    }
  });
}

}  // namespace splitconv::cli
