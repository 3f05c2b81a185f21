// The SVD split of a trained conv (svd_split.h): exact at full rank (layer and whole model),
// error monotone in K and equal to the dropped singular values, odd shapes and padding,
// bad input refused with nothing written (library and command line).
#include "splitconv/svd_split.h"

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
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cpu/cpu_ops.h"
#include "splitconv/backend.h"
#include "splitconv/checkpoint.h"
#include "splitconv/error.h"
#include "splitconv/random.h"
#include "splitconv/tensor.h"

namespace splitconv {
namespace {

namespace fs = std::filesystem;
using Floats = std::vector<float>;

// Glorot kernels and random (not zero) biases, so that the bias handling is tested too.
Floats random_params(const Model& model, uint64_t seed) {
  Floats p = init_parameters(model, seed);
  Rng rng(seed + 1000);
  for (const auto& l : model.layers)
    if (l.bias >= 0) {
      const ParamSlot& s = model.slots[size_t(l.bias)];
      for (int64_t i = 0; i < s.size; ++i) p[size_t(s.offset + i)] = rng.uniform(-0.2f, 0.2f);
    }
  return p;
}

Floats random_floats(Rng& rng, int64_t n) {
  Floats v(static_cast<size_t>(n));
  for (auto& x : v) x = rng.uniform(-1.0f, 1.0f);
  return v;
}

const Layer& layer_named(const Model& m, const std::string& name) {
  for (const auto& l : m.layers)
    if (l.name() == name) return l;
  throw std::runtime_error("no layer " + name);
}

const ParamSlot& slot_named(const Model& m, const std::string& name) {
  for (const auto& s : m.slots)
    if (s.name == name) return s;
  throw std::runtime_error("no tensor " + name);
}

// One conv layer (no activation) with the CPU reference op.
Floats conv(const Model& m, const Layer& l, int batch, const Floats& x, const Floats& params) {
  ConvGeom g = conv_geom(l, batch);
  EXPECT_EQ(int64_t(x.size()), g.x_size()) << l.name();
  Floats y(size_t(g.y_size())), ws(size_t(std::max<int64_t>(1, cpu::conv_workspace(g))));
  cpu::conv_forward(g, x.data(), params.data() + m.slots[size_t(l.weight)].offset,
                    params.data() + m.slots[size_t(l.bias)].offset, y.data(), ws.data());
  return y;
}

double rel_diff(const Floats& a, const Floats& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(a[i]) * a[i];
  }
  return std::sqrt(num / den);
}

Model model_from(const std::string& text) { return build_model(parse_spec(text, "test.net")); }

SvdSplitOptions split_opts(const std::string& layer, int rank, bool mid_relu = false) {
  SvdSplitOptions o;
  o.layers = {layer};
  o.rank = rank;
  o.mid_relu = mid_relu;
  return o;
}

// A layer split at full rank with nothing between the pair computes the original conv.
struct LayerCase {
  const char* spec;
  int rows, cols;  // c·n1, n2·m
};

class SvdSplitLayer : public ::testing::TestWithParam<LayerCase> {};

TEST_P(SvdSplitLayer, FullRankEqualsTheOriginalConv) {
  const LayerCase& tc = GetParam();
  Model m = model_from(tc.spec);
  const Layer& orig = layer_named(m, "conv1");
  const int full = std::min(tc.rows, tc.cols);
  Floats params = random_params(m, 11);
  SvdSplitResult r = svd_split(m, params, split_opts("conv1", full));
  ASSERT_EQ(r.layers.size(), 1u);
  EXPECT_EQ(r.layers[0].max_rank, full);
  EXPECT_EQ(r.layers[0].rank, full);
  EXPECT_EQ(int(r.layers[0].singular_values.size()), full);
  EXPECT_LT(r.layers[0].error, 1e-6);
  EXPECT_EQ(r.layers[0].error_sigma, 0.0);

  const Layer& v = layer_named(r.model, "conv1_v");
  const Layer& h = layer_named(r.model, "conv1_h");
  EXPECT_EQ(slot_named(r.model, "conv1_v.weight").shape,
            (std::vector<int64_t>{full, orig.in.c, orig.spec.kh, 1}));
  EXPECT_EQ(slot_named(r.model, "conv1_h.weight").shape,
            (std::vector<int64_t>{orig.out.c, full, 1, orig.spec.kw}));
  EXPECT_EQ(v.spec.activation, Activation::None);
  EXPECT_EQ(h.spec.activation, orig.spec.activation);
  EXPECT_EQ(h.out, orig.out);
  EXPECT_EQ(v.out.w, orig.in.w) << "the n×1 layer must not touch the width";
  EXPECT_EQ(v.out.h, orig.out.h) << "the n×1 layer does all of the height";

  // Biases: vertical 0, horizontal the original's.
  const ParamSlot& vb = slot_named(r.model, "conv1_v.bias");
  for (int64_t i = 0; i < vb.size; ++i) EXPECT_EQ(r.params[size_t(vb.offset + i)], 0.0f);
  const ParamSlot& hb = slot_named(r.model, "conv1_h.bias");
  const ParamSlot& ob = slot_named(m, "conv1.bias");
  for (int64_t i = 0; i < hb.size; ++i)
    EXPECT_EQ(r.params[size_t(hb.offset + i)], params[size_t(ob.offset + i)]);

  Rng rng(5);
  const int batch = 3;
  Floats x = random_floats(rng, batch * orig.in.size());
  Floats y0 = conv(m, orig, batch, x, params);
  Floats y1 = conv(r.model, h, batch, conv(r.model, v, batch, x, r.params), r.params);
  ASSERT_EQ(y0.size(), y1.size());
  EXPECT_LE(rel_diff(y0, y1), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, SvdSplitLayer,
    ::testing::Values(
        // square, valid, c != m
        LayerCase{"input 9x10x4\nconv 6 3x3 relu\nflatten\ndense 3 softmax\n", 12, 18},
        // 5×3 with same padding, c < m (rows limit the rank)
        LayerCase{"input 12x11x3\nconv 7 5x3 relu padding=same\nflatten\ndense 3 softmax\n", 15, 21},
        // 3×5 valid, c > m (columns limit the rank)
        LayerCase{"input 10x13x5\nconv 2 3x5 none\nflatten\ndense 3 softmax\n", 15, 10},
        // 4×4 with same padding: even kernels pad unevenly (more at the bottom/right)
        LayerCase{"input 9x8x2\nconv 5 4x4 relu padding=same\nflatten\ndense 3 softmax\n", 8, 20}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

// The whole model: predictions unchanged, every other tensor copied.
void expect_same_predictions(const Model& a, const Floats& pa, const Model& b, const Floats& pb) {
  Rng rng(9);
  ImageSet images;
  images.count = 17;
  images.h = a.input.h, images.w = a.input.w, images.c = a.input.c;
  images.pixels.resize(size_t(images.count * images.image_size()));
  for (auto& p : images.pixels) p = uint8_t(rng.below(256));
  auto run = [&](const Model& m, const Floats& p) {
    auto backend = make_backend("cpu", {});
    backend->plan(m, 8);
    backend->set_parameters(p);
    Floats probs(size_t(images.count * m.classes));
    backend->predict(images, probs);
    return probs;
  };
  Floats qa = run(a, pa), qb = run(b, pb);
  ASSERT_EQ(qa.size(), qb.size());
  for (int64_t i = 0; i < images.count; ++i) {
    const float* x = qa.data() + i * a.classes;
    const float* y = qb.data() + i * a.classes;
    EXPECT_EQ(std::max_element(x, x + a.classes) - x, std::max_element(y, y + a.classes) - y)
        << "image " << i;
    for (int k = 0; k < a.classes; ++k) EXPECT_NEAR(x[k], y[k], 1e-5) << "image " << i << " class " << k;
  }
}

void expect_copied(const Model& a, const Floats& pa, const Model& b, const Floats& pb,
                   const std::string& split) {
  for (const auto& s : a.slots) {
    if (s.name.rfind(split + ".", 0) == 0) continue;
    const ParamSlot& t = slot_named(b, s.name);
    ASSERT_EQ(t.shape, s.shape) << s.name;
    for (int64_t i = 0; i < s.size; ++i)
      ASSERT_EQ(pb[size_t(t.offset + i)], pa[size_t(s.offset + i)]) << s.name << "[" << i << "]";
  }
}

TEST(SvdSplitModel, SeedV0FullRankPredictsTheSame) {
  Model m = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v0.net"));
  Floats params = random_params(m, 3);
  SvdSplitResult r = svd_split(m, params, split_opts("conv3", 192));
  EXPECT_EQ(r.layers[0].max_rank, 192);
  expect_copied(m, params, r.model, r.params, "conv3");
  expect_same_predictions(m, params, r.model, r.params);
}

TEST(SvdSplitModel, SamePaddingNonSquareFullRankPredictsTheSame) {
  Model m = model_from(
      "input 16x14x2\nconv 8 3x3 relu padding=same\nconv 12 5x3 relu padding=same\n"
      "maxpool 2x2\nflatten\ndense 10 softmax\n");
  Floats params = random_params(m, 4);
  SvdSplitResult r = svd_split(m, params, split_opts("conv2", 36));  // min(8·5, 3·12)
  expect_copied(m, params, r.model, r.params, "conv2");
  expect_same_predictions(m, params, r.model, r.params);
}

TEST(SvdSplitModel, WithoutLayersTheExactRuleChooses) {
  Model v0 = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v0.net"));
  Model v1 = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v1.net"));
  Floats params = random_params(v0, 5);
  SvdSplitResult r = svd_split(v0, params, {});
  ASSERT_EQ(r.layers.size(), 1u);
  EXPECT_EQ(r.layers[0].layer, "conv3");
  EXPECT_EQ(r.layers[0].rank, 64);
  EXPECT_EQ(r.layers[0].params_before, 36928);
  EXPECT_EQ(r.layers[0].params_after, 24704);
  // K = m with ReLU between is seed-v1 (but for the names of the pair).
  ASSERT_EQ(r.model.slots.size(), v1.slots.size());
  for (size_t i = 0; i < v1.slots.size(); ++i) EXPECT_EQ(r.model.slots[i].shape, v1.slots[i].shape);
  for (size_t i = 0; i < v1.layers.size(); ++i)
    EXPECT_EQ(r.model.layers[i].spec.activation, v1.layers[i].spec.activation);
  EXPECT_EQ(r.model.total_params, 81098);

  // At a smaller K the rule still picks conv3 alone: conv1 (c = 1) has rank 3 and never pays.
  SvdSplitOptions o;
  o.rank = 3;
  r = svd_split(v0, params, o);
  std::vector<std::string> names;
  for (const auto& l : r.layers) names.push_back(l.layer);
  EXPECT_EQ(names, (std::vector<std::string>{"conv2", "conv3"}));
}

TEST(SvdSplitError, ShrinksWithRankAndMatchesDroppedSigma) {
  Model m = model_from("input 12x11x3\nconv 7 5x3 relu padding=same\nflatten\ndense 3 softmax\n");
  Floats params = random_params(m, 12);
  double prev = 2;
  std::vector<double> sigma;
  for (int K = 1; K <= 15; ++K) {
    SvdSplitResult r = svd_split(m, params, split_opts("conv1", K));
    const SvdLayerReport& l = r.layers[0];
    if (sigma.empty()) sigma = l.singular_values;
    EXPECT_EQ(l.singular_values, sigma) << "K " << K;
    EXPECT_LE(l.error, prev + 1e-7) << "K " << K;
    double dropped = 0, total = 0;
    for (size_t k = 0; k < sigma.size(); ++k) {
      total += sigma[k] * sigma[k];
      if (int(k) >= K) dropped += sigma[k] * sigma[k];
    }
    EXPECT_NEAR(l.error_sigma, std::sqrt(dropped / total), 1e-9) << "K " << K;
    EXPECT_NEAR(l.error, l.error_sigma, 1e-6) << "K " << K;
    EXPECT_NEAR(l.energy, 1 - dropped / total, 1e-12) << "K " << K;
    EXPECT_EQ(l.params_after, int64_t(K) * (5 * 3 + 1) + 7 * (3 * K + 1));
    prev = l.error;
  }
  EXPECT_LT(prev, 1e-6);
  for (size_t k = 1; k < sigma.size(); ++k) EXPECT_GE(sigma[k - 1], sigma[k]);
}

TEST(SvdSplitError, EnergyPicksTheSmallestRank) {
  Model m = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v0.net"));
  Floats params = random_params(m, 6);
  for (double f : {0.05, 0.5, 0.9, 0.99, 1.0}) {
    SvdSplitOptions o;
    o.layers = {"conv3"};
    o.energy = f;
    SvdSplitResult r = svd_split(m, params, o);
    const SvdLayerReport& l = r.layers[0];
    EXPECT_GE(l.energy, f - 1e-12) << f;
    double below = 0, total = 0;
    for (size_t k = 0; k < l.singular_values.size(); ++k) {
      total += l.singular_values[k] * l.singular_values[k];
      if (int(k) < l.rank - 1) below += l.singular_values[k] * l.singular_values[k];
    }
    EXPECT_LT(below / total, f) << "K " << l.rank << " is not the smallest for " << f;
    EXPECT_EQ(layer_named(r.model, "conv3_v").out.c, l.rank);
  }
}

TEST(SvdSplitError, BadInputIsAnInputError) {
  Model m = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v0.net"));
  Floats params = random_params(m, 7);
  EXPECT_THROW(svd_split(m, params, split_opts("conv9", 8)), InputError);
  EXPECT_THROW(svd_split(m, params, split_opts("dense1", 8)), InputError);
  EXPECT_THROW(svd_split(m, params, split_opts("conv3", 193)), InputError);
  EXPECT_NO_THROW(svd_split(m, params, split_opts("conv3", 192)));
  EXPECT_THROW(svd_split(m, params, split_opts("conv1", 4)), InputError);  // c·n1 = 3
  try {
    svd_split(m, params, split_opts("conv3", 500));
    FAIL() << "no InputError for rank 500";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("out of range 1..192"), std::string::npos) << e.what();
  }
  SvdSplitOptions o = split_opts("conv3", 0);
  o.energy = 1.5;
  EXPECT_THROW(svd_split(m, params, o), InputError);
  o.energy = -0.1;
  EXPECT_THROW(svd_split(m, params, o), InputError);
  o = split_opts("conv3", 8);
  o.energy = 0.5;
  EXPECT_THROW(svd_split(m, params, o), InputError);
  Floats short_params(params.begin(), params.end() - 64);
  EXPECT_THROW(svd_split(m, short_params, split_opts("conv3", 8)), InputError);
  // A pair whose names already exist.
  Model clash = model_from("input 10x10x2\nconv 4 3x3 relu\nconv 4 1x1 relu name=conv1_v\n"
                           "flatten\ndense 3 softmax\n");
  EXPECT_THROW(svd_split(clash, random_params(clash, 1), split_opts("conv1", 4)), InputError);
}

// --- the command line ---

using Result = splitconv::testing::CliResult;

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("splitconv-svd-" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir / name;
}

Result run(const std::string& args) { return splitconv::testing::run_cli(args); }

const std::string src = SPLITCONV_SOURCE_DIR;

// A seed-v0 checkpoint with random weights.
fs::path v0_checkpoint() {
  fs::path path = scratch("v0.safetensors");
  Model m = build_model(load_spec(src + "/models/seed-v0.net"));
  Checkpoint ck;
  ck.spec_text = format_spec(m.spec);
  ck.state.params = random_params(m, 8);
  ck.dataset = "mnist";
  save_checkpoint(path.string(), m, ck);
  return path;
}

TEST(SvdSplitCli, WritesACheckpointOfTheSplitModel) {
  fs::path ck = v0_checkpoint(), out = scratch("split.safetensors"), json = scratch("split.json");
  fs::remove(out);
  Result r = run("factorize " + src + "/models/seed-v0.net --checkpoint " + ck.string() +
                 " --layers conv3 --rank 32 --mid none -o " + out.string() + " --json " + json.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("32 / 192"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("36,928 -> 12,384"), std::string::npos) << r.out;
  Checkpoint split = load_checkpoint(out.string());
  Model sm = model_of(split, out.string());
  EXPECT_EQ(layer_named(sm, "conv3_v").out.c, 32);
  EXPECT_EQ(layer_named(sm, "conv3_v").spec.activation, Activation::None);
  EXPECT_TRUE(split.state.m.empty()) << "weights only";
  EXPECT_EQ(split.dataset, "mnist");
  std::ifstream in(json);
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["layers"][0]["rank"], 32);
  EXPECT_NEAR(j["layers"][0]["error"].get<double>(), j["layers"][0]["error_sigma"].get<double>(), 1e-6);

  // MODEL is optional; without --layers the exact rule picks conv3 (at K = m = 64 by default).
  r = run("factorize --checkpoint " + ck.string() + " --energy 0.5 -o " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("conv3"), std::string::npos) << r.out;
  EXPECT_NO_THROW(model_of(load_checkpoint(out.string()), out.string()));
}

TEST(SvdSplitCli, BadInputIsOneLineExitTwoAndNothingWritten) {
  fs::path ck = v0_checkpoint(), out = scratch("bad.safetensors");
  const std::string base = "factorize --checkpoint " + ck.string() + " -o " + out.string() + " ";
  for (const std::string& args :
       {src + "/models/seed-v1.net " + base + "--layers conv3",  // spec mismatch
        base + "--layers conv9",                                 // unknown layer
        base + "--layers dense1",                                // not a conv
        base + "--layers conv3 --rank 193",                      // rank out of range
        base + "--layers conv3 --rank 0",
        base + "--layers conv1 --rank 4",
        base + "--energy 1.5",
        base + "--energy 0.5 --rank 3",
        base + "--mid sigmoid",
        "factorize " + src + "/models/seed-v0.net --energy 0.5 -o " + out.string()}) {
    fs::remove(out);
    Result r = run(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << "\n" << r.err;
    EXPECT_FALSE(fs::exists(out)) << args;
    EXPECT_FALSE(fs::exists(out.string() + ".tmp")) << args;
  }
}

}  // namespace
}  // namespace splitconv
