// The split rule: P0 = m(n²c+1), P1 = m(nc+nm+2); exact rule P1 < P0, thumb rule n > 1 + m/c.
#include <gtest/gtest.h>

#include "splitconv/analysis.h"
#include "splitconv/error.h"
#include "splitconv/factorize.h"

using namespace splitconv;

namespace {

Layer conv_layer(int n1, int n2, int c, int m, int size = 16, const char* extra = "") {
  std::string text = "input " + std::to_string(size) + "x" + std::to_string(size) + "x" +
                     std::to_string(c) + "\nconv " + std::to_string(m) + " " +
                     std::to_string(n1) + "x" + std::to_string(n2) + " relu " + extra +
                     "\nflatten\ndense 2 softmax\n";
  return build_model(parse_spec(text, "t.net")).layers[0];
}

}  // namespace

TEST(SplitRule, SeedDecisionsAreNoNoYes) {
  Model v0 = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v0.net"));
  auto s = analyze_splits(v0);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].params_before, 320);
  EXPECT_EQ(s[0].params_after, 32 * (3 * 1 + 3 * 32 + 2));
  EXPECT_EQ(s[1].params_before, 18496);
  EXPECT_EQ(s[1].params_after, 18560);  // 64(3·32 + 3·64 + 2): the boundary, a loss
  EXPECT_EQ(s[2].params_before, 36928);
  EXPECT_EQ(s[2].params_after, 24704);  // 12,352 + 12,352
  EXPECT_FALSE(s[0].exact_rule);
  EXPECT_FALSE(s[1].exact_rule);
  EXPECT_TRUE(s[2].exact_rule);
  EXPECT_FALSE(s[0].thumb_rule);
  EXPECT_FALSE(s[1].thumb_rule);  // n = 1 + m/c exactly: not greater
  EXPECT_TRUE(s[2].thumb_rule);
  // conv3: 5×5×64 in; pair: (5−3+1)·5·64·3·64 + 3·3·64·3·64 against 3·3·64·9·64
  EXPECT_EQ(s[2].macs_before, 3 * 3 * 64 * 9 * 64);
  EXPECT_EQ(s[2].macs_after, 3 * 5 * 64 * 3 * 64 + 3 * 3 * 64 * 3 * 64);
  EXPECT_TRUE(s[2].macs_rule);  // 294,912 < 331,776: 11% fewer MACs for 33% fewer weights
}

struct RuleCase {
  int n, c, m;
};

class SplitRuleTable : public ::testing::TestWithParam<RuleCase> {};

TEST_P(SplitRuleTable, ExactRuleIsPairSmallerAndFormulasHold) {
  auto [n, c, m] = GetParam();
  auto a = analyze_split(conv_layer(n, n, c, m));
  int64_t p0 = int64_t(m) * (int64_t(n) * n * c + 1);
  int64_t p1 = int64_t(m) * (int64_t(n) * c + int64_t(n) * m + 2);
  EXPECT_EQ(a.params_before, p0);
  EXPECT_EQ(a.params_after, p1);
  EXPECT_EQ(a.exact_rule, p1 < p0);
  // n > 1 + m/c + 1/(nc), in integers: n·n·c > n·c + n·m + 1
  EXPECT_EQ(a.exact_rule, int64_t(n) * n * c > int64_t(n) * c + int64_t(n) * m + 1);
  // rule of thumb n > 1 + m/c, in integers: n·c > c + m
  EXPECT_EQ(a.thumb_rule, int64_t(n) * c > c + m);
}

INSTANTIATE_TEST_SUITE_P(All, SplitRuleTable,
                         ::testing::Values(RuleCase{3, 1, 32}, RuleCase{3, 32, 64},
                                           RuleCase{3, 64, 64}, RuleCase{3, 64, 128},
                                           RuleCase{3, 128, 64}, RuleCase{5, 32, 128},
                                           RuleCase{5, 16, 64}, RuleCase{7, 64, 384},
                                           RuleCase{7, 3, 64}, RuleCase{2, 10, 10},
                                           RuleCase{3, 2, 4}, RuleCase{5, 1, 1}));

