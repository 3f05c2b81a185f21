// Analysis of real architectures (docs/design.md, Real architectures): torchvision's networks,
// exported without weights by tests/fixtures/onnx/torchvision/make_graphs.py, have the
// parameter totals torchvision gives, to the unit, and MACs within 1% of the published
// figures; grouped, depthwise and strided convs are analysed as such; faults are refused in
// one line naming the file, exit 2. Built only with the ONNX library (tests/CMakeLists.txt).
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <nlohmann/json.hpp>

#include "../run_cli.h"
#include "proto_util.h"
#include "splitconv/error.h"
#include "splitconv/onnx.h"

namespace fs = std::filesystem;
namespace pb = ONNX_NAMESPACE;
using namespace splitconv;

namespace {

const std::string kGraphs = std::string(SPLITCONV_SOURCE_DIR) + "/tests/fixtures/onnx/torchvision/";

struct Network {
  const char* file;
  int64_t params;        // sum of numel() over torchvision's model.parameters()
  double published_macs;  // torchvision's model table ("GFLOPS", multiply-adds of convs and
                          // linear layers); MobileNetV2: 300 M, its paper's figure
  size_t convs;
};

// Inception-v3 with its auxiliary classifier (aux_logits=True, torchvision's default), as
// torchvision counts its parameters; the published 5.71 G omit the classifier's 5.7 M MACs.
const Network kNetworks[] = {
    {"resnet18.onnx", 11'689'512, 1.81e9, 20},
    {"resnet50.onnx", 25'557'032, 4.09e9, 53},
    {"vgg16.onnx", 138'357'544, 15.47e9, 13},
    {"inception_v3.onnx", 27'161'264, 5.71e9, 96},
    {"mobilenet_v2.onnx", 3'504'872, 0.300e9, 52},
};

const ConvGeometry* find_conv(const GraphAnalysis& g, const std::string& name) {
  for (const auto& c : g.convs)
    if (c.name == name) return &c;
  ADD_FAILURE() << "no conv " << name;
  return nullptr;
}

pb::ModelProto load(const std::string& path) { return splitconv::testing::load_model(path); }

std::string save(const pb::ModelProto& m, const std::string& name) {
  return splitconv::testing::save_model(m, "graph", name);
}

pb::NodeProto* first(pb::ModelProto& m, const std::string& op) { return splitconv::testing::first_node(m, op); }

}  // namespace

TEST(GraphAnalysis, TorchvisionTotalsAreTorchvisionsToTheUnit) {
  for (const Network& n : kNetworks) {
    SCOPED_TRACE(n.file);
    const GraphAnalysis g = analyze_onnx(kGraphs + n.file);
    EXPECT_EQ(g.total_params, n.params);
    EXPECT_LT(std::abs(double(g.total_macs) - n.published_macs) / n.published_macs, 0.01)
        << g.total_macs << " MACs";
    EXPECT_EQ(g.convs.size(), n.convs);
    EXPECT_FALSE(g.has_weights);
    EXPECT_FALSE(g.not_trainable.empty());  // residuals, BatchNormalization, padded pools
  }
}

TEST(GraphAnalysis, LayersOfResNet18) {
  const GraphAnalysis g = analyze_onnx(kGraphs + "resnet18.onnx");
  EXPECT_EQ(g.in_c, 3);
  EXPECT_EQ(g.in_h, 224);
  const ConvGeometry* c1 = find_conv(g, "conv1");
  ASSERT_TRUE(c1);
  EXPECT_EQ(c1->kh, 7);
  EXPECT_EQ(c1->stride_h, 2);
  EXPECT_EQ(c1->pad_top, 3);
  EXPECT_EQ(c1->out_h(), 112);
  EXPECT_FALSE(c1->bias);
  const ConvGeometry* down = find_conv(g, "layer4.0.downsample.0");
  ASSERT_TRUE(down);
  EXPECT_EQ(down->c, 256);
  EXPECT_EQ(down->m, 512);
  EXPECT_EQ(down->in_h, 14);
  EXPECT_EQ(down->out_h(), 7);
  int64_t conv_macs = 0, conv_params = 0;
  for (const auto& l : g.layers) {
    if (l.op == "Conv") conv_macs += l.macs, conv_params += l.params;
    if (l.op == "Gemm") {
      EXPECT_EQ(l.params, 512 * 1000 + 1000);
      EXPECT_EQ(l.macs, 512 * 1000);
    }
  }
  EXPECT_EQ(conv_macs + 512 * 1000, g.total_macs);
  // 20 BatchNormalizations: scale and shift of 4,800 channels.
  EXPECT_EQ(conv_params + 513'000 + 2 * 4'800, g.total_params);
}

