// Keras configs (docs/design.md, Keras configs): the notebook's two models and a Keras 3 config
// of tests/fixtures/keras import to the specs they describe; what the spec cannot represent and
// files that are no Keras config are refused in one line, exit 2, nothing written.
#include "splitconv/keras.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "run_cli.h"
#include "splitconv/error.h"

namespace fs = std::filesystem;

namespace {

using splitconv::testing::CliResult;

const std::string kSource = SPLITCONV_SOURCE_DIR;
const std::string kFixtures = kSource + "/tests/fixtures/keras/";

CliResult run(const std::string& args) { return splitconv::testing::run_cli(args); }

// The spec's canonical text with the default layer names (Keras names its layers conv2d, ...).
std::string unnamed(splitconv::Spec spec) {
  std::map<std::string, int> counts;
  for (auto& l : spec.layers) {
    const std::string prefix = l.kind == splitconv::LayerKind::Conv      ? "conv"
                               : l.kind == splitconv::LayerKind::MaxPool ? "pool"
                               : l.kind == splitconv::LayerKind::Dense   ? "dense"
                                                                         : "flatten";
    l.name = prefix + std::to_string(++counts[prefix]);
  }
  return splitconv::format_spec(spec);
}

class Keras : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "splitconv-keras-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string at(const std::string& name) const { return dir_ + "/" + name; }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(at(name)) << text;
    return at(name);
  }
  std::string dir_;
};

TEST_F(Keras, TheNotebooksModelsImportAsTheSeedSpecs) {
  for (const std::string name : {"seed-v0", "seed-v1"}) {
    SCOPED_TRACE(name);
    CliResult r = run("import " + kFixtures + name + ".json -o " + at(name + ".net"));
    ASSERT_EQ(r.code, 0) << r.err;
    splitconv::Spec got = splitconv::load_spec(at(name + ".net"));
    EXPECT_EQ(unnamed(got), unnamed(splitconv::load_spec(kSource + "/models/" + name + ".net")));
    // Keras's layer names are kept.
    EXPECT_EQ(got.layers.front().name, name == "seed-v0" ? "conv2d" : "conv2d_3");
  }
  CliResult a = run("analyze " + at("seed-v0.net"));
  EXPECT_EQ(a.code, 0) << a.err;
  EXPECT_NE(a.out.find("93,322"), std::string::npos) << a.out;
  CliResult f = run("factorize " + at("seed-v0.net") + " -o " + at("split.net"));
  EXPECT_EQ(f.code, 0) << f.err;
  EXPECT_NE(f.err.find("params 93,322 -> 81,098"), std::string::npos) << f.err;
}