TEST(SplitRule, ExactAndThumbAgreeForSquareKernelsAtFullRank) {
  // n²c > nc + nm + 1 and nc(n−1) > nm differ only when nc(n−1) = nm + 1, but both sides of
  // the thumb rule are multiples of n, so for n ≥ 2 the 1/(nc) term never flips a decision.
  for (int n = 2; n <= 7; ++n)
    for (int c = 1; c <= 12; ++c)
      for (int m = 1; m <= 40; ++m) {
        auto a = analyze_split(conv_layer(n, n, c, m));
        ASSERT_EQ(a.thumb_rule, a.exact_rule) << "n=" << n << " c=" << c << " m=" << m;
      }
  // With a smaller rank the bias terms can decide: K = 1, n = 2, c = 1, m = 1 costs
  // P1 = 1·(2+1) + 1·(2+1) = 6 against P0 = 1·(4+1) = 5, while the weights alone tie (4 = 4).
  auto a = analyze_split(conv_layer(2, 2, 1, 1), 1);
  EXPECT_EQ(a.params_after, 6);
  EXPECT_EQ(a.params_before, 5);
  EXPECT_FALSE(a.exact_rule);
  EXPECT_FALSE(a.thumb_rule);
}

TEST(SplitRule, RankAndNonSquareKernels) {
  auto a = analyze_split(conv_layer(5, 3, 8, 16), 4);
  EXPECT_EQ(a.params_before, 16 * (5 * 3 * 8 + 1));
  EXPECT_EQ(a.params_after, 4 * (5 * 8 + 1) + 16 * (3 * 4 + 1));
  // valid: n×1 gives 12×16×4, then 1×n gives 12×14×16
  EXPECT_EQ(a.macs_after, 12 * 16 * 4 * 5 * 8 + 12 * 14 * 16 * 3 * 4);
  auto same = analyze_split(conv_layer(3, 3, 8, 16, 16, "padding=same"));
  EXPECT_EQ(same.macs_before, 16 * 16 * 16 * 9 * 8);
  EXPECT_EQ(same.macs_after, 16 * 16 * 16 * 3 * 8 + 16 * 16 * 16 * 3 * 16);
}

TEST(SplitRule, UnsplittableLayersSayWhy) {
  EXPECT_FALSE(analyze_split(conv_layer(3, 1, 8, 8)).splittable);
  EXPECT_FALSE(analyze_split(conv_layer(1, 1, 8, 8)).splittable);
  auto s = analyze_split(conv_layer(3, 3, 8, 8, 16, "stride=2"));
  EXPECT_FALSE(s.splittable);
  EXPECT_NE(s.why_not.find("stride"), std::string::npos);
}

// A grouped conv is analysed per group: with g groups, c and K per group are c/g and K/g.
TEST(SplitRule, GroupedConvsAreAnalysedPerGroup) {
  ConvGeometry g;
  g.c = 64, g.m = 128, g.groups = 4, g.kh = g.kw = 3, g.in_h = g.in_w = 14;
  g.pad_top = g.pad_left = g.pad_bottom = g.pad_right = 1;
  auto a = analyze_conv_split(g);  // K = m = 128: 32 per group, c/g = 16
  ASSERT_TRUE(a.splittable);
  EXPECT_EQ(a.params_before, 128 * (9 * 16 + 1));                      // 18,560
  EXPECT_EQ(a.params_after, 128 * (3 * 16 + 1) + 128 * (3 * 32 + 1));  // 18,688
  EXPECT_FALSE(a.exact_rule);
  EXPECT_FALSE(a.thumb_rule);  // n = 3 = 1 + (m/g)/(c/g): not greater
  EXPECT_EQ(a.macs_before, 14 * 14 * 128 * 16 * 9);
  EXPECT_EQ(a.macs_after, 14 * 14 * 128 * 16 * 3 + 14 * 14 * 128 * 32 * 3);
  // The same conv ungrouped has 4 times the weights of each side.
  g.groups = 1;
  auto whole = analyze_conv_split(g);
  EXPECT_EQ(whole.params_before, 128 * (9 * 64 + 1));
  EXPECT_EQ(whole.params_after, 128 * (3 * 64 + 1) + 128 * (3 * 128 + 1));
  // Depthwise, without a bias (as before a batch normalization): P0 = 9m, P1 = 3m + 3m.
  ConvGeometry dw;
  dw.c = dw.m = dw.groups = 32, dw.kh = dw.kw = 3, dw.in_h = dw.in_w = 112, dw.bias = false;
  dw.pad_top = dw.pad_left = dw.pad_bottom = dw.pad_right = 1;
  auto d = analyze_conv_split(dw);
  EXPECT_EQ(d.params_before, 32 * 9);
  EXPECT_EQ(d.params_after, 32 * 3 + 32 * 3);
  EXPECT_TRUE(d.exact_rule);
  EXPECT_TRUE(d.thumb_rule);  // 3 > 1 + 1/1
  EXPECT_EQ(d.macs_after, 112 * 112 * 32 * 3 * 2);
  // A rank that does not divide into the groups cannot be split.
  auto odd = analyze_conv_split(dw, 33);
  EXPECT_FALSE(odd.splittable);
  EXPECT_NE(odd.why_not.find("groups"), std::string::npos);
}