// MobileNetV2's depthwise convs are split per group (c = m = 1 per group), the strided one
// into 3×1 stride (2, 1) and 1×3 stride (1, 2).
TEST(GraphAnalysis, DepthwiseAndStridedConvsOfMobileNetV2) {
  const GraphAnalysis g = analyze_onnx(kGraphs + "mobilenet_v2.onnx");
  const ConvGeometry* dw = find_conv(g, "features.1.conv.0.0");
  ASSERT_TRUE(dw);
  EXPECT_EQ(dw->groups, 32);
  const SplitAnalysis a = analyze_conv_split(*dw);
  EXPECT_EQ(a.params_before, 32 * 9);
  EXPECT_EQ(a.params_after, 32 * 3 + 32 * 3);
  EXPECT_EQ(a.macs_before, 112 * 112 * 32 * 9);
  EXPECT_EQ(a.macs_after, 112 * 112 * 32 * 3 * 2);
  EXPECT_TRUE(a.exact_rule);
  EXPECT_TRUE(a.thumb_rule);
  const ConvGeometry* strided = find_conv(g, "features.2.conv.1.0");
  ASSERT_TRUE(strided);
  EXPECT_EQ(strided->groups, 96);
  EXPECT_EQ(strided->stride_w, 2);
  EXPECT_EQ(strided->out_h(), 56);
  const SplitAnalysis s = analyze_conv_split(*strided);
  ASSERT_TRUE(s.splittable);
  EXPECT_EQ(s.params_after, 96 * 3 + 96 * 3);
  // 3×1 stride (2, 1): 56×112; 1×3 stride (1, 2): 56×56 — the same MACs as the 3×3.
  EXPECT_EQ(s.macs_after, 56 * 112 * 96 * 3 + 56 * 56 * 96 * 3);
  EXPECT_EQ(s.macs_after, s.macs_before);
  EXPECT_FALSE(s.macs_rule);
}

// Inception-v3's own 1×7 / 7×1 convs are already split; its padded average pools (Pad, then
// AveragePool) and Concats keep the shapes.
TEST(GraphAnalysis, InceptionV3sFactorizedConvs) {
  const GraphAnalysis g = analyze_onnx(kGraphs + "inception_v3.onnx");
  const ConvGeometry* c17 = find_conv(g, "Mixed_6b.branch7x7_2.conv");
  ASSERT_TRUE(c17);
  EXPECT_EQ(c17->kh, 1);
  EXPECT_EQ(c17->kw, 7);
  EXPECT_EQ(c17->in_h, 17);
  EXPECT_EQ(c17->out_w(), 17);
  EXPECT_FALSE(analyze_conv_split(*c17).splittable);
  const ConvGeometry* pool_proj = find_conv(g, "Mixed_5b.branch_pool.conv");
  ASSERT_TRUE(pool_proj);
  EXPECT_EQ(pool_proj->in_h, 35);
  EXPECT_EQ(pool_proj->c, 192);
}

