// The benchmarks' device dispatch: linked with whichever backend library is built (as
// backend_factory.cpp), since it calls into the CUDA one, or its stubs (cuda_absent.cpp).
#include "splitconv/bench.h"
#include "splitconv/error.h"

namespace splitconv::bench {

ConvBenchResult bench_conv(const ConvCase& s, const std::string& device, const TimingOptions& o) {
  if (device == "cpu") return bench_conv_cpu(s, o);
  if (device == "cuda") return gpu::bench_conv_cuda(s, o);
  throw InputError("--device: expected cpu or cuda, got '" + device + "'");
}

LayersResult bench_layers(const Model& model, int batch, const std::string& device,
                          const TimingOptions& o) {
  if (device == "cpu") return bench_layers_cpu(model, batch, o);
  if (device == "cuda") return gpu::bench_layers_cuda(model, batch, o);
  throw InputError("--device: expected cpu or cuda, got '" + device + "'");
}

TimingTable time_conv_layers(const Model& model, int batch, int rank, const std::string& device,
                             const TimingOptions& o) {
  TimingTable table;
  table.device = device;
  table.description = device;  // until a result names the machine
  for (const Layer& l : model.layers) {
    if (l.kind() != LayerKind::Conv || !analyze_split(l, rank).splittable) continue;
    const ConvCase s = layer_case(l, batch, rank);
    if (table.find(s)) continue;
    const ConvBenchResult r = bench_conv(s, device, o);
    table.description = r.description;
    const VariantResult* n = fastest(r, "nxn", true);
    const VariantResult* p = fastest(r, "pair", true);
    if (!r.all_valid() || !n || !p)
      throw Error("measured rule: " + l.name() + " (" + describe(s) + "): " +
                  (r.all_valid() ? "no valid timing" : "a variant does not match the CPU reference") +
                  "\n" + format_conv(r));
    table.rows.push_back({s, n->train_ms, p->train_ms, p->impl});
  }
  return table;
}

}  // namespace splitconv::bench
