// The CUDA halves of the benchmarks: every variant (cuDNN for both sides, the own kernels and
// the fused pair) is checked against the CPU before it is timed, and a wrong one is caught;
// the per-layer times cover every layer of a model.
#include <gtest/gtest.h>

#include "gpu_test_util.h"
#include "splitconv/bench.h"
#include "splitconv/spec.h"

namespace splitconv::gpu::testing {
namespace {

bench::TimingOptions quick() {
  bench::TimingOptions o = bench::default_timing("cuda");
  o.warmups = 1;
  o.runs = o.min_runs = 2;
  o.seed = test_seed();
  return o;
}

bench::ConvCase small_case(int n, Padding padding) {
  bench::ConvCase s;
  s.kh = s.kw = n;
  s.c = 8, s.m = 12, s.rank = 10, s.h = 11, s.w = 9, s.batch = 3;
  s.padding = padding;
  return s;
}

}  // namespace

TEST(BenchCuda, EveryVariantMatchesTheCpuReference) {
  SPLITCONV_REQUIRE_GPU();
  SCOPED_TRACE("SPLITCONV_TEST_SEED=" + std::to_string(test_seed()));
  for (int n : {3, 5})
    for (Padding padding : {Padding::Valid, Padding::Same}) {
      const bench::ConvBenchResult r = bench_conv_cuda(small_case(n, padding), quick());
      EXPECT_TRUE(r.all_valid()) << bench::format_conv(r);
      EXPECT_EQ(r.validated_batch, 3);
      std::vector<std::string> impls;
      for (const auto& v : r.variants) {
        impls.push_back(v.side + "/" + v.impl);
        EXPECT_GT(v.forward_ms, 0) << v.impl;
        EXPECT_GT(v.train_ms, 0) << v.impl;
      }
      EXPECT_EQ(impls, (std::vector<std::string>{"nxn/cudnn", "pair/cudnn", "pair/own",
                                                 "pair/own-fused"}))
          << bench::format_conv(r);
    }
}

TEST(BenchCuda, AWrongVariantIsCaughtAndNotTimed) {
  SPLITCONV_REQUIRE_GPU();
  bench::TimingOptions o = quick();
  o.tamper = [](const std::string& side, const std::string& impl, bench::SideOutputs& out) {
    if (side == "pair" && impl == "own") out.dw[0][1] += 1.0f;
  };
  const bench::ConvBenchResult r = bench_conv_cuda(small_case(3, Padding::Valid), o);
  EXPECT_FALSE(r.all_valid());
  for (const auto& v : r.variants) {
    const bool wrong = v.side == "pair" && v.impl == "own";
    EXPECT_EQ(v.valid, !wrong) << v.impl;
    if (wrong) {
      EXPECT_EQ(v.worst, "dw0");
      EXPECT_LT(v.train_ms, 0);
    }
  }
}

TEST(BenchCuda, LayerTimesCoverEveryLayerAndTheStep) {
  SPLITCONV_REQUIRE_GPU();
  const Model m = build_model(load_spec(std::string(SPLITCONV_SOURCE_DIR) + "/models/seed-v1.net"));
  const bench::LayersResult r = bench_layers_cuda(m, 32, quick());
  ASSERT_EQ(r.rows.size(), m.layers.size() + 3);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    EXPECT_EQ(r.rows[i + 1].name, m.layers[i].name());
    if (m.layers[i].kind() != LayerKind::Flatten) EXPECT_GT(r.rows[i + 1].forward_ms, 0);
    if (m.layers[i].weight >= 0) EXPECT_GT(r.rows[i + 1].backward_ms, 0);
  }
  EXPECT_GT(r.step_ms, 0);
}

}  // namespace splitconv::gpu::testing