TEST(GraphAnalysis, FaultsAreRefusedInOneLineNamingTheFile) {
  struct Fault {
    const char* name;
    std::function<void(pb::ModelProto&)> edit;
    const char* says;
  };
  const Fault faults[] = {
      {"unknown-op", [](pb::ModelProto& m) { first(m, "MaxPool")->set_op_type("Resize"); },
       "(Resize): not analysed"},
      {"bad-group",
       [](pb::ModelProto& m) {
         for (auto& a : *first(m, "Conv")->mutable_attribute())
           if (a.name() == "group") a.set_i(5);  // conv1: 3 channels, 64 filters
       },
       "group 5 does not divide"},
      {"lying-weight",
       [](pb::ModelProto& m) {
         for (auto& in : *m.mutable_graph()->mutable_input())
           if (in.name() == "conv1.weight")
             in.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1)->set_dim_value(4);
       },
       "reads 4 channels per group but its input has 3"},
      {"no-image-size",
       [](pb::ModelProto& m) {
         m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()
             ->mutable_dim(2)->set_dim_param("H");
       },
       "has no fixed height"},
      {"repeated-axes",
       [](pb::ModelProto& m) {
         pb::NodeProto* n = first(m, "Flatten");
         n->set_op_type("Unsqueeze");
         n->clear_attribute();
         auto* a = n->add_attribute();
         a->set_name("axes");
         a->set_type(pb::AttributeProto::INTS);
         a->add_ints(1);
         a->add_ints(1);
       },
       "axes [1,1] repeat an axis"},
      {"unknown-input",
       [](pb::ModelProto& m) { first(m, "Gemm")->set_input(0, "nowhere"); },
       "reads nowhere, which no earlier node produces"},
      {"mismatched-add",
       [](pb::ModelProto& m) {
         auto* add = first(m, "Add");
         add->set_input(1, m.graph().input(0).name());  // the 224x224 image onto a 56x56 map
       },
       "do not broadcast"},
  };
  for (const Fault& f : faults) {
    SCOPED_TRACE(f.name);
    pb::ModelProto m = load(kGraphs + "resnet18.onnx");
    f.edit(m);
    const std::string path = save(m, std::string(f.name) + ".onnx");
    try {
      analyze_onnx(path);
      ADD_FAILURE() << "accepted";
    } catch (const InputError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
      EXPECT_NE(msg.find(f.says), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    // The command line: one line on stderr, exit 2, nothing on stdout.
    const auto r = splitconv::testing::run_cli("analyze " + path);
    EXPECT_EQ(r.code, 2);
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_NE(r.err.find(path), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
    fs::remove(path);
  }
  // Bytes that are no model: a truncated graph.
  std::ifstream in(kGraphs + "vgg16.onnx", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const std::string cut = (fs::temp_directory_path() / ("splitconv-graph-cut-" + std::to_string(getpid()) + ".onnx")).string();
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  const auto r = splitconv::testing::run_cli("analyze " + cut);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(cut + ": not an ONNX model"), std::string::npos) << r.err;
  fs::remove(cut);
}

TEST(GraphAnalysisCli, AnalyzeAndFactorizeReportOnAGraph) {
  const fs::path dir = fs::temp_directory_path() / ("splitconv-graph-cli-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string json = (dir / "r18.json").string();
  auto r = splitconv::testing::run_cli("analyze " + kGraphs + "resnet18.onnx --json " + json);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("11,689,512"), std::string::npos);
  EXPECT_NE(r.out.find("analysed only, not trainable here"), std::string::npos);
  nlohmann::json j = nlohmann::json::parse(std::ifstream(json));
  EXPECT_EQ(j["total_params"], 11'689'512);
  EXPECT_EQ(j["trainable"], false);
  EXPECT_EQ(j["split"].size(), 20u);
  // The exact rule splits the 13 stride-1 3×3 convs: each 9·c·m weights become 3·c·m + 3·m·m.
  EXPECT_EQ(j["rules"]["exact"]["split"], 13);
  int64_t saved = 0;
  for (const auto& s : j["split"])
    if (s["exact_rule"] == true) {
      EXPECT_EQ(s["stride"], nlohmann::json({1, 1}));
      saved += s["params_before"].get<int64_t>() - s["params_after"].get<int64_t>();
    }
  EXPECT_EQ(j["rules"]["exact"]["params_after"], 11'689'512 - saved);

  const std::string fjson = (dir / "f.json").string();
  r = splitconv::testing::run_cli("factorize " + kGraphs + "resnet18.onnx --rule exact --json " + fjson);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("factorize --rule exact would split 13 conv(s): layer1.0.conv1"),
            std::string::npos) << r.out;
  nlohmann::json f = nlohmann::json::parse(std::ifstream(fjson));
  EXPECT_EQ(f["factorize"]["layers"].size(), 13u);
  // A graph is reported on, not rewritten.
  r = splitconv::testing::run_cli("factorize " + kGraphs + "resnet18.onnx -o " + (dir / "x.net").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(dir / "x.net"));
  // The measured rule times the convs the benchmark runs, each checked against the CPU
  // reference first; a strided conv is listed as not timed.
  const std::string mjson = (dir / "m.json").string();
  r = splitconv::testing::run_cli("analyze " + std::string(SPLITCONV_SOURCE_DIR) +
                                  "/tests/fixtures/onnx/bad-residual.onnx --rule measured "
                                  "--device cpu --batch 2 --runs 1 --json " + mjson);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("measured rule on CPU"), std::string::npos) << r.out;
  nlohmann::json m = nlohmann::json::parse(std::ifstream(mjson));
  int timed = 0;
  for (const auto& s : m["split"])
    if (s.contains("nxn_ms")) {
      ++timed;
      EXPECT_GT(s["nxn_ms"].get<double>(), 0);
      EXPECT_GT(s["pair_ms"].get<double>(), 0);
      EXPECT_EQ(s["measured_rule"].get<bool>(),
                s["exact_rule"].get<bool>() && s["pair_ms"].get<double>() < s["nxn_ms"].get<double>());
    }
  EXPECT_EQ(m["measured"]["timed_convs"], timed);
  EXPECT_GT(timed, 0);
  // MobileNetV2's splittable convs are depthwise or strided: none is timed, each says why.
  r = splitconv::testing::run_cli("analyze " + kGraphs + "mobilenet_v2.onnx --rule measured "
                                  "--device cpu --batch 1 --runs 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("features.0.0                 3x3    3 -> 32       224x224   (not timed: stride 2x2)"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(not timed: groups 32)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("splits 0 of the 0 timed convs"), std::string::npos) << r.out;
  // A sequential graph the engines train says so; a residual one is analysed only.
  r = splitconv::testing::run_cli("analyze " + std::string(SPLITCONV_SOURCE_DIR) + "/tests/fixtures/onnx/seed-v0.onnx");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("splitconv import takes it"), std::string::npos) << r.out;
  r = splitconv::testing::run_cli("analyze " + std::string(SPLITCONV_SOURCE_DIR) + "/tests/fixtures/onnx/bad-residual.onnx");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("analysed only, not trainable here: node /Add (Add): adds two activations"),
            std::string::npos) << r.out;
  fs::remove_all(dir);
}

