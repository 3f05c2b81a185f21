// Shape inference, parameter slots, MACs and initialisation.
#include <gtest/gtest.h>

#include <cmath>

#include "splitconv/error.h"
#include "splitconv/model.h"

using namespace splitconv;

namespace {

Model model_of(const std::string& text) { return build_model(parse_spec(text, "m.net")); }
const std::string tail = "flatten\ndense 10 softmax\n";

std::string misfit(const std::string& text) {
  try {
    model_of(text);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ModelShapes, ValidAndSamePaddingWithStrides) {
  Model m = model_of("input 28x27x3\nconv 8 3x3\nconv 8 3x3 stride=2\nconv 8 4x4 padding=same\n"
                     "conv 8 3x3 stride=2 padding=same\nconv 8 5x1\nconv 8 1x5 padding=same\n" + tail);
  EXPECT_EQ(m.layers[0].out, (Shape{26, 25, 8}));
  EXPECT_EQ(m.layers[1].out, (Shape{12, 12, 8}));  // ⌊(26−3)/2⌋+1, ⌊(25−3)/2⌋+1
  EXPECT_EQ(m.layers[2].out, (Shape{12, 12, 8}));
  // even kernel, same: 3 pixels of padding, the odd one at the bottom/right (TensorFlow)
  EXPECT_EQ(m.layers[2].pad_top, 1);
  EXPECT_EQ(m.layers[2].pad_bottom, 2);
  EXPECT_EQ(m.layers[3].out, (Shape{6, 6, 8}));  // ⌈12/2⌉
  EXPECT_EQ(m.layers[3].pad_top, 0);              // (6−1)·2+3−12 = 1: all at the bottom
  EXPECT_EQ(m.layers[3].pad_bottom, 1);
  EXPECT_EQ(m.layers[4].out, (Shape{2, 6, 8}));
  EXPECT_EQ(m.layers[5].out, (Shape{2, 6, 8}));
  EXPECT_EQ(m.layers[5].pad_left, 2);
  EXPECT_EQ(m.layers[5].pad_right, 2);
}

TEST(ModelShapes, PoolsThatDoNotDivideTheMap) {
  Model m = model_of("input 7x9x2\nmaxpool 2x2\nmaxpool 3x1 stride=1\n" + tail);
  EXPECT_EQ(m.layers[0].out, (Shape{3, 4, 2}));
  EXPECT_EQ(m.layers[1].out, (Shape{1, 4, 2}));
  EXPECT_EQ(m.layers[3].in, (Shape{1, 1, 8}));  // flatten
  Model o = model_of("input 7x7x1\nmaxpool 3x3 stride=2\n" + tail);
  EXPECT_EQ(o.layers[0].out, (Shape{3, 3, 1}));
}

TEST(ModelShapes, MisfitsNameTheLayerAndShapes) {
  EXPECT_NE(misfit("input 4x4x1\nconv 2 5x5\n" + tail)
                .find("m.net:2: layer conv1 (conv) does not fit its input 4x4x1: kernel 5x5"),
            std::string::npos);
  EXPECT_NE(misfit("input 4x4x1\nmaxpool 5x5\n" + tail).find("layer pool1 (maxpool) does not fit"),
            std::string::npos);
  EXPECT_NE(misfit("input 4x4x1\ndense 10 softmax\n").find("dense before flatten"), std::string::npos);
  EXPECT_NE(misfit("input 4x4x1\nflatten\nconv 2 1x1\ndense 2 softmax\n").find("after flatten"),
            std::string::npos);
  EXPECT_NE(misfit("input 4x4x1\nflatten\ndense 5 softmax\ndense 2 softmax\n")
                .find("softmax is only allowed on the last layer"),
            std::string::npos);
  EXPECT_NE(misfit("input 4x4x1\nconv 2 3x3\n").find("must be dense"), std::string::npos);
  EXPECT_NE(misfit("input 4x4x1\nflatten\ndense 3 relu\n").find("gives the logits"), std::string::npos);
  // a kernel larger than the map is fine with same padding
  EXPECT_EQ(misfit("input 4x4x1\nconv 2 5x5 padding=same\n" + tail), "");
}

TEST(ModelParams, SeedModelsMatchTheNotebook) {
  Model v0 = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v0.net"));
  Model v1 = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v1.net"));
  std::vector<int64_t> p0, p1;
  for (const auto& l : v0.layers) p0.push_back(l.params);
  for (const auto& l : v1.layers) p1.push_back(l.params);
  EXPECT_EQ(p0, (std::vector<int64_t>{320, 0, 18496, 0, 36928, 0, 36928, 650}));
  EXPECT_EQ(p1, (std::vector<int64_t>{320, 0, 18496, 0, 12352, 12352, 0, 36928, 650}));
  EXPECT_EQ(v0.total_params, 93322);
  EXPECT_EQ(v1.total_params, 81098);
  EXPECT_EQ(v0.layers[4].out, (Shape{3, 3, 64}));
  EXPECT_EQ(v1.layers[4].out, (Shape{3, 5, 64}));
  EXPECT_EQ(v0.classes, 10);
  // MACs: conv Hout·Wout·m·kh·kw·c, dense in·out
  EXPECT_EQ(v0.layers[0].macs, 26 * 26 * 32 * 9 * 1);
  EXPECT_EQ(v0.layers[2].macs, 11 * 11 * 64 * 9 * 32);
  EXPECT_EQ(v0.layers[4].macs, 3 * 3 * 64 * 9 * 64);
  EXPECT_EQ(v1.layers[4].macs, 3 * 5 * 64 * 3 * 64);
  EXPECT_EQ(v1.layers[5].macs, 3 * 3 * 64 * 3 * 64);
  EXPECT_EQ(v0.layers[6].macs, 576 * 64);
  EXPECT_EQ(v0.total_macs, 26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 3 * 3 * 64 * 9 * 64 +
                               576 * 64 + 64 * 10);
}

TEST(ModelParams, SlotsAreAlignedAndCoverEveryTensor) {
  Model m = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v1.net"));
  int64_t sum = 0, end = 0;
  for (const auto& s : m.slots) {
    EXPECT_EQ(s.offset % kParamAlign, 0) << s.name;
    EXPECT_GE(s.offset, end) << s.name;
    end = s.offset + s.size;
    sum += s.size;
  }
  EXPECT_EQ(sum, m.total_params);
  EXPECT_LE(end, m.param_floats);
  EXPECT_EQ(m.slots[0].name, "conv1.weight");
  EXPECT_EQ(m.slots[0].shape, (std::vector<int64_t>{32, 1, 3, 3}));
  EXPECT_EQ(m.slots[4].shape, (std::vector<int64_t>{64, 64, 3, 1}));  // conv3: OIHW
}

TEST(ModelInit, GlorotUniformKernelsZeroBiasesSeeded) {
  Model m = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v0.net"));
  auto a = init_parameters(m, 7), b = init_parameters(m, 7), c = init_parameters(m, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (const auto& l : m.layers) {
    if (l.weight < 0) continue;
    const auto& w = m.slots[size_t(l.weight)];
    const auto& bias = m.slots[size_t(l.bias)];
    double k = l.kind() == LayerKind::Conv ? l.spec.kh * l.spec.kw : 1;
    double limit = std::sqrt(6.0 / (k * l.in.c + k * l.out.c));
    double max_abs = 0, sum = 0;
    for (int64_t i = 0; i < w.size; ++i) {
      float v = a[size_t(w.offset + i)];
      max_abs = std::max(max_abs, double(std::abs(v)));
      sum += v;
    }
    EXPECT_LE(max_abs, limit) << l.name();
    EXPECT_GT(max_abs, 0.9 * limit) << l.name();  // the range is used, not a smaller one
    EXPECT_LT(std::abs(sum / double(w.size)), 0.2 * limit) << l.name();  // centred
    for (int64_t i = 0; i < bias.size; ++i) EXPECT_EQ(a[size_t(bias.offset + i)], 0.0f);
  }
}
