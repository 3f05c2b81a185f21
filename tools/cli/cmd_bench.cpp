// splitconv bench kernel: the split-convolution kernel harness (validate, then time).
#include <cstdio>

#include "cli.h"
#include "splitconv/bench.h"
#include "splitconv/error.h"

namespace splitconv::cli {

void add_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks (GPU kernels)");
  bench->require_subcommand(1);
  auto* kernel = bench->add_subcommand(
      "kernel", "Validate the own n×1 / 1×n kernels and cuDNN against the CPU, then time them");
  static gpu::SplitBenchArgs a;
  static std::string size = "28x28";
  kernel->add_option("--op", a.op, "vert (n×1), horz (1×n) or pair (n×1 then 1×n)")->capture_default_str();
  kernel->add_option("--n", a.n, "taps of the kernel")->capture_default_str()->check(CLI::PositiveNumber);
  kernel->add_option("--c", a.c, "input channels")->capture_default_str()->check(CLI::PositiveNumber);
  kernel->add_option("--m", a.m, "filters")->capture_default_str()->check(CLI::PositiveNumber);
  kernel->add_option("--size", size, "input map HxW")->capture_default_str();
  kernel->add_option("--batch", a.batch, "images")->capture_default_str()->check(CLI::PositiveNumber);
  kernel->add_option("--padding", a.padding, "valid or same")->capture_default_str();
  kernel->add_option("--variant", a.variant, "only the own variants whose name contains this");
  kernel->add_option("--runs", a.runs, "timed runs (median reported)")->capture_default_str()->check(CLI::PositiveNumber);
  kernel->callback([] {
    int h = 0, w = 0;
    char x = 0;
    if (std::sscanf(size.c_str(), "%d%c%d", &h, &x, &w) != 3 || (x != 'x' && x != 'X') || h <= 0 || w <= 0)
      throw InputError("--size: expected HxW, e.g. 28x28, got '" + size + "'");
    a.h = h, a.w = w;
    std::string table = gpu::run_conv_split_bench(a);
    std::fwrite(table.data(), 1, table.size(), stdout);
  });
}

}  // namespace splitconv::cli
