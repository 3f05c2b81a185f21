// What a `bench conv` result says: derived figures, the table, JSON and CSV.
#include <cmath>
#include <cstdio>

#include "splitconv/bench.h"
#include "splitconv/format.h"

namespace splitconv::bench {
namespace {

double ms_of(const VariantResult& v, bool train) { return train ? v.train_ms : v.forward_ms; }

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// "  3.125    45.2   19.9%    0.93" for one direction of a variant, dashes where unknown.
std::string timing_cells(const ConvBenchResult& r, const VariantResult& v, bool train) {
  const double ms = ms_of(v, train);
  if (ms < 0) return "         -        -       -        -";
  std::string out = fmt("%10.3f", ms) + fmt("%9.1f", gflops(r, v, train));
  const Gain g = gain(r, v, train);
  if (v.side == "nxn" || !g.known) return out + "       -        -";
  return out + fmt("%7.1f%%", 100 * g.time_saving) + fmt("%9.2f", g.realised);
}

void put_direction(nlohmann::json& j, const ConvBenchResult& r, const VariantResult& v,
                   bool train) {
  const std::string d = train ? "train" : "forward";
  if (ms_of(v, train) < 0) return;
  j[d + "_ms"] = ms_of(v, train);
  j[d + "_gflops"] = gflops(r, v, train);
  const Gain g = gain(r, v, train);
  if (g.known) {
    j[d + "_speedup"] = g.speedup;
    j[d + "_time_saving"] = g.time_saving;
    j[d + "_realised"] = g.realised;
  }
}

}  // namespace

bool ConvBenchResult::all_valid() const {
  for (const VariantResult& v : variants)
    if (!v.valid) return false;
  return true;
}

double param_saving(const ConvBenchResult& r) {
  return 1.0 - double(r.params_pair) / double(r.params_nxn);
}

double theoretical_saving(const ConvBenchResult& r) {
  return 1.0 - double(r.macs_pair) / double(r.macs_nxn);
}

const VariantResult* fastest(const ConvBenchResult& r, const std::string& side, bool train) {
  const VariantResult* best = nullptr;
  for (const VariantResult& v : r.variants)
    if (v.side == side && v.valid && ms_of(v, train) > 0 && (!best || ms_of(v, train) < ms_of(*best, train)))
      best = &v;
  return best;
}

Gain gain(const ConvBenchResult& r, const VariantResult& v, bool train) {
  Gain g;
  const VariantResult* base = fastest(r, "nxn", train);
  if (!base || !v.valid || ms_of(v, train) <= 0) return g;
  const int64_t macs = v.side == "nxn" ? r.macs_nxn : r.macs_pair;
  g.known = true;
  g.speedup = ms_of(*base, train) / ms_of(v, train);
  g.time_saving = 1.0 - 1.0 / g.speedup;
  g.realised = g.speedup / (double(r.macs_nxn) / double(macs));
  return g;
}

double gflops(const ConvBenchResult& r, const VariantResult& v, bool train) {
  const double ms = ms_of(v, train);
  if (ms <= 0) return 0;
  const double macs = double(v.side == "nxn" ? r.macs_nxn : r.macs_pair) * r.shape.batch;
  return (train ? 3.0 : 1.0) * 2.0 * macs / (ms * 1e6);
}

std::string format_conv(const ConvBenchResult& r) {
  std::string out = "bench conv: " + describe(r.shape) + "; " + r.description + "\n";
  out += "every variant checked against the plain CPU ops on " + std::to_string(r.validated_batch) +
         (r.validated_batch == 1 ? " image" : " images") + " before it was timed\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-6s %12s %16s\n", "", "params", "MACs/image");
  out += line;
  std::snprintf(line, sizeof line, "  %-6s %12s %16s\n", "nxn", thousands(r.params_nxn).c_str(),
                thousands(r.macs_nxn).c_str());
  out += line;
  std::snprintf(line, sizeof line,
                "  %-6s %12s %16s   saving: params %.1f%%, MACs %.1f%% (theoretical)\n\n", "pair",
                thousands(r.params_pair).c_str(), thousands(r.macs_pair).c_str(),
                100 * param_saving(r), 100 * theoretical_saving(r));
  out += line;
  std::snprintf(line, sizeof line, "  %-5s %-10s %8s %10s %8s %7s %8s %10s %8s %7s %8s\n", "side",
                "impl", "rel err", "fwd ms", "GFLOP/s", "saving", "realised", "f+b ms", "GFLOP/s",
                "saving", "realised");
  out += line;
  for (const VariantResult& v : r.variants) {
    std::snprintf(line, sizeof line, "  %-5s %-10s %8.1e", v.side.c_str(),
                  v.impl.c_str(), v.error);
    out += line;
    if (!v.valid) {
      out += "   INVALID: " + v.worst + " off by " + fmt("%.2e", v.error) + " (tolerance " +
             fmt("%.0e", v.tolerance) + "), not timed\n";
      continue;
    }
    out += timing_cells(r, v, false) + timing_cells(r, v, true) + "\n";
  }
  out += "saving = 1 − t/t(n×n), the fastest n×n in this run; realised = (t(n×n)/t) / "
         "(MACs n×n / MACs pair): 1 when time shrinks as MACs do\n";
  for (const std::string& n : r.notes) out += "note: " + n + "\n";
  return out;
}

