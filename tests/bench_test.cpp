// The benchmarks on the CPU: every variant is checked before it is timed (and a wrong one is
// caught), the measured rule decides from its table alone, the grid and the derived figures
// are what the docs say, and the commands refuse bad arguments with exit 2 and one line.
#include <gtest/gtest.h>

#include "run_cli.h"
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "splitconv/bench.h"
#include "splitconv/error.h"
#include "splitconv/plan.h"
#include "splitconv/spec.h"

namespace fs = std::filesystem;
using namespace splitconv;
using namespace splitconv::bench;

namespace {

const std::string src = SPLITCONV_SOURCE_DIR;

// As quick as timing gets: one sample, no warm-up; two threads, so that the batch is sliced
// and the per-thread gradients summed even on a one-core machine.
TimingOptions quick() {
  TimingOptions o;
  o.warmups = 0;
  o.runs = o.min_runs = 1;
  o.min_sample_ms = 0;
  o.threads = 2;
  o.seed = uint64_t(::testing::UnitTest::GetInstance()->random_seed()) + 1;
  return o;
}

ConvCase small_case(Padding padding = Padding::Valid) {
  ConvCase s;
  s.kh = 3, s.kw = 3, s.c = 3, s.m = 5, s.rank = 4, s.h = 7, s.w = 6, s.batch = 3;
  s.padding = padding;
  return s;
}

using Outcome = splitconv::testing::CliResult;

Outcome run(const std::string& args) { return splitconv::testing::run_cli(args); }

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("splitconv-bench-" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir / name;
}

}  // namespace

TEST(BenchValidation, EveryCpuVariantMatchesThePlainReference) {
  for (Padding padding : {Padding::Valid, Padding::Same}) {
    const ConvBenchResult r = bench_conv_cpu(small_case(padding), quick());
    EXPECT_TRUE(r.all_valid()) << format_conv(r);
    EXPECT_EQ(r.validated_batch, 3) << "a small case is checked on every image";
    ASSERT_EQ(r.variants.size(), 2u);
    for (const VariantResult& v : r.variants) {
      EXPECT_LE(v.error, 1e-5) << v.side << " " << v.worst;
      EXPECT_GT(v.forward_ms, 0) << v.side;
      EXPECT_GT(v.train_ms, 0) << v.side;
    }
  }
}

TEST(BenchValidation, AWrongVariantIsCaughtAndNotTimed) {
  // One value off in each tensor in turn: the forward output, the input gradient, a weight
  // gradient of the second layer and a bias gradient of the first.
  const std::vector<std::pair<std::string, std::function<void(SideOutputs&)>>> faults = {
      {"act1", [](SideOutputs& o) { o.act[1][7] += 0.01f; }},
      {"dx", [](SideOutputs& o) { o.dx[3] *= 1.001f; o.dx[3] += 1e-3f; }},
      {"dw1", [](SideOutputs& o) { o.dw[1][0] = NAN; }},
      {"db0", [](SideOutputs& o) { o.db[0].pop_back(); }},
  };
  for (const auto& [tensor, fault] : faults) {
    TimingOptions o = quick();
    o.tamper = [&](const std::string& side, const std::string&, SideOutputs& out) {
      if (side == "pair") fault(out);
    };
    const ConvBenchResult r = bench_conv_cpu(small_case(), o);
    EXPECT_FALSE(r.all_valid()) << tensor;
    for (const VariantResult& v : r.variants) {
      if (v.side == "nxn") {
        EXPECT_TRUE(v.valid) << tensor;
        continue;
      }
      EXPECT_FALSE(v.valid) << tensor;
      EXPECT_EQ(v.worst, tensor);
      EXPECT_LT(v.train_ms, 0) << "a wrong variant is never timed";
      EXPECT_NE(format_conv(r).find("INVALID"), std::string::npos);
    }
  }
}

