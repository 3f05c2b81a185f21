// ONNX import and export through the command line (docs/design.md, ONNX import and export):
// the fixtures of tests/fixtures/onnx (made by make_fixtures.py with PyTorch) import to specs
// and checkpoints whose predictions equal PyTorch's; every command takes them; export and
// import give back the checkpoint bit for bit; bad files are refused in one line, exit 2.
#include "splitconv/onnx.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "run_cli.h"
#include "splitconv/checkpoint.h"
#include "splitconv/data.h"

namespace fs = std::filesystem;

namespace {

using splitconv::testing::CliResult;

const std::string kFixtures = std::string(SPLITCONV_SOURCE_DIR) + "/tests/fixtures/onnx/";
const std::string kImages = kFixtures + "images.idx3-ubyte.gz";

CliResult run(const std::string& args) { return splitconv::testing::run_cli(args); }

int lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

// IDX float32 (type 0x0D), big-endian: what make_fixtures.py writes PyTorch's outputs as.
std::vector<float> read_idx_floats(const std::string& path, std::vector<uint32_t>* dims) {
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> b((std::istreambuf_iterator<char>(in)), {});
  auto be32 = [&](size_t at) {
    return uint32_t(b.at(at)) << 24 | uint32_t(b.at(at + 1)) << 16 | uint32_t(b.at(at + 2)) << 8 |
           uint32_t(b.at(at + 3));
  };
  const uint32_t magic = be32(0);
  EXPECT_EQ(magic >> 8, 0x0Du) << path;
  size_t count = 1, at = 4;
  for (uint32_t i = 0; i < (magic & 0xFF); ++i, at += 4) {
    dims->push_back(be32(at));
    count *= dims->back();
  }
  EXPECT_EQ(b.size(), at + 4 * count) << path;
  std::vector<float> out(count);
  for (size_t i = 0; i < count; ++i) {
    const uint32_t u = be32(at + 4 * i);
    std::memcpy(&out[i], &u, 4);
  }
  return out;
}

class Onnx : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!splitconv::onnx_available())
      GTEST_SKIP() << "this build has no ONNX library (libonnx-dev; tools/setup.sh installs it)";
    std::string tmpl = (fs::temp_directory_path() / "splitconv-onnx-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  std::string at(const std::string& name) const { return dir_ + "/" + name; }

  // import FIXTURE.onnx -o NAME.net --weights NAME.safetensors
  CliResult import(const std::string& fixture, const std::string& name) {
    return run("import " + kFixtures + fixture + ".onnx -o " + at(name + ".net") + " --weights " +
               at(name + ".safetensors"));
  }
  std::vector<float> predict(const std::string& ck) {
    const std::string json = at("predict.json");
    CliResult r = run("predict " + ck + " --images " + kImages + " --device cpu --json " + json);
    EXPECT_EQ(r.code, 0) << r.err;
    std::ifstream in(json);
    const nlohmann::json report = nlohmann::json::parse(in);
    std::vector<float> out;
    for (const auto& p : report["predictions"])
      for (float v : p["probabilities"]) out.push_back(v);
    return out;
  }
  std::string spec_of(const std::string& net) {
    return splitconv::format_spec(splitconv::load_spec(net));
  }

  std::string dir_;
};

TEST_F(Onnx, ImportedFixturesPredictPyTorchsProbabilities) {
  for (const std::string name : {"seed-v0", "seed-v1", "strided", "logits"}) {
    SCOPED_TRACE(name);
    CliResult r = import(name, name);
    ASSERT_EQ(r.code, 0) << r.err;
    std::vector<uint32_t> dims;
    const std::vector<float> want = read_idx_floats(kFixtures + name + ".probs.idx", &dims);
    ASSERT_EQ(dims, (std::vector<uint32_t>{256, 10}));
    const std::vector<float> got = predict(at(name + ".safetensors"));
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    for (size_t i = 0; i < got.size(); ++i)
      worst = std::max(worst, double(std::abs(got[i] - want[i])));
    EXPECT_LE(worst, 1e-5) << "largest difference from PyTorch's probabilities";
  }
  // The seed models come back as the specs in models/.
  const std::string models = std::string(SPLITCONV_SOURCE_DIR) + "/models/";
  EXPECT_EQ(spec_of(at("seed-v0.net")), spec_of(models + "seed-v0.net"));
  EXPECT_EQ(spec_of(at("seed-v1.net")), spec_of(models + "seed-v1.net"));
  EXPECT_EQ(spec_of(at("strided.net")),
            "input 28x28x1\n"
            "conv 8 5x3 relu padding=same\n"
            "conv 16 3x3 relu stride=2\n"
            "conv 16 3x3 relu stride=2 padding=same\n"
            "maxpool 3x3 stride=2\n"
            "flatten\n"
            "dense 10 softmax\n");
  // Relu after a pool moves onto the conv; x.view(x.size(0), -1) is the flatten; MatMul + Add
  // is a dense layer; the logits become the softmax layer.
  EXPECT_EQ(spec_of(at("logits.net")),
            "input 28x28x1\n"
            "conv 16 3x3 relu\n"
            "maxpool 2x2\n"
            "conv 24 3x3 relu padding=same\n"
            "maxpool 2x2\n"
            "flatten\n"
            "dense 32 relu\n"
            "dense 10 softmax\n");
}

