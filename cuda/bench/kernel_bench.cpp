// `splitconv bench kernel`: the split-convolution kernels against cuDNN on one shape, each
// direction alone: every variant is first checked against the CPU reference, then timed with
// CUDA events; the table reports each against cuDNN measured in the same run. cuDNN runs as
// training runs it (conv.h's cuDNN convolution, its algorithm policy and workspace). Host code
// only (the kernels are in conv_split*.cu).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "conv.h"
#include "conv_split.h"
#include "cpu/cpu_ops.h"
#include "ops.h"
#include "resources.h"
#include "splitconv/backend.h"
#include "splitconv/bench.h"
#include "splitconv/error.h"
#include "splitconv/model.h"
#include "splitconv/random.h"
#include "splitconv/spec.h"

namespace splitconv::gpu {
namespace {

// fp32 kernels against the fp32 CPU reference: differences are summation order only,
// ~√(c·n)·2⁻²⁴ relative to the largest output. cuDNN's algorithms are chosen as training's
// (cudnn_policy.h: float32, no FFT or Winograd); its bound stays a digit wider
// because its kernels sum in an order of their own (split-K, tiled reductions).
constexpr double kOwnTolerance = 1e-4;
constexpr double kCudnnTolerance = 1e-3;

// 3 warm-ups, then the median of `runs` samples, each repeating the call for at least 0.5 ms.
bench::TimingOptions kernel_timing(int runs) {
  bench::TimingOptions o;
  o.warmups = 3;
  o.runs = o.min_runs = runs;
  o.budget_s = 1e9;
  o.min_sample_ms = 0.5;
  return o;
}

// ---- data on both sides ----

using Floats = std::vector<float>;

Floats random_floats(Rng& rng, int64_t count) {
  Floats v(static_cast<size_t>(count));
  for (float& f : v) f = rng.uniform(-1.0f, 1.0f);
  return v;
}

// max |got − ref| / max |ref| (bench::relative_error) of a device buffer
double relative_error(const DeviceBuffer<float>& got, const Floats& ref) {
  Floats host(ref.size());
  CUDA_CHECK(
      cudaMemcpy(host.data(), got.get(), ref.size() * sizeof(float), cudaMemcpyDeviceToHost));
  return bench::relative_error(host, ref);
}

struct Output {
  DeviceBuffer<float>* device;
  const Floats* ref;
};

struct Variant {
  std::string direction, name;
  bool baseline = false;  // cuDNN: the ratios are against it
  std::function<void()> run;
  std::vector<Output> outputs;
};

struct Row {
  std::string direction, name;
  double error = 0, ms = 0;
  bool valid = false, baseline = false;
};

// What a direction does, for the rates: 2·MACs, and the bytes of every tensor it must read
// or write once (a floor on its memory traffic).
struct Work {
  double flops = 0, bytes = 0;
};

// ---- the shapes ----

// The convolutions as a model shapes them (bench::conv_model: the geometry and padding
// training uses), each with m filters of the given kh×kw and ReLU, one after another from the
// input map.
std::vector<Layer> split_layers(const SplitBenchArgs& a, const std::vector<std::pair<int, int>>& kernels) {
  std::vector<LayerSpec> convs;
  for (const auto& [kh, kw] : kernels)
    convs.push_back(bench::conv_spec("conv" + std::to_string(convs.size() + 1), a.m, kh, kw,
                                     a.padding == "same" ? Padding::Same : Padding::Valid));
  return bench::conv_layers(bench::conv_model({a.h, a.w, a.c}, std::move(convs)));
}

// cuDNN pads a convolution evenly: an even n padded 'same' has no cuDNN baseline.
bool even_padding(const Layer& l) {
  return l.pad_top == l.pad_bottom && l.pad_left == l.pad_right;
}

// Training's cuDNN convolution (conv.h) for a layer, and the workspace it plans, bound to ctx.
struct CudnnLayers {
  std::vector<std::unique_ptr<CudnnConvImpl>> convs;
  DeviceBuffer<char> workspace;
};

CudnnLayers plan_cudnn(const std::vector<Layer>& layers, int batch, bool backward,
                       ConvContext& ctx) {
  CudnnLayers c;
  size_t bytes = 1;
  for (const Layer& l : layers) {
    c.convs.push_back(make_cudnn_conv(l, batch, backward, ctx));
    bytes = std::max(bytes, c.convs.back()->workspace_bytes());
  }
  c.workspace = DeviceBuffer<char>(bytes, "cuDNN workspace");
  ctx.workspace = c.workspace.get();
  ctx.workspace_bytes = c.workspace.bytes();
  return c;
}

int64_t macs(const ConvGeom& g) { return int64_t(g.n) * g.oh * g.ow * g.m * g.c * g.kh * g.kw; }

void check_args(const SplitBenchArgs& a) {
  if (a.op != "vert" && a.op != "horz" && a.op != "pair")
    throw InputError("--op: expected vert, horz or pair, got '" + a.op + "'");
  if (a.padding != "valid" && a.padding != "same")
    throw InputError("--padding: expected valid or same, got '" + a.padding + "'");
  if (a.n < 1 || a.c < 1 || a.m < 1 || a.h < 1 || a.w < 1 || a.batch < 1)
    throw InputError("--n, --c, --m, --size and --batch must be positive");
  if (a.runs < 1) throw InputError("--runs must be positive");
  if (a.padding == "valid" && ((a.op != "horz" && a.h < a.n) || (a.op != "vert" && a.w < a.n)))
    throw InputError("a valid " + std::to_string(a.n) +
                     "-tap convolution needs a map of at least " + std::to_string(a.n) +
                     " along its axis");
}

std::string shape_text(const SplitBenchArgs& a) {
  return a.op + " n=" + std::to_string(a.n) + " c=" + std::to_string(a.c) +
         " m=" + std::to_string(a.m) + " " + std::to_string(a.h) + "x" + std::to_string(a.w) +
         " batch " + std::to_string(a.batch) + " " + a.padding;
}

// ---- validation, timing, the table ----

// Each variant's outputs are first set to NaN, so that one which writes nothing fails.
std::vector<Row> measure(std::vector<Variant>& variants, const SplitBenchArgs& a, cudaStream_t s) {
  std::vector<Row> rows;
  for (Variant& v : variants) {
    if (!v.baseline && !a.variant.empty() && v.name.find(a.variant) == std::string::npos) continue;
    Row r;
    r.direction = v.direction;
    r.name = v.name;
    r.baseline = v.baseline;
    for (const Output& o : v.outputs)
      CUDA_CHECK(cudaMemsetAsync(o.device->get(), 0xff, o.device->bytes(), s));
    v.run();
    CUDA_CHECK(cudaStreamSynchronize(s));
    for (const Output& o : v.outputs)
      r.error = std::max(r.error, relative_error(*o.device, *o.ref));
    r.valid = r.error <= (v.baseline ? kCudnnTolerance : kOwnTolerance);
    if (r.valid) r.ms = median_ms(v.run, s, kernel_timing(a.runs));
    rows.push_back(r);
  }
  return rows;
}

std::string format_table(const std::string& title, const std::vector<Row>& rows,
                         const std::function<Work(const std::string&)>& work_of) {
  std::string out = title + "\n";
  char line[256];
  std::snprintf(line, sizeof line, "%-16s %-18s %9s %10s %9s %8s %9s\n", "direction", "variant",
                "rel err", "time ms", "GFLOP/s", "GB/s", "vs cudnn");
  out += line;
  for (const Row& r : rows) {
    if (!r.valid) {
      std::snprintf(line, sizeof line, "%-16s %-18s %9.2e %10s %9s %8s %9s\n", r.direction.c_str(),
                    r.name.c_str(), r.error, "INVALID", "-", "-", "-");
      out += line;
      continue;
    }
    const Work w = work_of(r.direction);
    double base = 0;
    for (const Row& b : rows)
      if (b.baseline && b.valid && b.direction == r.direction) base = b.ms;
    char ratio[32] = "-";
    if (base > 0) std::snprintf(ratio, sizeof ratio, "%.2fx", base / r.ms);
    std::snprintf(line, sizeof line, "%-16s %-18s %9.2e %10.4f %9.1f %8.1f %9s\n",
                  r.direction.c_str(), r.name.c_str(), r.error, r.ms, w.flops / (r.ms * 1e6),
                  w.bytes / (r.ms * 1e6), ratio);
    out += line;
  }
  return out;
}

std::string finish(const SplitBenchArgs& a, const std::vector<Row>& rows, const std::string& note,
                   const std::function<Work(const std::string&)>& work_of) {
  const std::string title = "bench kernel: " + shape_text(a) + " on " + device_text() +
                            "\nvs cudnn = cuDNN's time / the variant's, both measured in this run" +
                            note;
  std::string table = format_table(title, rows, work_of);
  for (const Row& r : rows)
    if (!r.valid)
      throw Error(table + "bench kernel: " + r.direction + " " + r.name +
                  " does not match the CPU reference");
  return table;
}

const char* tile_name(SplitTile t) {
  return t == SplitTile::Big ? "own-64x64" : t == SplitTile::Small ? "own-32x32" : "own";
}

// n×1 (vert) or 1×n (horz): forward with bias and ReLU, backward-data, backward-filter.
std::string bench_conv(const SplitBenchArgs& a, ConvContext& ctx) {
  const cudaStream_t s = ctx.stream;
  const bool vert = a.op == "vert";
  const Layer layer = split_layers(a, {{vert ? a.n : 1, vert ? 1 : a.n}})[0];
  const ConvGeom g = conv_geom(layer, a.batch);
  const int64_t plane = int64_t(g.oh) * g.ow;
  Rng rng(a.seed);
  const Floats x = random_floats(rng, g.x_size()), w = random_floats(rng, g.w_size()),
               b = random_floats(rng, g.m), dy = random_floats(rng, g.y_size());

  // The CPU reference. dy stands for an already masked gradient (the backward takes it so).
  Floats cpu_ws(size_t(cpu::conv_workspace(g))), y_ref(size_t(g.y_size())),
      dx_ref(size_t(g.x_size())), dw_ref(size_t(g.w_size())), db_ref(size_t(g.m));
  cpu::conv_forward(g, x.data(), w.data(), b.data(), y_ref.data(), cpu_ws.data());
  cpu::relu_forward(g.y_size(), y_ref.data());
  cpu::conv_backward_data(g, dy.data(), w.data(), dx_ref.data(), cpu_ws.data());
  cpu::conv_backward_filter(g, x.data(), dy.data(), dw_ref.data(), db_ref.data(), cpu_ws.data());

  DeviceBuffer<float> dx_in = upload(x, "x"), dw_in = upload(w, "w"), db_in = upload(b, "b"),
                      ddy = upload(dy, "dy");
  DeviceBuffer<float> y(size_t(g.y_size()), "y"), dx(size_t(g.x_size()), "dx"),
      dw(size_t(g.w_size()), "dw"), db(size_t(g.m), "db");
  DeviceBuffer<float> filter_ws((split_conv_filter_workspace(g) + 3) / 4, "filter workspace");

  std::vector<Variant> variants;
  std::string note;
  CudnnLayers cudnn;
  if (even_padding(layer)) {
    cudnn = plan_cudnn({layer}, a.batch, true, ctx);
  } else {
    note = "\n(cuDNN takes only even padding; an even n padded 'same' has no baseline)";
  }
  const SplitTile tiles[] = {SplitTile::Auto, SplitTile::Big, SplitTile::Small};
  CudnnConvImpl* plan = cudnn.convs.empty() ? nullptr : cudnn.convs[0].get();
  if (plan) {
    variants.push_back({"forward",
                        "cudnn",
                        true,
                        [&] { plan->forward(g.n, dx_in.get(), dw_in.get(), db_in.get(), y.get()); },
                        {{&y, &y_ref}}});
  }
  for (SplitTile t : tiles) {
    variants.push_back({"forward",
                        tile_name(t),
                        false,
                        [&, t] {
                          split_conv_forward(g, dx_in.get(), dw_in.get(), db_in.get(), true,
                                             y.get(), s, t);
                        },
                        {{&y, &y_ref}}});
  }
  if (plan) {
    variants.push_back({"backward-data",
                        "cudnn",
                        true,
                        [&] { plan->conv_backward_data(g.n, ddy.get(), dw_in.get(), dx.get()); },
                        {{&dx, &dx_ref}}});
  }
  for (SplitTile t : tiles) {
    variants.push_back(
        {"backward-data",
         tile_name(t),
         false,
         [&, t] { split_conv_backward_data(g, ddy.get(), dw_in.get(), dx.get(), s, t); },
         {{&dx, &dx_ref}}});
  }
  if (plan) {
    variants.push_back({"backward-filter",
                        "cudnn",
                        true,
                        [&] {
                          plan->conv_backward_filter(g.n, dx_in.get(), ddy.get(), dw.get());
                          bias_backward(s, g.n, g.m, plane, ddy.get(), db.get());
                        },
                        {{&dw, &dw_ref}, {&db, &db_ref}}});
  }
  variants.push_back({"backward-filter",
                      "own",
                      false,
                      [&] {
                        split_conv_backward_filter(g, dx_in.get(), ddy.get(), dw.get(), db.get(),
                                                   filter_ws.get(), s);
                      },
                      {{&dw, &dw_ref}, {&db, &db_ref}}});

  const std::vector<Row> rows = measure(variants, a, s);
  const double flops = 2.0 * double(macs(g)), f = sizeof(float);
  return finish(a, rows, note, [&](const std::string& dir) {
    if (dir == "forward")
      return Work{flops, f * double(g.x_size() + g.w_size() + g.m + g.y_size())};
    if (dir == "backward-data")
      return Work{flops, f * double(g.y_size() + g.w_size() + g.x_size())};
    return Work{flops, f * double(g.x_size() + g.y_size() + g.w_size() + g.m)};
  });
}

// The pair n×1 → bias → ReLU → 1×n → bias → ReLU, forward: fused against two launches.
std::string bench_pair(const SplitBenchArgs& a, ConvContext& ctx) {
  const cudaStream_t s = ctx.stream;
  const std::vector<Layer> layers = split_layers(a, {{a.n, 1}, {1, a.n}});
  const ConvGeom gv = conv_geom(layers[0], a.batch), gh = conv_geom(layers[1], a.batch);
  Rng rng(a.seed);
  const Floats x = random_floats(rng, gv.x_size()), w1 = random_floats(rng, gv.w_size()),
               b1 = random_floats(rng, gv.m), w2 = random_floats(rng, gh.w_size()),
               b2 = random_floats(rng, gh.m);

  Floats cpu_ws(size_t(std::max(cpu::conv_workspace(gv), cpu::conv_workspace(gh)))),
      z_ref(size_t(gv.y_size())), y_ref(size_t(gh.y_size()));
  cpu::conv_forward(gv, x.data(), w1.data(), b1.data(), z_ref.data(), cpu_ws.data());
  cpu::relu_forward(gv.y_size(), z_ref.data());
  cpu::conv_forward(gh, z_ref.data(), w2.data(), b2.data(), y_ref.data(), cpu_ws.data());
  cpu::relu_forward(gh.y_size(), y_ref.data());

  DeviceBuffer<float> dx = upload(x, "x"), dw1 = upload(w1, "w1"), db1 = upload(b1, "b1"),
                      dw2 = upload(w2, "w2"), db2 = upload(b2, "b2");
  DeviceBuffer<float> z(size_t(gv.y_size()), "z"), y(size_t(gh.y_size()), "y");

  std::vector<Variant> variants;
  std::string note;
  CudnnLayers cudnn;
  if (even_padding(layers[0]) && even_padding(layers[1])) {
    cudnn = plan_cudnn(layers, a.batch, false, ctx);
    variants.push_back(
        {"forward pair",
         "cudnn-2-launches",
         true,
         [&] {
           cudnn.convs[0]->forward(gv.n, dx.get(), dw1.get(), db1.get(), z.get());
           cudnn.convs[1]->forward(gh.n, z.get(), dw2.get(), db2.get(), y.get());
         },
         {{&y, &y_ref}, {&z, &z_ref}}});
  } else {
    note = "\n(cuDNN takes only even padding; an even n padded 'same' has no baseline)";
  }
  if (split_pair_supports(gv, gh)) {
    variants.push_back({"forward pair",
                        "own-fused",
                        false,
                        [&] {
                          split_pair_forward(gv, gh, dx.get(), dw1.get(), db1.get(), true,
                                             dw2.get(), db2.get(), true, nullptr, y.get(), s);
                        },
                        {{&y, &y_ref}}});
    variants.push_back({"forward pair",
                        "own-fused-keep-z",
                        false,
                        [&] {
                          split_pair_forward(gv, gh, dx.get(), dw1.get(), db1.get(), true,
                                             dw2.get(), db2.get(), true, z.get(), y.get(), s);
                        },
                        {{&y, &y_ref}, {&z, &z_ref}}});
  } else {
    note += "\n(the fused pair does not fit this shape: m·width too large for one band)";
  }
  variants.push_back({"forward pair",
                      "own-2-launches",
                      false,
                      [&] {
                        split_conv_forward(gv, dx.get(), dw1.get(), db1.get(), true, z.get(), s);
                        split_conv_forward(gh, z.get(), dw2.get(), db2.get(), true, y.get(), s);
                      },
                      {{&y, &y_ref}, {&z, &z_ref}}});

  const std::vector<Row> rows = measure(variants, a, s);
  const double flops = 2.0 * double(macs(gv) + macs(gh));
  const double bytes =
      sizeof(float) * double(gv.x_size() + gv.w_size() + gv.m + gh.w_size() + gh.m + gh.y_size());
  return finish(a, rows, note, [&](const std::string&) { return Work{flops, bytes}; });
}

}  // namespace

std::string run_conv_split_bench(const SplitBenchArgs& args) {
  check_args(args);
  const CudaStatus st = cuda_status();
  if (st.devices.empty()) throw Error("bench kernel: no CUDA device: " + st.why_none);
  Stream stream = new_stream();
  CudnnHandle cudnn = new_cudnn(stream);
  // Training's cuDNN set-up (conv.h): float32 math, algorithms found by measuring and picked
  // by cudnn_policy.h.
  ConvContext ctx;
  ctx.cudnn = cudnn;
  ctx.stream = stream;
  return args.op == "pair" ? bench_pair(args, ctx) : bench_conv(args, ctx);
}

}  // namespace splitconv::gpu