TEST(BenchValidation, CompareOutputsNamesTheWorstTensor) {
  const ConvCase s = small_case();
  const std::vector<Layer> pair = pair_layers(s);
  const SideTensors t = random_tensors(pair, s.batch, 7);
  const SideOutputs ref = reference_outputs(pair, s.batch, t);
  EXPECT_EQ(compare_outputs(ref, ref).error, 0.0);
  SideOutputs bad = ref;
  bad.dw[0][2] += 0.5f;
  bad.act[0][0] += 1e-6f;
  const Mismatch m = compare_outputs(bad, ref);
  EXPECT_EQ(m.tensor, "dw0");
  EXPECT_GT(m.error, 1e-3);
  bad = ref;
  bad.dx.clear();
  EXPECT_TRUE(std::isinf(compare_outputs(bad, ref).error));
  // Relative to each tensor's largest value: the same absolute error counts more in a small one.
  EXPECT_DOUBLE_EQ(relative_error(std::vector<float>{1.0f, 2.5f}, std::vector<float>{1.0f, 2.0f}),
                   0.25);
}

TEST(BenchCase, LayersAreShapedAsTheModelShapesThem) {
  ConvCase s;
  s.kh = s.kw = 5, s.c = 64, s.m = 32, s.rank = 16, s.h = 14, s.w = 12;
  const std::vector<Layer> n = nxn_layers(s), p = pair_layers(s);
  ASSERT_EQ(n.size(), 1u);
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(n[0].out, (Shape{10, 8, 32}));
  EXPECT_EQ(p[0].out, (Shape{10, 12, 16}));  // the n×1 layer keeps the full width
  EXPECT_EQ(p[1].out, (Shape{10, 8, 32}));
  EXPECT_EQ(n[0].params, 32 * (25 * 64 + 1));
  EXPECT_EQ(p[0].params + p[1].params, 16 * (5 * 64 + 1) + 32 * (5 * 16 + 1));
  s.kh = s.kw = 7, s.w = 6;  // a valid 7×7 does not fit 14×6
  EXPECT_THROW(check_case(s), InputError);
}

TEST(BenchCase, SideModelsEndInASmallHeadAnEngineCanPlan) {
  ConvCase s;
  s.kh = s.kw = 5, s.c = 64, s.m = 32, s.rank = 16, s.h = 14, s.w = 12;
  const Model n = nxn_model(s), p = pair_model(s);
  ASSERT_EQ(n.layers.size(), 4u);  // nxn, pool, flatten, head
  ASSERT_EQ(p.layers.size(), 5u);
  EXPECT_EQ(n.layers[0].out, nxn_layers(s)[0].out);
  EXPECT_EQ(p.layers[1].out, pair_layers(s)[1].out);
  // A max-pool over the whole 10x8 map: the head has 2·(32 + 1) parameters, not 2·(10·8·32 + 1).
  EXPECT_EQ(n.layers[1].kind(), LayerKind::MaxPool);
  EXPECT_EQ(n.layers[1].out, (Shape{1, 1, 32}));
  EXPECT_EQ(n.layers[3].params, 2 * (32 + 1));
  const StepPlan plan = make_plan(p, 4, true);
  EXPECT_TRUE(plan.forward[0].need_dx);
}