nlohmann::json conv_json(const ConvBenchResult& r) {
  const ConvCase& s = r.shape;
  nlohmann::json j = {
      {"device", r.device},
      {"description", r.description},
      {"shape", {{"kh", s.kh}, {"kw", s.kw}, {"c", s.c}, {"m", s.m}, {"rank", s.k()},
                 {"h", s.h}, {"w", s.w}, {"batch", s.batch}, {"padding", to_string(s.padding)}}},
      {"validated_batch", r.validated_batch},
      {"params_nxn", r.params_nxn},
      {"params_pair", r.params_pair},
      {"macs_nxn", r.macs_nxn},
      {"macs_pair", r.macs_pair},
      {"param_saving", param_saving(r)},
      {"theoretical_saving", theoretical_saving(r)},
      {"all_valid", r.all_valid()},
      {"notes", r.notes},
      {"variants", nlohmann::json::array()}};
  for (const VariantResult& v : r.variants) {
    nlohmann::json o = {{"side", v.side},   {"impl", v.impl},       {"valid", v.valid},
                        {"error", std::isfinite(v.error) ? v.error : 1e300},
                        {"tolerance", v.tolerance}, {"worst", v.worst}};
    put_direction(o, r, v, false);
    put_direction(o, r, v, true);
    j["variants"].push_back(o);
  }
  return j;
}

std::string csv_header() {
  return "device,description,kh,kw,c,m,k,h,w,batch,padding,params_nxn,params_pair,macs_nxn,"
         "macs_pair,param_saving,theoretical_saving,side,impl,valid,error,forward_ms,train_ms,"
         "forward_gflops,train_gflops,forward_time_saving,train_time_saving,forward_realised,"
         "train_realised\n";
}

std::string csv_rows(const ConvBenchResult& r) {
  const ConvCase& s = r.shape;
  std::string description = r.description;
  for (char& ch : description)
    if (ch == '"') ch = '\'';
  std::string out;
  for (const VariantResult& v : r.variants) {
    std::string row = r.device + ",\"" + description + "\"";
    for (int x : {s.kh, s.kw, s.c, s.m, s.k(), s.h, s.w, s.batch}) row += fmt(",%.0f", x);
    row += std::string(",") + to_string(s.padding);
    for (int64_t x : {r.params_nxn, r.params_pair, r.macs_nxn, r.macs_pair}) row += fmt(",%.0f", double(x));
    row += fmt(",%.6f", param_saving(r)) + fmt(",%.6f", theoretical_saving(r));
    row += "," + v.side + "," + v.impl + (v.valid ? ",1" : ",0") + fmt(",%.3e", v.error);
    auto cell = [&](double x, const char* f) { return x > 0 || x < 0 ? fmt(f, x) : std::string(","); };
    for (bool train : {false, true}) row += ms_of(v, train) > 0 ? fmt(",%.6f", ms_of(v, train)) : ",";
    for (bool train : {false, true}) row += cell(gflops(r, v, train), ",%.3f");
    for (bool train : {false, true}) {
      const Gain g = gain(r, v, train);
      row += g.known ? fmt(",%.6f", g.time_saving) : ",";
    }
    for (bool train : {false, true}) {
      const Gain g = gain(r, v, train);
      row += g.known ? fmt(",%.6f", g.realised) : ",";
    }
    out += row + "\n";
  }
  return out;
}

std::string sweep_table_header() {
  char line[256];
  std::snprintf(line, sizeof line, "%-5s %9s %7s %5s %7s | %9s %9s %-9s %7s %8s | %9s %9s %-9s %7s %8s\n",
                "n", "c->m", "map", "batch", "MACs", "fwd nxn", "pair", "(impl)", "saved",
                "realised", "f+b nxn", "pair", "(impl)", "saved", "realised");
  return line;
}