TEST_F(Keras, AKeras3ConfigWithStridesSamePaddingAndLogits) {
  CliResult r = run("import " + kFixtures + "strided-keras3.json -o " + at("s.net"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(unnamed(splitconv::load_spec(at("s.net"))),
            "input 28x28x1\n"
            "conv 8 5x3 relu padding=same\n"
            "conv 16 3x3 relu stride=2\n"
            "conv 16 3x3 relu stride=2 padding=same\n"
            "maxpool 3x3 stride=2\n"
            "flatten\n"
            "dense 10 softmax\n");
  EXPECT_NE(r.out.find("9 Keras layers -> 6 layers, 5,066 parameters"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("conv_c, activation"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Dropout skipped"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ends in logits"), std::string::npos) << r.out;
  std::ifstream in(at("s.net"));
  std::string first;
  std::getline(in, first);
  EXPECT_NE(first.find("(Keras 3)"), std::string::npos) << first;
}

// Keras 2.0's form (the config is the list of layers) and variants of the same layers.
TEST_F(Keras, OlderAndShorterFormsImport) {
  const std::string path = write("old.json", R"({"class_name": "Sequential", "config": [
    {"class_name": "Conv2D", "config": {"name": "c", "input_shape": [12, 10, 3], "filters": 4,
     "kernel_size": 3, "strides": 1, "padding": "same", "activation": "linear"}},
    {"class_name": "ReLU", "config": {"name": "r", "max_value": null, "negative_slope": 0.0, "threshold": 0.0}},
    {"class_name": "MaxPool2D", "config": {"name": "p", "pool_size": [2, 3], "strides": 2}},
    {"class_name": "Flatten", "config": {"name": "f"}},
    {"class_name": "Dense", "config": {"name": "d", "units": 5, "activation": "softmax", "use_bias": false}}
  ], "keras_version": "2.0.8"})");
  const splitconv::ImportedModel m = splitconv::import_keras_json(path);
  EXPECT_EQ(splitconv::format_spec(m.spec),
            "input 12x10x3\n"
            "conv 4 3x3 relu padding=same name=c\n"
            "maxpool 2x3 stride=2 name=p\n"
            "flatten name=f\n"
            "dense 5 softmax name=d\n");
  EXPECT_EQ(m.origin, "Keras 2.0.8");
  EXPECT_FALSE(m.has_weights);
  ASSERT_EQ(m.notes.size(), 1u);
  EXPECT_NE(m.notes[0].find("d: use_bias false"), std::string::npos) << m.notes[0];
}

TEST_F(Keras, RefusesWhatTheSpecCannotRepresent) {
  // One Conv2D whose config gets `field`, then a valid rest of the model.
  auto model = [](const std::string& conv_extra, const std::string& tail = "") {
    return R"({"class_name": "Sequential", "config": {"name": "s", "layers": [
      {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 12, 12, 1], "name": "in"}},
      {"class_name": "Conv2D", "config": {"name": "conv", "filters": 4, "kernel_size": [3, 3])" +
           conv_extra + R"(}},)" + tail + R"(
      {"class_name": "Flatten", "config": {"name": "flat"}},
      {"class_name": "Dense", "config": {"name": "out", "units": 10, "activation": "softmax"}}]}})";
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {model(R"(, "strides": [2, 1])"), "layer conv (Conv2D): strides [2,1]"},
      {model(R"(, "padding": "causal")"), "padding causal"},
      {model(R"(, "dilation_rate": [2, 2])"), "dilation_rate"},
      {model(R"(, "groups": 2)"), "groups 2"},
      {model(R"(, "activation": "tanh")"), "activation tanh: the spec has relu, softmax"},
      {model(R"(, "data_format": "channels_first")"), "data_format channels_first"},
      {model(R"(, "filters": 0)"), "filters is 0"},
      {model(R"(, "kernel_size": "3")"), "kernel_size is \"3\""},
      {model("", R"({"class_name": "MaxPooling2D", "config": {"name": "p", "padding": "same"}},)"),
       "layer p (MaxPooling2D): padding same"},
      {model("",
             R"({"class_name": "MaxPooling2D", "config": {"name": "p", "pool_size": [2, 3]}},)"),
       "layer p (MaxPooling2D): strides [2,3]: the spec has one stride"},
      {model("", R"({"class_name": "ReLU", "config": {"name": "r6", "max_value": 6.0}},)"),
       "layer r6 (ReLU): max_value 6.0"},
      {model("", R"({"class_name": "Conv2DTranspose", "config": {"name": "up"}},)"),
       "layer up (Conv2DTranspose): unsupported layer; import reads InputLayer"},
      {R"({"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"name": "d", "units": 3}}]}})",
       "layer d (Dense): the first layer gives no input shape"},
      {R"({"class_name": "Sequential", "config": {"layers": [
         {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 784]}}]}})",
       "batch_input_shape is [null,784], not [batch, H, W, C] of an image"},
      {R"([1, 2, 3])", "not a Keras model's JSON"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].second);
    const std::string path = write("case" + std::to_string(i) + ".json", cases[i].first);
    try {
      splitconv::import_keras_json(path);
      ADD_FAILURE() << "accepted";
    } catch (const splitconv::InputError& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
      EXPECT_NE(msg.find(cases[i].second), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
}

TEST_F(Keras, BadFilesAreRefusedInOneLineAndWriteNothing) {
  {
    std::ifstream in(kFixtures + "seed-v0.json");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    write("truncated.json", text.substr(0, text.size() / 2));
  }
  const std::vector<std::pair<std::string, std::string>> cases = {
      {kFixtures + "bad-batchnorm.json",
       "layer batch_normalization (BatchNormalization): batch normalization"},
      {kFixtures + "bad-functional.json", "a functional model (class Functional)"},
      {at("truncated.json"), "not valid JSON (truncated?)"},
      {kFixtures + "seed-v0.json --weights " + at("w.safetensors"),
       "a Keras config holds no weights"},
  };
  for (const auto& [args, says] : cases) {
    SCOPED_TRACE(args);
    splitconv::testing::expect_refusal(run("import " + args + " -o " + at("out.net")),
                                       args.substr(0, args.find(' ')), {says},
                                       {at("out.net"), at("w.safetensors")});
  }
}

}  // namespace