TEST(BenchReport, DerivedFiguresFollowTheirDefinitions) {
  ConvBenchResult r;
  r.shape.batch = 4;
  r.macs_nxn = 300, r.macs_pair = 100;  // the pair does a third of the work
  r.params_nxn = 40, r.params_pair = 30;
  r.variants = {{"nxn", "cpu", 0, 1e-5, "dx", true, 6.0, 12.0},
                {"pair", "a", 0, 1e-5, "dx", true, 3.0, 3.0},
                {"pair", "b", 0, 1e-5, "dx", true, 1.5, -1}};
  EXPECT_DOUBLE_EQ(theoretical_saving(r), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(param_saving(r), 0.25);
  EXPECT_EQ(fastest(r, "pair", false)->impl, "b");
  EXPECT_EQ(fastest(r, "pair", true)->impl, "a");  // b has no forward + backward time
  const Gain f = gain(r, r.variants[2], false);
  EXPECT_DOUBLE_EQ(f.speedup, 4.0);
  EXPECT_DOUBLE_EQ(f.time_saving, 0.75);
  EXPECT_DOUBLE_EQ(f.realised, 4.0 / 3.0);  // faster than the MACs promise
  const Gain t = gain(r, r.variants[1], true);
  EXPECT_DOUBLE_EQ(t.realised, 4.0 / 3.0);
  EXPECT_DOUBLE_EQ(gflops(r, r.variants[0], false), 2.0 * 300 * 4 / 6e6);
  EXPECT_DOUBLE_EQ(gflops(r, r.variants[0], true), 3 * 2.0 * 300 * 4 / 12e6);
  const std::string rows = csv_rows(r), header = csv_header();
  EXPECT_EQ(std::count(rows.begin(), rows.end(), '\n'), 3);
  const auto commas = std::count(header.begin(), header.end(), ',');
  std::istringstream lines(rows);
  for (std::string line; std::getline(lines, line);)
    EXPECT_EQ(std::count(line.begin(), line.end(), ','), commas) << line;
}

TEST(BenchGrid, GridsHoldTheShapesPeopleUse) {
  const auto small = sweep_grid("small", Padding::Valid), full = sweep_grid("full", Padding::Valid);
  EXPECT_EQ(small.size(), 3u * 5 * 4 - 5);  // n = 7 does not fit a 5×5 map
  EXPECT_EQ(full.size(), 2 * small.size());
  for (const ConvCase& s : full) EXPECT_NO_THROW(check_case(s));
  EXPECT_EQ(full.front().batch, 32);
  EXPECT_EQ(full.back().batch, 256);
  EXPECT_EQ(sweep_grid("small", Padding::Same).size(), 60u);
  EXPECT_THROW(sweep_grid("huge", Padding::Valid), InputError);
}

TEST(BenchRule, FakeTimingTableGivesTheExpectedDecisions) {
  const Model m = build_model(load_spec(src + "/models/seed-v0.net"));
  const int batch = 32;
  const ConvCase c1 = layer_case(m.layers[0], batch, 0), c2 = layer_case(m.layers[2], batch, 0),
                 c3 = layer_case(m.layers[4], batch, 0);
  TimingTable table;
  table.rows = {{c1, 1.0, 0.5, "cpu"}, {c2, 1.0, 0.5, "cpu"}, {c3, 1.0, 0.5, "cpu"}};
  auto d = measured_rule(m, batch, 0, table);
  ASSERT_EQ(d.size(), 3u);
  // conv1, conv2: the pair is faster here but has more parameters (P1 > P0): never split.
  EXPECT_FALSE(d[0].smaller);
  EXPECT_TRUE(d[0].faster);
  EXPECT_FALSE(d[0].split);
  EXPECT_FALSE(d[1].split);
  EXPECT_TRUE(d[2].split) << "smaller and faster";
  EXPECT_DOUBLE_EQ(d[2].pair_ms, 0.5);

  table.rows[2].pair_ms = 1.2;  // conv3's pair slower: kept whole
  d = measured_rule(m, batch, 0, table);
  EXPECT_TRUE(d[2].smaller);
  EXPECT_FALSE(d[2].faster);
  EXPECT_FALSE(d[2].split);

  // Times of another batch size (or none) decide nothing.
  d = measured_rule(m, 256, 0, table);
  for (const auto& x : d) EXPECT_FALSE(x.timed || x.split) << x.layer;

  // At rank 32 conv2's pair is smaller; timed at that rank and faster, it splits.
  TimingTable ranked;
  ranked.rows = {{layer_case(m.layers[2], batch, 32), 2.0, 1.0, "own"}};
  d = measured_rule(m, batch, 32, ranked);
  EXPECT_TRUE(d[1].split);
  EXPECT_EQ(d[1].pair_impl, "own");
  EXPECT_FALSE(d[2].timed);
  // Rank m is the default rank: the same shape.
  EXPECT_NE(table.find(layer_case(m.layers[4], batch, 64)), nullptr);
}

TEST(BenchLayers, CpuRowsCoverEveryLayerAndTheStep) {
  const Model m = build_model(load_spec(src + "/models/seed-v0.net"));
  const LayersResult r = bench_layers_cpu(m, 4, quick());
  ASSERT_EQ(r.rows.size(), m.layers.size() + 3);  // input, the layers, loss, update
  EXPECT_EQ(r.rows.front().name, "input");
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerTime& t = r.rows[i + 1];
    EXPECT_EQ(t.name, m.layers[i].name());
    EXPECT_EQ(t.macs, m.layers[i].macs);
    if (m.layers[i].kind() != LayerKind::Flatten) EXPECT_GT(t.forward_ms, 0) << t.name;
    if (m.layers[i].weight >= 0) EXPECT_GT(t.backward_ms, 0) << t.name;
  }
  EXPECT_GT(r.step_ms, 0);
  EXPECT_NE(format_layers(r).find("conv3"), std::string::npos);
}

