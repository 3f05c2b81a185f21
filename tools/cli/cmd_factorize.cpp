// splitconv factorize MODEL: the model with the chosen convolutions split, as a spec.
// splitconv factorize [MODEL] --checkpoint CK: a trained model split by the SVD of each chosen
// kernel (svd_split.h), written as a checkpoint ready to evaluate or fine-tune.
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "splitconv/checkpoint.h"
#include "splitconv/error.h"
#include "splitconv/factorize.h"
#include "splitconv/svd_split.h"

namespace splitconv::cli {
namespace {

struct FactorizeArgs {
  std::string model_path, ck_path, out_path, json_path, rule = "exact", mid = "relu";
  std::string device = "auto";
  int rank = 0, batch = 32, runs = 0;
  double energy = 0;
  bool energy_given = false;
  std::vector<std::string> layers;
};

std::string kernel_text(int kh, int kw) { return std::to_string(kh) + "x" + std::to_string(kw); }

void spec_only(const FactorizeArgs& a) {
  if (a.energy_given) throw InputError("factorize: --energy needs --checkpoint (it reads the weights)");
  if (a.model_path.empty()) throw InputError("factorize: a MODEL (or --checkpoint CK) is needed");
  if (is_onnx_path(a.model_path)) {  // any CNN graph: a report of what the rule splits
    if (!a.out_path.empty() || !a.layers.empty() || a.rule == "measured")
      throw InputError(a.model_path + ": an ONNX graph is analysed, not rewritten: factorize "
                       "reports what --rule exact, thumb, macs or all would split (no -o, "
                       "--layers or --rule measured); splitconv import makes a spec of a "
                       "sequential graph");
    nlohmann::json j = analyze_graph_report(a.model_path, a.rank, a.rule);
    if (!a.json_path.empty()) write_json(a.json_path, j);
    return;
  }
  if (!a.json_path.empty()) throw InputError("factorize: --json needs --checkpoint or an ONNX graph");
  Model m = build_model(load_spec(a.model_path));
  FactorizeOptions opts;
  const bool measured = a.rule == "measured" && a.layers.empty();
  opts.rule = a.rule == "measured" ? SplitRule::Exact : parse_rule(a.rule);
  opts.rank = a.rank;
  opts.layers = a.layers;
  opts.mid_relu = a.mid == "relu";
  if (measured) {  // the layers the measured rule picks, its table on stderr
    const std::string device = bench_device(a.device);
    const bench::TimingTable table =
        bench::time_conv_layers(m, a.batch, a.rank, device, rule_timing(device, a.runs));
    const auto decisions = bench::measured_rule(m, a.batch, a.rank, table);
    const std::string text = measured_table(analyze_splits(m, a.rank), decisions, table, a.batch);
    std::fwrite(text.data(), 1, text.size(), stderr);
    for (const auto& d : decisions)
      if (d.split) opts.layers.push_back(d.layer);
  }
  FactorizeResult r;
  if (measured && opts.layers.empty()) r.spec = m.spec;  // nothing is worth splitting
  else r = factorize_spec(m, opts);
  Model split = build_model(r.spec);  // checks the result and counts its parameters
  std::string title = "factorized from " + a.model_path + ": split " +
                      (r.split.empty() ? std::string("nothing") : "");
  for (size_t i = 0; i < r.split.size(); ++i) title += (i ? ", " : "") + r.split[i];
  title += "; params " + thousands(m.total_params) + " -> " + thousands(split.total_params);
  std::string text = format_spec(r.spec, title);
  if (a.out_path.empty()) std::fwrite(text.data(), 1, text.size(), stdout);
  else write_file_atomic(a.out_path, text);
  std::fprintf(stderr, "split %zu layer(s); params %s -> %s\n", r.split.size(),
               thousands(m.total_params).c_str(), thousands(split.total_params).c_str());
}

void from_checkpoint(const FactorizeArgs& a) {
  if (a.rule == "measured")
    throw InputError("factorize: --rule measured works on a spec (MODEL, no --checkpoint); to "
                     "SVD-split the layers it picks, name them with --layers");
  Checkpoint ck = load_checkpoint(a.ck_path);
  Model model = model_of(ck, a.ck_path);
  if (!a.model_path.empty()) {
    Model asked = build_model(load_spec(a.model_path));
    if (format_spec(asked.spec) != format_spec(model.spec))
      throw InputError(a.ck_path + ": its model spec differs from " + a.model_path);
    model.spec.source = a.model_path;
  }
  SvdSplitOptions opts;
  opts.layers = a.layers;
  opts.rule = parse_rule(a.rule);
  opts.rank = a.rank;
  if (a.energy_given) {
    if (!(a.energy > 0 && a.energy <= 1))
      throw InputError("--energy: expected a fraction in (0, 1], got " + std::to_string(a.energy));
    opts.energy = a.energy;
  }
  opts.mid_relu = a.mid == "relu";
  SvdSplitResult r = svd_split(model, ck.state.params, opts);

  std::printf("%s: SVD split, mid %s\n", a.ck_path.c_str(), a.mid.c_str());
  std::printf("%-10s %-6s %-11s %-11s %-8s %-22s %-10s %s\n", "layer", "kernel", "c -> m",
              "K / max", "energy", "params before -> after", "rel. error", "from sigma");
  for (const auto& l : r.layers) {
    std::string cm = std::to_string(l.c) + " -> " + std::to_string(l.m);
    std::string k = std::to_string(l.rank) + " / " + std::to_string(l.max_rank);
    std::string p = thousands(l.params_before) + " -> " + thousands(l.params_after);
    std::printf("%-10s %-6s %-11s %-11s %-8.4f %-22s %-10.6f %.6f\n", l.layer.c_str(),
                kernel_text(l.kh, l.kw).c_str(), cm.c_str(), k.c_str(), l.energy, p.c_str(), l.error,
                l.error_sigma);
  }
  if (r.layers.empty()) std::printf("nothing to split (no layer chosen)\n");
  std::printf("total params %s -> %s\n", thousands(model.total_params).c_str(),
              thousands(r.model.total_params).c_str());

  if (!a.out_path.empty()) {
    std::string title = "SVD split of " + a.ck_path + ":";
    for (const auto& l : r.layers) title += " " + l.layer + " K=" + std::to_string(l.rank);
    if (r.layers.empty()) title += " nothing";
    title += ", mid " + a.mid;
    Checkpoint out;
    out.spec_text = format_spec(r.spec, title);
    out.state.params = r.params;
    out.dataset = ck.dataset;
    save_checkpoint(a.out_path, r.model, out);
  } else {
    std::fprintf(stderr, "no -o given: nothing written\n");
  }
  if (!a.json_path.empty()) {
    nlohmann::json j = {{"checkpoint", a.ck_path},
                        {"output", a.out_path},
                        {"mid", a.mid},
                        {"params_before", model.total_params},
                        {"params_after", r.model.total_params},
                        {"layers", nlohmann::json::array()}};
    for (const auto& l : r.layers)
      j["layers"].push_back({{"layer", l.layer},
                             {"kernel", kernel_text(l.kh, l.kw)},
                             {"c", l.c},
                             {"m", l.m},
                             {"rank", l.rank},
                             {"max_rank", l.max_rank},
                             {"energy", l.energy},
                             {"params_before", l.params_before},
                             {"params_after", l.params_after},
                             {"error", l.error},
                             {"error_sigma", l.error_sigma},
                             {"singular_values", l.singular_values}});
    write_json(a.json_path, j);
  }
}

}  // namespace

void add_factorize(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "factorize",
      "Write the model with n×n convs split into n×1 + 1×n: as a spec, or with --checkpoint "
      "as a checkpoint whose pair is the SVD of the trained kernel");
  static FactorizeArgs a;
  cmd->add_option("MODEL", a.model_path, "model spec (.net), or an ONNX graph (.onnx) of any CNN for a report; optional with --checkpoint");
  cmd->add_option("--checkpoint", a.ck_path,
                  "split a trained checkpoint by the SVD of each chosen kernel (MODEL, when given, "
                  "must be its spec)");
  cmd->add_option("--rule", a.rule, "which layers to split: exact (P1 < P0), thumb (n > 1 + m/c), "
                                    "macs (fewer MACs), all, or measured (P1 < P0 and the pair "
                                    "is faster, forward + backward, on --device at --batch)")
      ->capture_default_str();
  auto* dev = cmd->add_option("--device", a.device, "with --rule measured: cpu, cuda or auto")
                  ->capture_default_str();
  auto* bat = cmd->add_option("--batch", a.batch, "with --rule measured: the training batch size")
                  ->capture_default_str()->check(CLI::Range(1, kMaxBatch));
  auto* run = cmd->add_option("--runs", a.runs, "with --rule measured: timed samples at most")
                  ->check(CLI::PositiveNumber);
  auto* rank = cmd->add_option("--rank", a.rank,
                               "filters K of the n×1 layer (default m; with --checkpoint at most "
                               "min(c·n1, n2·m), the default when smaller than m)")
                   ->check(CLI::Range(1, int(kMaxDim)));
  cmd->add_option_function<double>(
         "--energy", [](double f) { a.energy = f, a.energy_given = true; },
         "with --checkpoint: per layer the smallest K keeping this fraction of Σσ²")
      ->excludes(rank);
  cmd->add_option("--layers", a.layers, "split exactly these layers (comma separated)")
      ->delimiter(',');
  cmd->add_option("--mid", a.mid, "activation between the pair: relu (as the original) or none")
      ->capture_default_str();
  cmd->add_option("-o,--output", a.out_path,
                  "write the spec here (default: stdout); with --checkpoint a .safetensors "
                  "checkpoint (weights only)");
  cmd->add_option("--json", a.json_path, "with --checkpoint or an ONNX graph: write a JSON report");
  cmd->callback([dev, bat, run] {
    if (a.rule != "exact" && a.rule != "thumb" && a.rule != "macs" && a.rule != "all" &&
        a.rule != "measured")
      throw InputError("--rule: expected exact, thumb, macs, all or measured, got '" + a.rule + "'");
    if (a.rule != "measured" && (dev->count() || bat->count() || run->count()))
      throw InputError("--device, --batch and --runs need --rule measured");
    if (a.mid != "relu" && a.mid != "none")
      throw InputError("--mid: expected relu or none, got '" + a.mid + "'");
    if (!a.out_path.empty()) check_writable(a.out_path, "--output");
    if (!a.json_path.empty()) check_writable(a.json_path, "--json");
    if (a.ck_path.empty()) spec_only(a);
    else from_checkpoint(a);
  });
}

}  // namespace splitconv::cli
