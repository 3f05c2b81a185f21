// splitconv compare A B ...: the notebook's comparison, each model trained from the same seeds;
// with several seeds, Student t intervals per model and the paired difference of each pair.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "splitconv/error.h"
#include "splitconv/files.h"
#include "splitconv/spec.h"
#include "splitconv/stats.h"
#include "train_common.h"

namespace splitconv::cli {
namespace {

// One model's runs, in seed order.
struct ModelRuns {
  std::string path, name;
  Model model;
  std::vector<TrainReport> reports;
  std::vector<double> acc, best, secs, ips;
};

// Time to --target-accuracy over the seeds (null without a target): how many reached it, and
// mean, standard deviation, min and max of the time and steps of those that did and of the
// final accuracy of all.
nlohmann::json target_summary(const TrainOptions& t, const ModelRuns& m) {
  if (t.target_accuracy <= 0) return nullptr;
  std::vector<double> secs, steps, acc;
  for (const auto& r : m.reports) {
    acc.push_back(r.test_accuracy);
    if (!r.target.reached) continue;
    secs.push_back(r.target.seconds);
    steps.push_back(double(r.target.steps));
  }
  auto spread = [](const std::vector<double>& v) -> nlohmann::json {
    if (v.empty()) return nullptr;
    const stats::Summary s = stats::summarize(v);
    return {{"n", s.n}, {"mean", s.mean}, {"std", s.std},
            {"min", *std::min_element(v.begin(), v.end())},
            {"max", *std::max_element(v.begin(), v.end())}};
  };
  return {{"accuracy", t.target_accuracy},
          {"seeds", int(m.reports.size())},
          {"reached", int(secs.size())},
          {"time_to_target_seconds", spread(secs)},
          {"steps_to_target", spread(steps)},
          {"final_accuracy", spread(acc)}};
}

// The highest test accuracy over a run's epochs and its epoch (1-based); the final accuracy
// and epoch 0 for a run of no epochs.
std::pair<double, int> best_epoch(const TrainReport& r) {
  std::pair<double, int> best = {r.test_accuracy, 0};
  for (const auto& e : r.epochs)
    if (best.second == 0 || e.test_accuracy > best.first) best = {e.test_accuracy, e.epoch};
  return best;
}

// The file's stem ("seed-v1"), or the path where two models share a stem.
void name_models(std::vector<ModelRuns>& runs) {
  for (auto& r : runs) r.name = std::filesystem::path(r.path).stem().string();
  for (auto& r : runs)
    if (std::count_if(runs.begin(), runs.end(),
                      [&](const ModelRuns& o) { return o.name == r.name; }) > 1)
      r.name = r.path;
  for (auto& r : runs)
    if (std::count_if(runs.begin(), runs.end(),
                      [&](const ModelRuns& o) { return o.path == r.path; }) > 1)
      r.name = r.path;
}

nlohmann::json number(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

nlohmann::json summary_json(const stats::Summary& s) {
  return {{"n", s.n},
          {"mean", number(s.mean)},
          {"std", number(s.std)},
          {"half_width", number(s.half_width)},
          {"low", number(s.low)},
          {"high", number(s.high)}};
}

nlohmann::json paired_json(const stats::PairedDifference& d) {
  nlohmann::json j = summary_json(d.diff);
  j["t"] = number(d.t);
  j["df"] = d.df;
  j["p_value"] = number(d.p_value);
  j["significant"] = d.significant;
  return j;
}

// Per epoch, across the seeds: training loss, test loss, training and test accuracy.
nlohmann::json curves_json(const ModelRuns& m) {
  size_t epochs = m.reports.empty() ? 0 : m.reports[0].epochs.size();
  for (const auto& r : m.reports) epochs = std::min(epochs, r.epochs.size());
  nlohmann::json curves = nlohmann::json::array();
  for (size_t e = 0; e < epochs; ++e) {
    std::vector<double> loss, test_loss, train_acc, test_acc;
    for (const auto& r : m.reports) {
      loss.push_back(r.epochs[e].loss);
      test_loss.push_back(r.epochs[e].test_loss);
      train_acc.push_back(r.epochs[e].train_accuracy);
      test_acc.push_back(r.epochs[e].test_accuracy);
    }
    curves.push_back({{"epoch", m.reports[0].epochs[e].epoch},
                      {"loss", summary_json(stats::summarize(loss))},
                      {"test_loss", summary_json(stats::summarize(test_loss))},
                      {"train_accuracy", summary_json(stats::summarize(train_acc))},
                      {"test_accuracy", summary_json(stats::summarize(test_acc))}});
  }
  return curves;
}

// "0.9891" with one seed, else "0.9891 ± 0.0011 [0.9883, 0.9899]": mean ± std, the interval.
std::string accuracy_cell(const stats::Summary& s) {
  char buf[96];
  if (!s.has_interval())
    std::snprintf(buf, sizeof buf, "%.4f", s.mean);
  else
    std::snprintf(buf, sizeof buf, "%.4f ± %.4f [%.4f, %.4f]", s.mean, s.std, s.low, s.high);
  return buf;
}

// Pads to `width` characters (not bytes: "±" is two), on the left when `right`.
std::string pad(const std::string& s, size_t width, bool right = false) {
  size_t chars = 0;
  for (unsigned char ch : s) chars += (ch & 0xC0) != 0x80;
  const std::string fill(width > chars ? width - chars : 0, ' ');
  return right ? fill + s : s + fill;
}

std::string row(const std::vector<std::string>& cells) {
  static const size_t widths[] = {20, 10, 12, 35, 35, 14, 10};
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    const bool right = i == 1 || i == 2 || i >= 5;
    line += (i ? (i == 3 ? "   " : " ") : "") + pad(cells[i], widths[i], right);
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line + "\n";
}

}  // namespace

void add_compare(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "compare",
      "Train several models from the same seeds and compare them: with --seeds K, per model the "
      "mean, standard deviation and 95% Student t interval of the test accuracy, and for each "
      "pair the accuracy difference paired by seed (paired t) with its interval and a verdict");
  static RunOptions o;
  static std::vector<std::string> paths;
  static std::string plot_path;
  static int seeds = 1;
  cmd->add_option("MODELS", paths, "model specs (.net)")->required();
  add_run_options(cmd, o, true);
  cmd->add_option("--seeds", seeds,
                  "train each model with K seeds (seed, seed+1, ...): 2 or "
                  "more give intervals and a paired test (1 to 1,000)")
      ->capture_default_str();
  cmd->add_option("--plot", plot_path,
                  "draw training loss and test accuracy per epoch (mean and 95% band across "
                  "seeds) and the final accuracies with their intervals into this .png "
                  "(tools/plot.py, python3-matplotlib; without it, one line says so and the "
                  "report is still written: --json, else FILE.json beside FILE.png)");
  cmd->callback([] {
    // Everything checkable before the first model trains (docs/design.md, Errors).
    check_run_options(o, true);
    if (seeds < 1 || seeds > 1000)
      throw InputError("--seeds " + std::to_string(seeds) + ": expected 1 to 1,000");
    ReportOutput out{o.json_path, plot_path};
    out.check();
    std::vector<ModelRuns> runs(paths.size());
    for (size_t i = 0; i < paths.size(); ++i) {
      runs[i].path = paths[i];
      runs[i].model = build_model(load_spec(paths[i]));
    }
    name_models(runs);
    std::vector<const Model*> all;
    for (const auto& m : runs) all.push_back(&m.model);
    check_plans(all, o);
    Dataset data = load_dataset(o.dataset, resolve_data_dir(o.data_dir));
    for (const auto& m : runs) {
      check_model_data(m.model, m.path, data.train, o.dataset + " train");
      check_model_data(m.model, m.path, data.test, o.dataset + " test");
    }
    nlohmann::json j = {
        {"dataset", o.dataset},
        {"seeds", seeds},
        {"first_seed", o.train.seed},
        {"epochs", o.train.epochs},
        {"batch", o.train.batch},
        {"lr", o.train.hyper.lr},
        {"train_images", std::min<int64_t>(o.limit ? o.limit : data.train.count, data.train.count)},
        {"confidence", 0.95},
        {"interval", "student t"},
        {"paired_test", "paired t"},
        {"models", nlohmann::json::array()}};
    std::string device, description;
    // Seed by seed, every model in turn: a machine that slows down during the runs slows
    // every model alike, so the times pair as well as the accuracies.
    for (int s = 0; s < seeds; ++s) {
      for (auto& m : runs) {
        RunOptions run = o;
        run.train.seed = o.train.seed + uint64_t(s);
        RunResult r =
            train_model(m.model, data, run, nullptr,
                        m.path + (seeds > 1 ? " seed " + std::to_string(run.train.seed) : ""));
        device = r.device;
        description = r.description;
        const auto [best, best_at] = best_epoch(r.report);
        m.reports.push_back(r.report);
        m.acc.push_back(r.report.test_accuracy);
        m.best.push_back(best);
        m.secs.push_back(r.report.train_seconds);
        m.ips.push_back(r.report.images_per_second);
        j["models"].push_back({{"model", m.path},
                               {"seed", run.train.seed},
                               {"params", m.model.total_params},
                               {"macs", m.model.total_macs},
                               {"device", r.device},
                               {"epochs", epochs_json(r.report)},
                               {"test_accuracy", r.report.test_accuracy},
                               {"best_test_accuracy", best},
                               {"best_epoch", best_at},
                               {"train_seconds", r.report.train_seconds},
                               {"images_per_second", r.report.images_per_second},
                               {"setup_seconds", r.setup_seconds},
                               {"target", target_json(run.train, r.report)}});
      }
    }
    j["device"] = device;
    j["device_description"] = description;

    std::printf("%s, %d epochs, batch %d, %s, %d seed(s) from %llu\n", o.dataset.c_str(),
                o.train.epochs, o.train.batch, description.c_str(), seeds,
                (unsigned long long)o.train.seed);
    const bool several = seeds > 1;
    std::printf("%s", row({"model", "params", "MACs/image",
                           several ? "test accuracy: mean ± std [95% CI]" : "test accuracy",
                           several ? "best epoch's: mean ± std [95% CI]" : "best epoch's",
                           "train s", "images/s"})
                          .c_str());
    j["summary"] = nlohmann::json::array();
    for (const auto& m : runs) {
      const stats::Summary a = stats::summarize(m.acc), b = stats::summarize(m.best),
                           t = stats::summarize(m.secs), r = stats::summarize(m.ips);
      char secs[48];
      if (t.has_interval())
        std::snprintf(secs, sizeof secs, "%.1f ± %.1f", t.mean, t.half_width);
      else
        std::snprintf(secs, sizeof secs, "%.1f", t.mean);
      std::printf("%s", row({m.name, thousands(m.model.total_params), thousands(m.model.total_macs),
                             accuracy_cell(a), accuracy_cell(b), secs,
                             thousands(int64_t(std::llround(r.mean)))})
                            .c_str());
      j["summary"].push_back({{"model", m.path},
                              {"name", m.name},
                              {"params", m.model.total_params},
                              {"macs", m.model.total_macs},
                              {"test_accuracy", summary_json(a)},
                              {"best_test_accuracy", summary_json(b)},
                              {"train_seconds", summary_json(t)},
                              {"images_per_second", summary_json(r)},
                              {"curves", curves_json(m)},
                              {"target", target_summary(o.train, m)}});
      if (o.train.target_accuracy > 0) {
        const nlohmann::json ts = target_summary(o.train, m);
        const auto& tt = ts["time_to_target_seconds"];
        if (tt.is_null())
          std::printf("  %s: target %.4f reached by %d of %d seeds\n", m.name.c_str(),
                      o.train.target_accuracy, ts["reached"].get<int>(), seeds);
        else
          std::printf("  %s: target %.4f reached by %d of %d seeds; time to it %.3f s mean "
                      "(std %.3f, min %.3f, max %.3f)\n",
                      m.name.c_str(), o.train.target_accuracy, ts["reached"].get<int>(), seeds,
                      tt["mean"].get<double>(), tt["std"].get<double>(), tt["min"].get<double>(),
                      tt["max"].get<double>());
      }
    }
    if (several)
      std::printf(
          "95%% CI: Student t over the %d seeds, mean ± t(0.975, %d)·std/√%d; train s: "
          "mean ± that half-width; best epoch's: each seed's highest test accuracy over "
          "its epochs\n",
          seeds, seeds - 1, seeds);

    j["pairs"] = nlohmann::json::array();
    for (size_t x = 0; x < runs.size(); ++x) {
      for (size_t y = x + 1; y < runs.size(); ++y) {
        const ModelRuns &a = runs[x], &b = runs[y];
        const double p = 1.0 - double(b.model.total_params) / double(a.model.total_params);
        const double mac = 1.0 - double(b.model.total_macs) / double(a.model.total_macs);
        const double speed = stats::mean(b.ips) / stats::mean(a.ips);
        const stats::PairedDifference d = stats::paired_difference(a.acc, b.acc);
        const stats::PairedDifference db = stats::paired_difference(a.best, b.best);
        const std::string verdict = stats::accuracy_verdict(a.name, b.name, d);
        std::printf("%s vs %s: %.1f%% fewer parameters, %.1f%% fewer MACs, speed %.2fx\n",
                    b.name.c_str(), a.name.c_str(), 100 * p, 100 * mac, speed);
        std::printf("  %s\n", verdict.c_str());
        j["pairs"].push_back({{"a", a.path},
                              {"b", b.path},
                              {"a_name", a.name},
                              {"b_name", b.name},
                              {"test_accuracy_difference", paired_json(d)},
                              {"best_test_accuracy_difference", paired_json(db)},
                              {"params_saving", p},
                              {"macs_saving", mac},
                              {"speedup", speed},
                              {"verdict", verdict}});
      }
    }
    out.write(j);
  });
}

}  // namespace splitconv::cli