TEST_F(Onnx, ImportReportsTheMappingAndItsNotes) {
  CliResult r = import("logits", "logits");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("logits.onnx: 20 nodes -> 7 layers, 31,650 parameters"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("dense 10 softmax"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ends in logits"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Identity skipped"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Dropout skipped"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no bias, zero biases"), std::string::npos) << r.out;
  // Without -o the spec goes to stdout, the table to stderr.
  CliResult s = run("import " + kFixtures + "strided.onnx");
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(s.out.rfind("# imported from ", 0), 0u) << s.out;
  EXPECT_NE(s.out.find("conv 8 5x3 relu padding=same"), std::string::npos) << s.out;
  EXPECT_NE(s.err.find("/net/net.0/Conv, /net/net.1/Relu"), std::string::npos) << s.err;
}

// The imported checkpoint is an ordinary one: analyze, evaluate, factorize --checkpoint and
// train --init take it (on a small synthetic MNIST of the fixture images).
TEST_F(Onnx, EveryCommandTakesTheImportedModel) {
  ASSERT_EQ(import("seed-v0", "v0").code, 0);
  splitconv::ImageSet images = splitconv::read_idx_images(kImages);
  fs::create_directories(at("data/mnist"));
  std::vector<uint8_t> labels;
  for (int64_t i = 0; i < images.count; ++i) labels.push_back(uint8_t(i % 10));
  for (const std::string split : {"train", "t10k"}) {
    splitconv::write_idx_images(at("data/mnist/" + split + "-images-idx3-ubyte"), images);
    splitconv::write_idx_labels(at("data/mnist/" + split + "-labels-idx1-ubyte"), labels);
  }
  const std::string data = " --device cpu --threads 2 --data-dir " + at("data");

  CliResult a = run("analyze " + at("v0.net"));
  EXPECT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.out.find("93,322"), std::string::npos) << a.out;
  CliResult e = run("evaluate " + at("v0.safetensors") + data + " --limit 64");
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_NE(e.out.find("64 images"), std::string::npos) << e.out;
  CliResult f =
      run("factorize --checkpoint " + at("v0.safetensors") + " -o " + at("split.safetensors"));
  ASSERT_EQ(f.code, 0) << f.err;
  CliResult t = run("train --init " + at("split.safetensors") + data +
                    " --epochs 1 --limit 64 --save " + at("tuned.safetensors"));
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_TRUE(fs::exists(at("tuned.safetensors")));
}

// export then import gives back the checkpoint's spec and weights bit for bit: the imported
// fixtures, an SVD-split checkpoint, and splitconv models with names, same padding, strides,
// a pair without an activation between its halves and hidden layers without one.
TEST_F(Onnx, ExportThenImportGivesTheCheckpointBack) {
  ASSERT_EQ(import("seed-v0", "v0").code, 0);
  ASSERT_EQ(import("strided", "strided").code, 0);
  ASSERT_EQ(run("factorize --checkpoint " + at("v0.safetensors") + " --rank 24 --mid none -o " +
                at("v0-svd.safetensors"))
                .code,
            0);
  const char* kOwn =
      "input 20x18x3\n"
      "conv 6 5x3 relu padding=same name=stem\n"
      "maxpool 3x2 stride=2\n"
      "conv 8 3x1 none stride=2 padding=same name=pair_v\n"
      "conv 8 1x3 relu stride=2 padding=same name=pair_h\n"
      "conv 5 2x2 none\n"
      "flatten name=flat\n"
      "dense 12 none name=hidden\n"
      "dense 4 none\n";
  splitconv::Model own = splitconv::build_model(splitconv::parse_spec(kOwn, "own.net"));
  splitconv::Checkpoint ck;
  ck.state.params = splitconv::init_parameters(own, 18);
  for (size_t i = 0; i < ck.state.params.size(); ++i) ck.state.params[i] += 1e-3f * float(i % 7);
  splitconv::save_checkpoint(at("own.safetensors"), own, ck);

  for (const std::string name : {"v0", "strided", "v0-svd", "own"}) {
    SCOPED_TRACE(name);
    CliResult x = run("export " + at(name + ".safetensors") + " -o " + at(name + ".onnx"));
    ASSERT_EQ(x.code, 0) << x.err;
    EXPECT_NE(x.out.find("ONNX opset 13"), std::string::npos) << x.out;
    CliResult r = run("import " + at(name + ".onnx") + " -o " + at(name + "-back.net") +
                      " --weights " + at(name + "-back.safetensors"));
    ASSERT_EQ(r.code, 0) << r.err;
    splitconv::Checkpoint a = splitconv::load_checkpoint(at(name + ".safetensors"));
    splitconv::Checkpoint b = splitconv::load_checkpoint(at(name + "-back.safetensors"));
    // The same spec, but for a last layer without activation, which comes back as softmax:
    // the same network (docs/design.md, Loss).
    splitconv::Spec want = splitconv::parse_spec(a.spec_text, "a");
    if (want.layers.back().activation == splitconv::Activation::None)
      want.layers.back().activation = splitconv::Activation::Softmax;
    EXPECT_EQ(splitconv::format_spec(splitconv::parse_spec(b.spec_text, "b")),
              splitconv::format_spec(want));
    ASSERT_EQ(a.state.params.size(), b.state.params.size());
    EXPECT_EQ(std::memcmp(a.state.params.data(), b.state.params.data(), a.state.params.size() * 4),
              0)
        << "the weights differ";
  }
}