// Graphs edited at random — attributes, weight shapes, inputs rewired, ops renamed — are
// analysed or refused with InputError, never anything else (with the sanitizers in CI, no
// overflow or bad access either).
TEST(GraphAnalysis, RandomlyEditedGraphsAreAnalysedOrRefused) {
  std::mt19937_64 rng(18);
  auto pick = [&](size_t n) { return size_t(rng() % n); };
  const int64_t values[] = {-7, -1, 0, 1, 2, 3, 5, 64, 1000001, int64_t(1) << 31,
                            int64_t(1) << 40, INT64_MAX};
  const char* ops[] = {"Conv", "Add", "Mul", "Concat", "Reshape", "Flatten", "Gemm", "MatMul",
                       "MaxPool", "AveragePool", "Pad", "Split", "Squeeze", "Unsqueeze",
                       "Transpose", "ReduceMean", "BatchNormalization", "Gather", "Shape"};
  int refused = 0, analysed = 0;
  for (int round = 0; round < 300; ++round) {
    pb::ModelProto m = load(kGraphs + (round % 2 ? "mobilenet_v2.onnx" : "resnet18.onnx"));
    pb::GraphProto* g = m.mutable_graph();
    std::vector<std::string> names;
    for (const auto& n : g->node())
      for (const auto& o : n.output()) names.push_back(o);
    for (int edit = 0, edits = 1 + int(pick(3)); edit < edits; ++edit) {
      pb::NodeProto* n = g->mutable_node(int(pick(size_t(g->node_size()))));
      switch (pick(4)) {
        case 0:  // an integer attribute, or one entry of a list
          for (auto& a : *n->mutable_attribute()) {
            if (a.type() == pb::AttributeProto::INT) a.set_i(values[pick(std::size(values))]);
            if (a.type() == pb::AttributeProto::INTS && a.ints_size() > 0)
              a.set_ints(int(pick(size_t(a.ints_size()))), values[pick(std::size(values))]);
          }
          break;
        case 1: {  // a dimension of a weight input
          auto* in = g->mutable_input(int(pick(size_t(g->input_size()))));
          auto* shape = in->mutable_type()->mutable_tensor_type()->mutable_shape();
          if (shape->dim_size() > 0)
            shape->mutable_dim(int(pick(size_t(shape->dim_size()))))
                ->set_dim_value(values[pick(std::size(values))]);
          break;
        }
        case 2:  // an input rewired to another node's output
          if (n->input_size() > 0) n->set_input(int(pick(size_t(n->input_size()))), names[pick(names.size())]);
          break;
        default:
          n->set_op_type(ops[pick(std::size(ops))]);
      }
    }
    const std::string path = save(m, "random.onnx");
    try {
      analyze_onnx(path);
      ++analysed;
    } catch (const InputError& e) {
      ++refused;
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "round " << round << ": not an InputError: " << e.what();
    }
    fs::remove(path);
  }
  EXPECT_GT(refused, 100);  // most edits break the graph...
  EXPECT_GT(analysed, 0);   // ...some leave it readable (an unused attribute, a same-shape input)
}

