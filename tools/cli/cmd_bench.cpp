// splitconv bench kernel: the split-convolution kernel harness (validate, then time).
// splitconv bench conv: one layer shape, the n×n conv against its n×1 + 1×n pair.
#include <cstdio>

#include "cli.h"
#include "splitconv/bench.h"
#include "splitconv/error.h"

namespace splitconv::cli {
namespace {

void add_kernel(CLI::App* bench) {
  auto* kernel = bench->add_subcommand(
      "kernel", "Validate the own n×1 / 1×n kernels and cuDNN against the CPU, then time them (GPU)");
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
    parse_size(size, "--size", &a.h, &a.w);
    std::string table = gpu::run_conv_split_bench(a);
    std::fwrite(table.data(), 1, table.size(), stdout);
  });
}

struct ConvArgs {
  int n = 3, c = 64, m = 64, rank = 0, batch = 32, runs = 0, threads = 0;
  std::string size = "28x28", padding = "valid", device = "auto", json_path;
  bool tf32 = false;
};

void add_conv(CLI::App* bench) {
  auto* cmd = bench->add_subcommand(
      "conv",
      "One layer shape: time the n×n conv and the pair (n×1 with K filters, then 1×n with m), "
      "forward and forward+backward, each variant first checked against the CPU reference. "
      "CPU: the CPU backend's ops, steady clock; CUDA: cuDNN for both, the own kernels and the "
      "fused pair forward, CUDA events");
  static ConvArgs a;
  cmd->add_option("--n", a.n, "kernel n×n (at least 2)")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--c", a.c, "input channels")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--m", a.m, "filters")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--size", a.size, "input map HxW")->capture_default_str();
  cmd->add_option("--batch", a.batch, "images")
      ->capture_default_str()
      ->check(CLI::Range(1, kMaxBatch));
  cmd->add_option("--padding", a.padding, "valid or same")->capture_default_str();
  cmd->add_option("--rank", a.rank, "filters K of the n×1 layer (default m)")
      ->check(CLI::Range(1, int(kMaxDim)));
  cmd->add_option("--device", a.device, "cpu, cuda or auto (cuda when there is a device)")
      ->capture_default_str();
  cmd->add_option("--runs", a.runs, "timed samples at most, the median reported (default: cpu 7, cuda 20)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--threads", a.threads, "CPU threads splitting the batch (default: all cores)")
      ->check(CLI::Range(1, kMaxThreads));
  cmd->add_flag("--tf32", a.tf32, "CUDA: allow TF32 math (and cuDNN's Winograd/FFT algorithms)");
  cmd->add_option("--json", a.json_path, "write a JSON report");
  cmd->callback([] {
    if (!a.json_path.empty()) check_writable(a.json_path, "--json");
    bench::ConvCase s;
    s.kh = s.kw = a.n;
    s.c = a.c, s.m = a.m, s.rank = a.rank, s.batch = a.batch;
    parse_size(a.size, "--size", &s.h, &s.w);
    s.padding = parse_padding(a.padding);
    bench::check_case(s);
    const std::string device = bench_device(a.device);
    bench::TimingOptions o = bench::default_timing(device);
    if (a.runs > 0) o.runs = a.runs;
    o.threads = a.threads;
    o.tf32 = a.tf32;
    const bench::ConvBenchResult r = bench::bench_conv(s, device, o);
    const std::string table = bench::format_conv(r);
    std::fwrite(table.data(), 1, table.size(), stdout);
    if (!a.json_path.empty()) write_json(a.json_path, bench::conv_json(r));
    if (!r.all_valid()) throw Error("bench conv: a variant does not match the CPU reference (see the table)");
  });
}

}  // namespace

void add_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks: kernels, layer shapes, sweeps, models");
  bench->require_subcommand(1);
  add_kernel(bench);
  add_conv(bench);
  add_bench_sweep(bench);
  add_bench_layers(bench);
}

}  // namespace splitconv::cli