std::string sweep_table_row(const ConvBenchResult& r) {
  const ConvCase& s = r.shape;
  char line[320];
  const std::string kernel = std::to_string(s.kh) + "x" + std::to_string(s.kw);
  const std::string cm = std::to_string(s.c) + "->" + std::to_string(s.m);
  const std::string map = std::to_string(s.h) + "x" + std::to_string(s.w);
  std::snprintf(line, sizeof line, "%-5s %9s %7s %5d %6.1f%% |", kernel.c_str(), cm.c_str(),
                map.c_str(), s.batch, 100 * theoretical_saving(r));
  std::string out = line;
  for (bool train : {false, true}) {
    const VariantResult* n = fastest(r, "nxn", train);
    const VariantResult* p = fastest(r, "pair", train);
    if (!n || !p) {
      out += "  (no valid timing)                         |";
      continue;
    }
    const Gain g = gain(r, *p, train);
    std::snprintf(line, sizeof line, " %9.3f %9.3f %-9s %6.1f%% %8.2f |", ms_of(*n, train),
                  ms_of(*p, train), ("(" + p->impl + ")").c_str(), 100 * g.time_saving, g.realised);
    out += line;
  }
  out.pop_back();
  if (!r.all_valid()) out += " INVALID variant(s)";
  return out + "\n";
}

}  // namespace splitconv::bench

namespace splitconv::bench {

std::string format_layers(const LayersResult& r) {
  double fwd = 0, bwd = 0;
  for (const LayerTime& t : r.rows) fwd += t.forward_ms, bwd += t.backward_ms;
  const double total = fwd + bwd;
  std::string out = "bench layers: " + r.model + ", batch " + std::to_string(r.batch) + "; " +
                    r.description + "\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-10s %-16s %-11s %10s %12s %9s %9s %6s %8s\n", "layer",
                "type", "output", "params", "MACs/image", "fwd ms", "bwd ms", "share", "GFLOP/s");
  out += line;
  for (const LayerTime& t : r.rows) {
    const std::string shape = t.out.h ? std::to_string(t.out.h) + "x" + std::to_string(t.out.w) +
                                            "x" + std::to_string(t.out.c)
                                      : "";
    auto ms = [](double v) { return v > 0 ? fmt("%9.3f", v) : std::string("        -"); };
    const double share = total > 0 ? 100 * (t.forward_ms + t.backward_ms) / total : 0;
    const std::string rate = t.macs > 0 && t.forward_ms > 0
                                 ? fmt("%8.1f", 2.0 * double(t.macs) * r.batch / (t.forward_ms * 1e6))
                                 : std::string("       -");
    std::snprintf(line, sizeof line, "  %-10s %-16s %-11s %10s %12s %s %s %5.1f%% %s\n",
                  t.name.c_str(), t.kind.c_str(), shape.c_str(), thousands(t.params).c_str(),
                  thousands(t.macs).c_str(), ms(t.forward_ms).c_str(), ms(t.backward_ms).c_str(),
                  share, rate.c_str());
    out += line;
  }
  std::snprintf(line, sizeof line, "  %-10s %-16s %-11s %10s %12s %9.3f %9.3f %5.1f%%\n", "total",
                "(sum of rows)", "", "", "", fwd, bwd, 100.0);
  out += line;
  if (r.step_ms > 0) {
    std::snprintf(line, sizeof line,
                  "the backend's own train_step, same run: %.3f ms (the rows add up to %.0f%% of it: "
                  "here each row is timed alone)\n",
                  r.step_ms, 100 * total / r.step_ms);
    out += line;
  }
  if (r.handoff_ms > 0) {
    std::snprintf(line, sizeof line,
                  "each row includes one hand-off to the threads and back (an empty one: %.3f ms); "
                  "the backend's step pays one in all\n",
                  r.handoff_ms);
    out += line;
  }
  out += "GFLOP/s: forward, 2·MACs·batch / time\n";
  return out;
}

nlohmann::json layers_json(const LayersResult& r) {
  nlohmann::json j = {{"model", r.model},   {"device", r.device}, {"description", r.description},
                      {"batch", r.batch},   {"step_ms", r.step_ms},
                      {"handoff_ms", r.handoff_ms},
                      {"layers", nlohmann::json::array()}};
  double fwd = 0, bwd = 0;
  for (const LayerTime& t : r.rows) {
    fwd += t.forward_ms, bwd += t.backward_ms;
    j["layers"].push_back({{"name", t.name},
                           {"type", t.kind},
                           {"output", {{"h", t.out.h}, {"w", t.out.w}, {"c", t.out.c}}},
                           {"params", t.params},
                           {"macs", t.macs},
                           {"forward_ms", t.forward_ms},
                           {"backward_ms", t.backward_ms}});
  }
  j["total_forward_ms"] = fwd;
  j["total_backward_ms"] = bwd;
  return j;
}

}  // namespace splitconv::bench