TEST(BenchCli, BadArgumentsExitTwoWithOneLine) {
  const std::string v0 = src + "/models/seed-v0.net";
  for (const std::string& args : std::vector<std::string>{
           "bench conv --n 7 --size 5x5 --device cpu", "bench conv --size 28by28 --device cpu",
        "bench conv --device tpu", "bench conv --padding full --device cpu",
        "bench conv --n 1 --device cpu", "bench sweep --grid huge --device cpu",
        "bench sweep --plot out.jpg --device cpu", "bench layers /nonexistent/model.net --device cpu",
        "analyze " + v0 + " --rule fastest", "analyze " + v0 + " --device cpu",
        "factorize " + v0 + " --rule bogus", "factorize " + v0 + " --batch 8"}) {
    const Outcome r = run(args);
    EXPECT_EQ(r.code, 2) << args << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
  }
  EXPECT_EQ(run("bench conv --help").code, 0);
  EXPECT_EQ(run("bench sweep --help").code, 0);
}

TEST(BenchCli, ConvWritesItsJsonReport) {
  const fs::path json = scratch("conv.json");
  const Outcome r = run("bench conv --n 3 --c 4 --m 6 --size 6x5 --batch 2 --device cpu --runs 1 --json " +
                    json.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = nlohmann::json::parse(std::ifstream(json));
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["shape"]["m"], 6);
  EXPECT_TRUE(j["all_valid"]);
  ASSERT_EQ(j["variants"].size(), 2u);
  EXPECT_GT(j["variants"][1]["train_ms"].get<double>(), 0);
  EXPECT_TRUE(j["variants"][1].contains("train_realised"));
}

TEST(BenchCli, SweepWritesItsCsvAndStopsAtItsTimeLimit) {
  const fs::path csv = scratch("sweep.csv");
  const Outcome r = run("bench sweep --device cpu --runs 1 --time-limit 0.001 --csv " + csv.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("1 of 55 shapes"), std::string::npos) << r.out;
  std::ifstream in(csv);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u) << "the header, then the n×n and the pair of the first shape";
  EXPECT_EQ(lines[0] + "\n", csv_header());
  EXPECT_EQ(lines[1].rfind("cpu,", 0), 0u);
}

TEST(BenchCli, AnalyzeMeasuredShowsTheRulesSideBySide) {
  const fs::path json = scratch("measured.json");
  const Outcome r = run("analyze " + src + "/models/seed-v0.net --rule measured --device cpu --batch 4 "
                    "--runs 1 --json " + json.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("measured rule on CPU"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(std::ifstream(json));
  EXPECT_EQ(j["measured"]["batch"], 4);
  for (const auto& s : j["split"]) {
    EXPECT_TRUE(s.contains("measured_rule")) << s;
    EXPECT_GT(s["nxn_ms"].get<double>(), 0) << s;
    if (!s["exact_rule"].get<bool>()) EXPECT_FALSE(s["measured_rule"].get<bool>()) << s;
  }
}
