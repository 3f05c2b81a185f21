// splitconv compare A B ...: the notebook's comparison, each model trained with the same seed.
#include <cmath>
#include <cstdio>

#include "splitconv/error.h"
#include "splitconv/files.h"
#include "splitconv/spec.h"
#include "train_common.h"

namespace splitconv::cli {
namespace {

struct Stat {
  double mean = 0, std = 0;
};
Stat stat(const std::vector<double>& v) {
  Stat s;
  for (double x : v) s.mean += x;
  s.mean /= double(v.size());
  for (double x : v) s.std += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(s.std / double(v.size() - 1)) : 0.0;
  return s;
}

}  // namespace

void add_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand("compare", "Train several models with the same seed and compare");
  static RunOptions o;
  static std::vector<std::string> paths;
  static int seeds = 1;
  cmd->add_option("MODELS", paths, "model specs (.net)")->required();
  add_run_options(cmd, o, true);
  cmd->add_option("--seeds", seeds, "train each model with K seeds (seed, seed+1, ...) and "
                                    "report mean ± std")
      ->capture_default_str();
  cmd->callback([] {
    // Everything checkable before the first model trains (docs/design.md, Errors).
    check_run_options(o, true);
    if (seeds < 1 || seeds > 1000)
      throw InputError("--seeds " + std::to_string(seeds) + ": expected 1 to 1,000");
    if (!o.json_path.empty()) check_writable(o.json_path, "--json");
    std::vector<Model> models;
    for (const auto& p : paths) models.push_back(build_model(load_spec(p)));
    std::vector<const Model*> all;
    for (const auto& m : models) all.push_back(&m);
    check_plans(all, o);
    Dataset data = load_dataset(o.dataset, resolve_data_dir(o.data_dir));
    for (size_t i = 0; i < models.size(); ++i) {
      check_model_data(models[i], paths[i], data.train, o.dataset + " train");
      check_model_data(models[i], paths[i], data.test, o.dataset + " test");
    }
    nlohmann::json j = {{"dataset", o.dataset}, {"seeds", seeds}, {"models", nlohmann::json::array()}};
    std::vector<std::vector<double>> acc(models.size()), secs(models.size()), ips(models.size());
    std::string device;
    for (size_t i = 0; i < models.size(); ++i) {
      for (int s = 0; s < seeds; ++s) {
        RunOptions run = o;
        run.train.seed = o.train.seed + uint64_t(s);
        RunResult r = train_model(models[i], data, run, nullptr,
                                  paths[i] + (seeds > 1 ? " seed " + std::to_string(run.train.seed) : ""));
        device = r.description;
        acc[i].push_back(r.report.test_accuracy);
        secs[i].push_back(r.report.train_seconds);
        ips[i].push_back(r.report.images_per_second);
        j["models"].push_back({{"model", paths[i]}, {"seed", run.train.seed},
                               {"params", models[i].total_params}, {"macs", models[i].total_macs},
                               {"device", r.device}, {"epochs", epochs_json(r.report)},
                               {"test_accuracy", r.report.test_accuracy},
                               {"train_seconds", r.report.train_seconds},
                               {"images_per_second", r.report.images_per_second}});
      }
    }
    std::printf("%s, %d epochs, batch %d, %s, %d seed(s) from %llu\n", o.dataset.c_str(),
                o.train.epochs, o.train.batch, device.c_str(), seeds,
                (unsigned long long)o.train.seed);
    std::printf("%-24s %10s %12s %18s %12s %12s\n", "model", "params", "MACs/image",
                "test accuracy", "train s", "images/s");
    for (size_t i = 0; i < models.size(); ++i) {
      Stat a = stat(acc[i]), t = stat(secs[i]), r = stat(ips[i]);
      char accs[64];
      if (seeds > 1) std::snprintf(accs, sizeof accs, "%.4f ± %.4f", a.mean, a.std);
      else std::snprintf(accs, sizeof accs, "%.4f", a.mean);
      std::printf("%-24s %10s %12s %18s %12.1f %12.0f\n", paths[i].c_str(),
                  thousands(models[i].total_params).c_str(), thousands(models[i].total_macs).c_str(),
                  accs, t.mean, r.mean);
    }
    if (models.size() >= 2) {
      double p = 1.0 - double(models[1].total_params) / double(models[0].total_params);
      double mac = 1.0 - double(models[1].total_macs) / double(models[0].total_macs);
      std::printf("%s vs %s: %.1f%% fewer parameters, %.1f%% fewer MACs, accuracy %+.4f, speed %.2fx\n",
                  paths[1].c_str(), paths[0].c_str(), 100 * p, 100 * mac,
                  stat(acc[1]).mean - stat(acc[0]).mean, stat(ips[1]).mean / stat(ips[0]).mean);
    }
    if (!o.json_path.empty()) write_json(o.json_path, j);
  });
}

}  // namespace splitconv::cli
