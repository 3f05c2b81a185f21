// splitconv bench sweep: the n×n conv against its pair over a grid of layer shapes, as a table,
// a CSV and a plot (tools/plot.py). splitconv bench layers MODEL: per-layer times of a model.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli.h"
#include "splitconv/error.h"
#include "splitconv/spec.h"

namespace splitconv::cli {
namespace {

struct SweepArgs {
  std::string device = "auto", grid, padding = "valid", csv_path, plot_path;
  int runs = 0, threads = 0;
  double time_limit = 0;
  bool progress = false;
};

// Draws the sweep CSV through tools/plot.py; Error without a python that has matplotlib.
void plot(const std::string& csv, const std::string& png, const std::string& title) {
  check_plot_script();
  const std::string python = plot_python();
  if (python.empty())
    throw Error("--plot: no python3 with matplotlib (Debian: python3-matplotlib); with --csv "
                "FILE, draw it later: tools/plot.py FILE PNG");
  run_plot(python, csv, png, title);
}

void run_sweep(const SweepArgs& a) {
  const std::string device = bench_device(a.device);
  const std::string grid = a.grid.empty() ? (device == "cuda" ? "full" : "small") : a.grid;
  const std::vector<bench::ConvCase> cases = bench::sweep_grid(grid, parse_padding(a.padding));
  if (!a.plot_path.empty() && !a.plot_path.ends_with(".png"))
    throw InputError("--plot: expected a .png file, got '" + a.plot_path + "'");
  if (!a.csv_path.empty()) check_writable(a.csv_path, "--csv");
  if (!a.plot_path.empty()) check_writable(a.plot_path, "--plot");
  bench::TimingOptions o = bench::default_timing(device);
  // A sweep measures many shapes: fewer samples than bench conv, each within a tighter budget.
  o.runs = a.runs > 0 ? a.runs : (device == "cuda" ? 10 : 5);
  o.warmups = device == "cuda" ? 1 : 0;  // the CPU's calibrating call warms up too
  o.budget_s = device == "cuda" ? 0.2 : 0.5;
  o.threads = a.threads;
  const bool progress = progress_enabled(a.progress);
  const auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };

  std::string csv = bench::csv_header(), description;
  size_t done = 0, invalid = 0;
  for (const bench::ConvCase& s : cases) {
    if (a.time_limit > 0 && seconds() > a.time_limit) break;
    if (progress) std::fprintf(stderr, "[%zu/%zu %.0fs] %s\n", done + 1, cases.size(), seconds(), bench::describe(s).c_str());
    const bench::ConvBenchResult r = bench::bench_conv(s, device, o);
    if (done == 0) {
      description = r.description;
      std::printf("bench sweep: grid %s, %zu shapes, %s padding, on %s\n", grid.c_str(), cases.size(),
                  a.padding.c_str(), description.c_str());
      std::printf("%s", bench::sweep_table_header().c_str());
    }
    std::printf("%s", bench::sweep_table_row(r).c_str());
    std::fflush(stdout);
    csv += bench::csv_rows(r);
    invalid += r.all_valid() ? 0 : 1;
    ++done;
  }
  std::printf("MACs: the theoretical saving 1 − MACs pair / MACs n×n; saved: 1 − t pair / t n×n; "
              "realised: (t n×n / t pair) / (MACs n×n / MACs pair)\n");
  std::printf("%zu of %zu shapes in %.0f s", done, cases.size(), seconds());
  if (done < cases.size()) std::printf(" (--time-limit %g s: the last %zu left out)", a.time_limit, cases.size() - done);
  std::printf("\n");

  std::string csv_path = a.csv_path;
  bool temporary = false;
  if (csv_path.empty() && !a.plot_path.empty()) {
    csv_path = (std::filesystem::temp_directory_path() /
                ("splitconv-sweep-" + std::to_string(getpid()) + ".csv")).string();
    temporary = true;
  }
  if (!csv_path.empty()) write_file_atomic(csv_path, csv);
  if (!a.plot_path.empty()) {
    try {
      plot(csv_path, a.plot_path, "split n×n into n×1 + 1×n: " + description + ", grid " + grid);
    } catch (...) {
      if (temporary) std::remove(csv_path.c_str());
      throw;
    }
    if (temporary) std::remove(csv_path.c_str());
  }
  if (invalid)
    throw Error("bench sweep: " + std::to_string(invalid) +
                " shape(s) have a variant that does not match the CPU reference (see the table)");
}

}  // namespace

void add_bench_sweep(CLI::App* bench) {
  auto* cmd = bench->add_subcommand(
      "sweep",
      "The n×n conv against its pair over a grid of shapes: n 3, 5, 7; c = m 16, 32, 64, 128, "
      "256; maps 5, 14, 28, 56 (shapes whose kernel does not fit the map left out). Grid "
      "'full' (the GPU default): batch 32 and 256, under 3 minutes on one GPU. Grid 'small' "
      "(the CPU default): batch 32 only, about 4 minutes on a 2-core CPU (full: 8 times as "
      "long)");
  static SweepArgs a;
  cmd->add_option("--device", a.device, "cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--grid", a.grid, "small or full (default: full on cuda, small on cpu)");
  cmd->add_option("--padding", a.padding, "valid or same")->capture_default_str();
  cmd->add_option("--csv", a.csv_path, "write one row per shape and variant (docs/results-bench.md)");
  cmd->add_option("--plot", a.plot_path,
                  "draw realised against theoretical savings into this .png (tools/plot.py, "
                  "python3-matplotlib)");
  cmd->add_option("--runs", a.runs, "timed samples per measurement at most (default: cpu 5, cuda 10)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", a.threads, "CPU threads (default: all cores)")
      ->check(CLI::Range(1, kMaxThreads));
  cmd->add_option("--time-limit", a.time_limit, "start no new shape after this many seconds")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--progress", a.progress, "progress on stderr even when it is not a terminal");
  cmd->callback([] { run_sweep(a); });
}

void add_bench_layers(CLI::App* bench) {
  auto* cmd = bench->add_subcommand(
      "layers",
      "Per-layer forward and backward times of a model at its training batch size, next to "
      "params and MACs: where a training step's time goes");
  static std::string model_path, device = "auto", json_path;
  static int batch = 32, runs = 0, threads = 0;
  cmd->add_option("MODEL", model_path, "model spec (.net)")->required();
  cmd->add_option("--device", device, "cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--batch", batch, "images a step (the training batch)")->capture_default_str()
      ->check(CLI::Range(1, kMaxBatch));
  cmd->add_option("--runs", runs, "timed samples at most (the median is reported)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", threads, "CPU threads (default: all cores)")
      ->check(CLI::Range(1, kMaxThreads));
  cmd->add_option("--json", json_path, "write a JSON report");
  cmd->callback([] {
    if (!json_path.empty()) check_writable(json_path, "--json");
    const Model model = build_model(load_spec(model_path));
    const std::string dev = bench_device(device);
    BackendOptions bo;
    bo.threads = threads;
    make_backend(dev, bo)->check_plan(model, batch);  // the memory, before anything is allocated
    bench::TimingOptions o = bench::default_timing(dev);
    if (runs > 0) o.runs = runs;
    o.threads = threads;
    const bench::LayersResult r = bench::bench_layers(model, batch, dev, o);
    const std::string table = bench::format_layers(r);
    std::fwrite(table.data(), 1, table.size(), stdout);
    if (!json_path.empty()) write_json(json_path, bench::layers_json(r));
  });
}

}  // namespace splitconv::cli
