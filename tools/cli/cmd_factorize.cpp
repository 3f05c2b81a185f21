// splitconv factorize MODEL: the model with the chosen convolutions split, as a spec.
#include <cstdio>
#include <iostream>

#include "cli.h"
#include "splitconv/error.h"
#include "splitconv/factorize.h"

namespace splitconv::cli {

void add_factorize(CLI::App& app) {
  auto* cmd = app.add_subcommand("factorize", "Write the model with n×n convs split into n×1 + 1×n");
  static std::string model_path, out_path, rule = "exact", mid = "relu";
  static int rank = 0;
  static std::vector<std::string> layers;
  cmd->add_option("MODEL", model_path, "model spec (.net)")->required();
  cmd->add_option("--rule", rule, "which layers to split: exact (P1 < P0), thumb (n > 1 + m/c), "
                                  "macs (fewer MACs) or all")
      ->capture_default_str();
  cmd->add_option("--rank", rank, "filters K of the n×1 layer (default m)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--layers", layers, "split exactly these layers (comma separated)")
      ->delimiter(',');
  cmd->add_option("--mid", mid, "activation between the pair: relu (as the original) or none")
      ->capture_default_str();
  cmd->add_option("-o,--output", out_path, "write the spec here (default: stdout)");
  cmd->callback([] {
    Model m = build_model(load_spec(model_path));
    FactorizeOptions opts;
    opts.rule = parse_rule(rule);
    opts.rank = rank;
    opts.layers = layers;
    if (mid != "relu" && mid != "none") throw InputError("--mid: expected relu or none, got '" + mid + "'");
    opts.mid_relu = mid == "relu";
    auto r = factorize_spec(m, opts);
    Model split = build_model(r.spec);  // checks the result and counts its parameters
    std::string title = "factorized from " + model_path + ": split " +
                        (r.split.empty() ? std::string("nothing") : "") ;
    for (size_t i = 0; i < r.split.size(); ++i) title += (i ? ", " : "") + r.split[i];
    title += "; params " + thousands(m.total_params) + " -> " + thousands(split.total_params);
    std::string text = format_spec(r.spec, title);
    if (out_path.empty()) std::fwrite(text.data(), 1, text.size(), stdout);
    else write_file_atomic(out_path, text);
    std::fprintf(stderr, "split %zu layer(s); params %s -> %s\n", r.split.size(),
                 thousands(m.total_params).c_str(), thousands(split.total_params).c_str());
  });
}

}  // namespace splitconv::cli