struct Refusal {
  std::string file;  // a fixture, or made by the test
  std::vector<std::string> says;
};

// Unsupported and malformed files: exit 2, one line naming the file and the fault, and
// neither output file written.
TEST_F(Onnx, RefusesUnsupportedAndMalformedFilesInOneLine) {
  // A truncated file: the first half of a fixture.
  {
    std::ifstream in(kFixtures + "seed-v0.onnx", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(at("truncated.onnx"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  std::ofstream(at("text.onnx")) << "input 28x28x1\nconv 32 3x3 relu\n";
  const std::vector<Refusal> cases = {
      {kFixtures + "bad-op.onnx",
       {"node /Sigmoid (Sigmoid): unsupported op", "import reads Conv, Relu"}},
      {kFixtures + "bad-residual.onnx",
       {"node /Add (Add): adds two activations (a residual connection)", "sequential chain"}},
      {kFixtures + "bad-batchnorm.onnx",
       {"node /bn/BatchNormalization (BatchNormalization)", "not folded", "eval mode"}},
      {kFixtures + "bad-pads.onnx",
       {"node /a/Conv (Conv): asymmetric pads [1,0,0,0]", "valid (none) or same"}},
      {kFixtures + "bad-lying-size.onnx",
       {"initializer a.weight: dims [4000,1,3,3] claim 36000 elements but its data holds 144 "
        "bytes"}},
      {at("truncated.onnx"), {"the protobuf does not parse (truncated or corrupt file)"}},
      {at("text.onnx"), {"not an ONNX model"}},
      {at("absent.onnx"), {"cannot open"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    splitconv::testing::expect_refusal(
        run("import " + c.file + " -o " + at("out.net") + " --weights " + at("out.safetensors")),
        c.file, c.says, {at("out.net"), at("out.safetensors")});
  }
}

TEST_F(Onnx, ExportRefusesBadInputInOneLine) {
  std::ofstream(at("bad.safetensors")) << "not a checkpoint";
  CliResult r = run("export " + at("bad.safetensors") + " -o " + at("out.onnx"));
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find(at("bad.safetensors")), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(at("out.onnx")));
  ASSERT_EQ(import("seed-v0", "v0").code, 0);
  CliResult o = run("export " + at("v0.safetensors") + " -o " + at("no/such/dir/out.onnx"));
  EXPECT_EQ(o.code, 2);
  EXPECT_EQ(lines(o.err), 1) << o.err;
  EXPECT_NE(o.err.find("--output"), std::string::npos) << o.err;
  EXPECT_EQ(run("export " + at("v0.safetensors")).code, 2) << "-o is required";
}

}  // namespace

// A build without the ONNX library (SPLITCONV_ONNX=OFF, as the Docker image) says so for each
// command that would read or write ONNX: one line naming the file and the missing library.
TEST(OnnxAbsent, CommandsSaySoInOneLine) {
  if (splitconv::onnx_available()) GTEST_SKIP() << "this build reads ONNX (the Onnx tests run)";
  const std::string graph = kFixtures + "torchvision/resnet18.onnx";
  for (const std::string& args :
       {"analyze " + graph, "factorize " + graph + " --rule exact", "import " + graph}) {
    SCOPED_TRACE(args);
    const CliResult r = run(args);
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(graph + ": this build reads and writes no ONNX"), std::string::npos)
        << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}