// auto_pad and ceil_mode: ResNet-18's 7×7 stride-2 conv1 and its 3×3 stride-2 max pool edited.
TEST(GraphAnalysis, AutoPadAndCeilMode) {
  for (const char* mode : {"SAME_UPPER", "SAME_LOWER", "VALID"}) {
    SCOPED_TRACE(mode);
    pb::ModelProto m = load(kGraphs + "resnet18.onnx");
    pb::NodeProto* conv = first(m, "Conv");
    pb::NodeProto* pool = first(m, "MaxPool");
    for (pb::NodeProto* n : {conv, pool}) {
      auto* attrs = n->mutable_attribute();
      for (int i = attrs->size() - 1; i >= 0; --i)
        if (attrs->Get(i).name() == "pads") attrs->DeleteSubrange(i, 1);
      auto* a = n->add_attribute();
      a->set_name("auto_pad");
      a->set_type(pb::AttributeProto::STRING);
      a->set_s(mode);
    }
    if (std::string(mode) == "VALID") {  // and a 2×2 pool that rounds up: 109 − 2 is odd
      for (auto& a : *pool->mutable_attribute()) {
        if (a.name() == "kernel_shape") a.set_ints(0, 2), a.set_ints(1, 2);
        if (a.name() == "ceil_mode") a.set_i(1);  // PyTorch writes ceil_mode 0
      }
    }
    const std::string path = save(m, std::string(mode) + ".onnx");
    const GraphAnalysis g = analyze_onnx(path);
    fs::remove(path);
    const ConvGeometry* c1 = find_conv(g, "conv1");
    const ConvGeometry* next = find_conv(g, "layer1.0.conv1");
    ASSERT_TRUE(c1 && next);
    if (std::string(mode) == "VALID") {
      EXPECT_EQ(c1->pad_top + c1->pad_bottom, 0);
      EXPECT_EQ(c1->out_h(), (224 - 7) / 2 + 1);  // 109
      EXPECT_EQ(next->in_h, 55);                   // ceil((109 − 2)/2) + 1; floor gives 54
      EXPECT_EQ(next->in_w, 55);
    } else {
      // ceil(224/2) = 112: 5 rows of padding, the odd one at the end (UPPER) or start (LOWER).
      const bool upper = std::string(mode) == "SAME_UPPER";
      EXPECT_EQ(c1->out_h(), 112);
      EXPECT_EQ(c1->pad_top, upper ? 2 : 3);
      EXPECT_EQ(c1->pad_bottom, upper ? 3 : 2);
      EXPECT_EQ(next->in_h, 56);  // the pool, SAME too: ceil(112/2)
    }
  }
}
