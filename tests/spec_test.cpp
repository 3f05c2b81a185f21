// The .net parser: every keyword, default names, every error path with its line number.
#include <gtest/gtest.h>

#include "splitconv/error.h"
#include "splitconv/spec.h"

using namespace splitconv;

namespace {

std::string error_of(const std::string& text) {
  try {
    parse_spec(text, "m.net");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SpecParse, EveryKeywordAndOption) {
  Spec s = parse_spec(
      "# a comment\n"
      "input 32x30x3   # H x W x C\n"
      "\n"
      "conv 16 5x3 relu stride=2 padding=same name=stem\n"
      "conv 8 3x3\n"
      "maxpool 3x3 stride=2\n"
      "maxpool 2x1 stride=1 name=p\n"
      "flatten\n"
      "dense 20 none\n"
      "dense 10 softmax name=out\n",
      "m.net");
  EXPECT_EQ(s.in_h, 32);
  EXPECT_EQ(s.in_w, 30);
  EXPECT_EQ(s.in_c, 3);
  ASSERT_EQ(s.layers.size(), 7u);
  const auto& c = s.layers[0];
  EXPECT_EQ(c.kind, LayerKind::Conv);
  EXPECT_EQ(c.name, "stem");
  EXPECT_EQ(c.units, 16);
  EXPECT_EQ(c.kh, 5);
  EXPECT_EQ(c.kw, 3);
  EXPECT_EQ(c.stride, 2);
  EXPECT_EQ(c.padding, Padding::Same);
  EXPECT_EQ(c.activation, Activation::Relu);
  EXPECT_EQ(c.line, 4);
  EXPECT_EQ(s.layers[1].name, "conv2");  // default names count each kind, explicit or not
  EXPECT_EQ(s.layers[1].activation, Activation::None);
  EXPECT_EQ(s.layers[1].stride, 1);
  EXPECT_EQ(s.layers[2].name, "pool1");
  EXPECT_EQ(s.layers[2].stride, 2);
  EXPECT_EQ(s.layers[3].name, "p");
  EXPECT_EQ(s.layers[3].stride, 1);
  EXPECT_EQ(s.layers[4].kind, LayerKind::Flatten);
  EXPECT_EQ(s.layers[5].name, "dense1");
  EXPECT_EQ(s.layers[6].name, "out");
  EXPECT_EQ(s.layers[6].activation, Activation::Softmax);
}

TEST(SpecParse, PoolStrideDefaultsToPoolSize) {
  Spec s = parse_spec("input 8x8x1\nmaxpool 2x2\nflatten\ndense 2 softmax\n", "m.net");
  EXPECT_EQ(s.layers[0].stride, 2);
}

TEST(SpecParse, FormatParsesBackToTheSameSpec) {
  const char* text =
      "input 28x28x1\nconv 32 3x3 relu padding=same name=a\nconv 8 3x1 none stride=2\n"
      "maxpool 3x3 stride=2\nflatten\ndense 64 relu\ndense 10 softmax\n";
  Spec a = parse_spec(text, "a.net");
  Spec b = parse_spec(format_spec(a), "b.net");
  EXPECT_EQ(format_spec(a), format_spec(b));
  ASSERT_EQ(a.layers.size(), b.layers.size());
  for (size_t i = 0; i < a.layers.size(); ++i) {
    EXPECT_EQ(a.layers[i].name, b.layers[i].name);
    EXPECT_EQ(a.layers[i].kh, b.layers[i].kh);
    EXPECT_EQ(a.layers[i].kw, b.layers[i].kw);
    EXPECT_EQ(a.layers[i].stride, b.layers[i].stride);
    EXPECT_EQ(a.layers[i].padding, b.layers[i].padding);
    EXPECT_EQ(a.layers[i].activation, b.layers[i].activation);
  }
}

struct BadSpec {
  const char* text;
  const char* expected;  // a fragment of the message, which always starts "m.net:LINE:"
};

class SpecErrors : public ::testing::TestWithParam<BadSpec> {};

TEST_P(SpecErrors, NameTheLineAndWhatWasExpected) {
  std::string msg = error_of(GetParam().text);
  ASSERT_FALSE(msg.empty()) << "no error for: " << GetParam().text;
  EXPECT_NE(msg.find(GetParam().expected), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
}

INSTANTIATE_TEST_SUITE_P(
    All, SpecErrors,
    ::testing::Values(
        BadSpec{"", "m.net: no 'input"},
        BadSpec{"input 28x28x1\n", "m.net: no layers"},
        BadSpec{"conv 3 3x3\n", "m.net:1: expected 'input HxWxC'"},
        BadSpec{"input 28x28\n", "m.net:1: expected HxWxC"},
        BadSpec{"input 28x28x1 extra\n", "m.net:1: expected 'input HxWxC'"},
        BadSpec{"input 28x28x1\ninput 28x28x1\n", "m.net:2: a second 'input'"},
        BadSpec{"input 28x28x1\n\nconv x 3x3\n", "m.net:3: expected FILTERS"},
        BadSpec{"input 28x28x1\nconv 0 3x3\n", "m.net:2: expected FILTERS"},
        BadSpec{"input 28x28x1\nconv 4 3\n", "m.net:2: expected a kernel KHxKW"},
        BadSpec{"input 28x28x1\nconv 4 3x3x3\n", "m.net:2: expected a kernel KHxKW"},
        BadSpec{"input 28x28x1\nconv 4\n", "m.net:2: expected 'conv FILTERS KHxKW"},
        BadSpec{"input 28x28x1\nconv 4 3x3 tanh\n", "m.net:2: expected an activation"},
        BadSpec{"input 28x28x1\nconv 4 3x3 softmax\n", "m.net:2: expected an activation"},
        BadSpec{"input 28x28x1\nconv 4 3x3 relu none\n", "m.net:2: activation given twice"},
        BadSpec{"input 28x28x1\nconv 4 3x3 stride=0\n", "m.net:2: expected stride=S"},
        BadSpec{"input 28x28x1\nconv 4 3x3 padding=full\n", "m.net:2: expected padding=valid|same"},
        BadSpec{"input 28x28x1\nconv 4 3x3 dilation=2\n", "m.net:2: unknown option 'dilation'"},
        BadSpec{"input 28x28x1\nconv 4 3x3 name=9a\n", "m.net:2: expected name=NAME"},
        BadSpec{"input 28x28x1\nmaxpool\n", "m.net:2: expected 'maxpool PHxPW"},
        BadSpec{"input 28x28x1\nmaxpool 2x2 relu\n", "m.net:2: unexpected 'relu'"},
        BadSpec{"input 28x28x1\nmaxpool 2x2 padding=same\n", "m.net:2: unknown option 'padding'"},
        BadSpec{"input 28x28x1\nmaxpool 2x3\n", "m.net:2: a non-square pool needs an explicit stride"},
        BadSpec{"input 28x28x1\nflatten relu\n", "m.net:2: unexpected 'relu'"},
        BadSpec{"input 28x28x1\nflatten\ndense\n", "m.net:3: expected 'dense UNITS"},
        BadSpec{"input 28x28x1\nflatten\ndense 10 stride=2\n", "m.net:3: unknown option 'stride'"},
        BadSpec{"input 28x28x1\nconv 4 3x3\nconv 4 3x3 name=conv1\n", "m.net:3: layer name 'conv1' already used on line 2"},
        BadSpec{"input 28x28x1\nbatchnorm\n", "m.net:2: expected a layer (input, conv, maxpool, flatten, dense)"}));

TEST(SpecLoad, MissingFileNamesIt) {
  try {
    load_spec("/nonexistent/dir/x.net");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.net: cannot open"), std::string::npos);
  }
}