// A strided n×n splits into n×1 with stride (s, 1) and 1×n with stride (1, s); asymmetric
// pads go to the layer of their axis.
TEST(SplitRule, StridedAndAsymmetricallyPaddedConvs) {
  ConvGeometry g;
  g.c = 16, g.m = 32, g.kh = 5, g.kw = 3, g.stride_h = 2, g.stride_w = 3;
  g.in_h = 20, g.in_w = 19, g.pad_top = 2, g.pad_bottom = 1, g.pad_left = 0, g.pad_right = 1;
  EXPECT_EQ(g.out_h(), (20 + 3 - 5) / 2 + 1);  // 10
  EXPECT_EQ(g.out_w(), (19 + 1 - 3) / 3 + 1);  // 6
  auto a = analyze_conv_split(g, 8);
  ASSERT_TRUE(a.splittable);
  EXPECT_EQ(a.stride_h, 2);
  EXPECT_EQ(a.stride_w, 3);
  EXPECT_EQ(a.macs_before, 10 * 6 * 32 * 16 * 15);
  // n×1: 10 rows (stride 2, pads 2 and 1) by all 19 columns; 1×n: 10 by 6 (stride 3).
  EXPECT_EQ(a.macs_after, 10 * 19 * 8 * 5 * 16 + 10 * 6 * 32 * 3 * 8);
  EXPECT_EQ(a.params_after, 8 * (5 * 16 + 1) + 32 * (3 * 8 + 1));
  // A spec has one stride for both axes: its strided layer is reported, not split.
  auto spec = analyze_split(conv_layer(3, 3, 8, 8, 16, "stride=2"));
  EXPECT_FALSE(spec.splittable);
  EXPECT_NE(spec.why_not.find("(2, 1) and (1, 2)"), std::string::npos) << spec.why_not;
}

TEST(Factorize, SeedV0BecomesSeedV1) {
  Model v0 = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v0.net"));
  Model v1 = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v1.net"));
  auto r = factorize_spec(v0, {});
  EXPECT_EQ(r.split, (std::vector<std::string>{"conv3"}));
  Model f = build_model(parse_spec(format_spec(r.spec), "f.net"));
  ASSERT_EQ(f.layers.size(), v1.layers.size());
  for (size_t i = 0; i < f.layers.size(); ++i) {
    EXPECT_EQ(f.layers[i].kind(), v1.layers[i].kind());
    EXPECT_EQ(f.layers[i].out, v1.layers[i].out);
    EXPECT_EQ(f.layers[i].params, v1.layers[i].params);
    EXPECT_EQ(f.layers[i].spec.activation, v1.layers[i].spec.activation);
  }
  EXPECT_EQ(f.total_params, 81098);
  EXPECT_EQ(f.layers[4].name(), "conv3_v");
  EXPECT_EQ(f.layers[5].name(), "conv3_h");
}

TEST(Factorize, RulesLayersRankAndMid) {
  Model v0 = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v0.net"));
  FactorizeOptions all;
  all.rule = SplitRule::All;
  EXPECT_EQ(factorize_spec(v0, all).split.size(), 3u);
  FactorizeOptions named;
  named.layers = {"conv2"};
  named.rank = 16;
  named.mid_relu = false;
  auto r = factorize_spec(v0, named);
  EXPECT_EQ(r.split, (std::vector<std::string>{"conv2"}));
  Model f = build_model(r.spec);
  EXPECT_EQ(f.layers[2].out.c, 16);
  EXPECT_EQ(f.layers[2].spec.activation, Activation::None);
  EXPECT_EQ(f.layers[3].spec.activation, Activation::Relu);
  FactorizeOptions bad;
  bad.layers = {"conv9"};
  EXPECT_THROW(factorize_spec(v0, bad), InputError);
  bad.layers = {"dense1"};
  EXPECT_THROW(factorize_spec(v0, bad), InputError);
  EXPECT_THROW(parse_rule("sometimes"), InputError);
}
