// Size limits (docs/design.md, Size limits): every size in 64 bits, checked; the largest
// accepted and the smallest refused at each limit; a refusal names the layer and the shapes.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "splitconv/analysis.h"
#include "splitconv/error.h"
#include "splitconv/model.h"
#include "splitconv/plan.h"

using namespace splitconv;

namespace {

Model build(const std::string& text) { return build_model(parse_spec(text, "m.net")); }

// The message of the InputError that building `text` throws ("" when it builds).
std::string refusal(const std::string& text) {
  try {
    build(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

std::string plan_refusal(const Model& m, int batch) {
  try {
    make_plan(m, batch);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

const std::string tail = "flatten\ndense 2 softmax\n";
// For large maps: a pool keeps the dense layer's weight within the limit.
const std::string pooled = "maxpool 1000x1000\nflatten\ndense 2 softmax\n";

}  // namespace

TEST(SizeLimits, ProductWithinRefusesOverflowAndThePastLimit) {
  EXPECT_EQ(product_within(46340, 46340, kMaxTensor), 2147395600);
  EXPECT_EQ(product_within(65536, 32768, kMaxTensor), -1);  // 2^31, one past the limit
  EXPECT_EQ(product_within(65536, 32767, kMaxTensor), 2147418112);
  EXPECT_EQ(product_within(int64_t(1) << 32, int64_t(1) << 31, INT64_MAX), -1);  // 2^63
  EXPECT_EQ(product_within(int64_t(1) << 32, (int64_t(1) << 31) - 1, INT64_MAX),
            INT64_MAX - ((int64_t(1) << 32) - 1));  // 2^63 − 2^32
  EXPECT_EQ(product_within(-1, 2, INT64_MAX), -1);
}

TEST(SizeLimits, EachDimensionAtMostAMillion) {
  EXPECT_EQ(refusal("input 1000000x1x1\n" + tail), "");
  std::string e = refusal("input 1000001x1x1\n" + tail);
  EXPECT_NE(e.find("m.net:1:"), std::string::npos) << e;
  EXPECT_NE(e.find("1000001 is over the limit of 1,000,000 per dimension"), std::string::npos) << e;
  // Past int: still the limit, not a parse error or a wrapped number.
  e = refusal("input 3000000000x1x1\n" + tail);
  EXPECT_NE(e.find("3000000000 is over the limit"), std::string::npos) << e;
  EXPECT_EQ(refusal("input 4x4x1\nconv 1000000 1x1\n" + tail), "");
  e = refusal("input 4x4x1\nconv 1000001 1x1\n" + tail);
  EXPECT_NE(e.find("m.net:2:"), std::string::npos) << e;
  EXPECT_NE(e.find("1000001 is over the limit"), std::string::npos) << e;
  e = refusal("input 4x4x1\nconv 2 1000001x1 padding=same\n" + tail);
  EXPECT_NE(e.find("1000001 is over the limit"), std::string::npos) << e;
}

TEST(SizeLimits, TheIssuesOverflowingFlattenIsRefused) {
  // Flatten of this used to be printed as 1x1x1167933696: now the input is refused.
  std::string e = refusal("input 3000000x3000000x1\nconv 64 3x3 relu\nflatten\ndense 10 softmax\n");
  EXPECT_NE(e.find("m.net:1:"), std::string::npos) << e;
  EXPECT_NE(e.find("3000000 is over the limit"), std::string::npos) << e;
  // Within the dimension limit but not the tensor limit: named with its element count.
  e = refusal("input 1000000x1000000x1\nconv 64 3x3 relu\nflatten\ndense 10 softmax\n");
  EXPECT_NE(e.find("input 1000000x1000000x1 is 1,000,000,000,000 elements (3.6 TiB) per image"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("2,147,483,647 elements per tensor"), std::string::npos) << e;
}

TEST(SizeLimits, OneImagesInputAtMostTwoToThe31MinusOne) {
  Model m = build("input 1000000x2147x1\n" + pooled);  // 2,147,000,000 elements
  EXPECT_EQ(m.layers[0].in.size(), 2147000000);
  EXPECT_EQ(m.layers[0].out, (Shape{1000, 2, 1}));
  std::string e = refusal("input 65536x32768x1\n" + tail);  // 2^31
  EXPECT_NE(e.find("input 65536x32768x1 is 2,147,483,648 elements"), std::string::npos) << e;
}

TEST(SizeLimits, ALayersOutputAtMostTwoToThe31MinusOne) {
  Model m = build("input 1000x1000x1\nconv 2147 1x1\n" + pooled);
  EXPECT_EQ(m.layers[0].out.size(), 2147000000);
  EXPECT_EQ(m.layers[0].macs, 2147000000);
  std::string e = refusal("input 1000x1000x1\nconv 2148 1x1\n" + pooled);
  EXPECT_NE(e.find("m.net:2: layer conv1 (conv) on input 1000x1000x1: its output 1000x1000x2148 "
                   "is 2,148,000,000 elements (8.0 GiB), over the limit"),
            std::string::npos)
      << e;
}

TEST(SizeLimits, AParameterTensorAtMostTwoToThe31MinusOne) {
  EXPECT_EQ(refusal("input 3x3x1000000\nconv 2147 1x1\n" + tail), "");
  std::string e = refusal("input 3x3x1000000\nconv 2148 1x1\n" + tail);
  EXPECT_NE(e.find("layer conv1 (conv) on input 3x3x1000000: its weight [2148,1000000,1,1] is "
                   "2,148,000,000 elements"),
            std::string::npos)
      << e;
  // A kernel past int64 in elements: named, not wrapped.
  e = refusal("input 4x4x1000000\nconv 1000000 1000000x1000000 padding=same\n" + tail);
  EXPECT_NE(e.find("its weight [1000000,1000000,1000000,1000000] is past 2^63"), std::string::npos)
      << e;
  Model m = build("input 1000x2147x1\nflatten\ndense 1000 softmax\n");  // 2,147,000,000 weights
  EXPECT_EQ(m.layers[1].macs, 2147000000);
  e = refusal("input 1000x2147x1\nflatten\ndense 1001 softmax\n");
  EXPECT_NE(e.find("layer dense1 (dense) on input 1x1x2147000: its weight [1001,2147000] is "
                   "2,149,147,000 elements"),
            std::string::npos)
      << e;
}

TEST(SizeLimits, MacsCountInSixtyFourBits) {
  // 2,147,000,000 outputs of 2,147 MACs each: past int32, well within int64.
  Model m = build("input 1000000x2147x1\nconv 1 1x2147 padding=same\n" + pooled);
  EXPECT_EQ(m.layers[0].macs, 1000000LL * 2147 * 2147);
  EXPECT_EQ(m.total_macs, 1000000LL * 2147 * 2147 + 2000 * 2);  // + dense1: 1000x2x1 in
}

TEST(SizeLimits, ABatchBufferAtMostTwoToThe31MinusOne) {
  Model m = build("input 1024x1024x1\nconv 2 1x1\n" + tail);  // 2^20 and 2^21 per image
  EXPECT_EQ(plan_refusal(m, 1023), "");                       // conv1: 1023·2^21 < 2^31
  std::string e = plan_refusal(m, 1024);                      // conv1: 2^31
  EXPECT_NE(e.find("m.net: at batch 1024, the output of conv1 (1024x1024x2 per image) is "
                   "2,147,483,648 elements (8.0 GiB), over the limit of 2,147,483,647"),
            std::string::npos)
      << e;
  Model small = build("input 2x2x1\n" + tail);
  EXPECT_EQ(plan_refusal(small, kMaxBatch), "");
  e = plan_refusal(small, kMaxBatch + 1);
  EXPECT_NE(e.find("batch 65537 is over the limit of 65,536"), std::string::npos) << e;
}

TEST(SizeLimits, APairPastTheLimitsIsNotSplittable) {
  Model m = build("input 1000x1000x1\nconv 4 3x3\n" + tail);
  SplitAnalysis a = analyze_split(m.layers[0], 1000000);  // the n×1 layer: 998x1000x1000000
  EXPECT_FALSE(a.splittable);
  EXPECT_NE(a.why_not.find("past the size limits"), std::string::npos) << a.why_not;
  EXPECT_TRUE(analyze_split(m.layers[0], 2000).splittable);  // 998·1000·2000 < 2^31
}
