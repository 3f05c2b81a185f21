// import_onnx on graphs edited through the ONNX library's protobuf classes: each fault that
// a file from anywhere may carry is refused with its own message, and the forms of the same
// layer (Gemm with or without transB, auto_pad, weights without values) import alike.
// Built only with the ONNX library (tests/CMakeLists.txt).
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "proto_util.h"
#include "splitconv/error.h"
#include "splitconv/onnx.h"

namespace fs = std::filesystem;
namespace pb = ONNX_NAMESPACE;

namespace {

const std::string kFixtures = std::string(SPLITCONV_SOURCE_DIR) + "/tests/fixtures/onnx/";

pb::ModelProto load(const std::string& name) { return splitconv::testing::load_model(kFixtures + name); }

std::string save(const pb::ModelProto& m, const std::string& name) {
  return splitconv::testing::save_model(m, "onnxproto", name);
}

pb::NodeProto* first(pb::ModelProto& m, const std::string& op) { return splitconv::testing::first_node(m, op); }

pb::AttributeProto* attribute(pb::NodeProto* n, const std::string& name) {
  for (auto& a : *n->mutable_attribute())
    if (a.name() == name) return &a;
  auto* a = n->add_attribute();
  a->set_name(name);
  return a;
}

pb::TensorProto* initializer(pb::ModelProto& m, const std::string& name) {
  for (auto& t : *m.mutable_graph()->mutable_initializer())
    if (t.name() == name) return &t;
  ADD_FAILURE() << "no initializer " << name;
  return nullptr;
}

// import_onnx of the edited seed-v0 fixture must throw InputError naming the file and `says`.
void expect_refused(const std::string& name, const std::function<void(pb::ModelProto&)>& edit,
                    const std::string& says, const std::string& fixture = "seed-v0.onnx") {
  SCOPED_TRACE(name);
  pb::ModelProto m = load(fixture);
  edit(m);
  const std::string path = save(m, name + ".onnx");
  try {
    splitconv::import_onnx(path);
    ADD_FAILURE() << "accepted";
  } catch (const splitconv::InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(says), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  fs::remove(path);
}

const char* kConv1 = "/features/features.0/Conv";

TEST(OnnxProto, EachFaultIsRefusedWithItsOwnMessage) {
  expect_refused(
      "strides",
      [](auto& m) {
        auto* a = attribute(first(m, "Conv"), "strides");
        a->clear_ints(), a->add_ints(2), a->add_ints(1);
      },
      std::string("node ") + kConv1 + " (Conv): strides [2,1]: the spec has one stride");
  expect_refused(
      "group", [](auto& m) { attribute(first(m, "Conv"), "group")->set_i(2); },
      "group 2: grouped and depthwise convolutions");
  expect_refused(
      "dilations",
      [](auto& m) {
        auto* a = attribute(first(m, "Conv"), "dilations");
        a->set_ints(0, 2);
      },
      "only dilation 1");
  expect_refused(
      "same-upper",
      [](auto& m) {
        // conv1 with same padding keeps 28x28: conv3 then gives 4x4x64, not the 3x3x64 the first
        // Gemm's weight reads.
        attribute(first(m, "Conv"), "auto_pad")->set_s("SAME_UPPER");
        attribute(first(m, "Conv"), "auto_pad")->set_type(pb::AttributeProto::STRING);
      },
      "reads 576 features but its input has 1024 features");
  expect_refused(
      "float-data-short",
      [](auto& m) {
        pb::TensorProto* t = initializer(m, "features.0.bias");
        std::vector<float> v(31, 0.5f);
        t->clear_raw_data();
        for (float f : v) t->add_float_data(f);
      },
      "initializer features.0.bias: dims [32] claim 32 elements but its data holds 31");
  expect_refused(
      "negative-dim", [](auto& m) { initializer(m, "features.0.bias")->set_dims(0, -32); },
      "negative dimension -32");
  expect_refused(
      "huge-dims",
      [](auto& m) {
        pb::TensorProto* t = initializer(m, "features.0.weight");
        t->set_dims(0, int64_t(1) << 40);
      },
      "exceed 2147483647 elements");
  expect_refused(
      "external",
      [](auto& m) {
        pb::TensorProto* t = initializer(m, "features.0.weight");
        t->set_data_location(pb::TensorProto::EXTERNAL);
      },
      "external file");
  expect_refused(
      "double-weights",
      [](auto& m) { initializer(m, "classifier.3.bias")->set_data_type(pb::TensorProto::DOUBLE); },
      "import reads float32 weights");
  expect_refused(
      "alpha",
      [](auto& m) {
        auto* a = attribute(first(m, "Gemm"), "alpha");
        a->set_f(0.5f);
      },
      "alpha 0.5");
  expect_refused(
      "wrong-weight",
      [](auto& m) {
        auto* g = first(m, "Gemm");
        g->set_input(1, "classifier.3.weight");  // [10, 64] where 576 features come in
      },
      "reads 64 features but its input has 576 features");
  expect_refused(
      "opset", [](auto& m) { m.mutable_opset_import(0)->set_version(6); },
      "opset 6 of the default domain; import reads opsets 7 to 21");
  expect_refused(
      "dynamic-height",
      [](auto& m) {
        auto* d = m.mutable_graph()
                      ->mutable_input(0)
                      ->mutable_type()
                      ->mutable_tensor_type()
                      ->mutable_shape()
                      ->mutable_dim(2);
        d->set_dim_param("H");
      },
      "input input has no fixed height (H)");
  expect_refused(
      "unknown-input", [](auto& m) { first(m, "MaxPool")->set_input(0, "nowhere"); },
      "reads nowhere, which no earlier node produces");
  expect_refused(
      "two-outputs", [](auto& m) { *m.mutable_graph()->add_output() = m.graph().output(0); },
      "the graph has 2 outputs");
  expect_refused(
      "not-at-end",
      [](auto& m) {
        m.mutable_graph()->mutable_output(0)->set_name("/classifier/classifier.3/Gemm_output_0");
      },
      "is not the end of the chain");
  expect_refused(
      "softmax-axis", [](auto& m) { attribute(first(m, "Softmax"), "axis")->set_i(0); },
      "axis 0: import reads a softmax over the classes");
  expect_refused(
      "after-softmax",
      [](auto& m) {
        auto* n = m.mutable_graph()->add_node();
        n->set_op_type("Relu");
        n->set_name("late");
        n->add_input("output");
        n->add_output("late_out");
        m.mutable_graph()->mutable_output(0)->set_name("late_out");
      },
      "node late (Relu): comes after the final Softmax");
  expect_refused(
      "pool-padding",
      [](auto& m) {
        auto* a = attribute(first(m, "MaxPool"), "pads");
        a->set_ints(0, 1);
      },
      "the spec's pools have no padding");
  expect_refused(
      "ceil-mode",
      [](auto& m) {
        // pool2 sees 11x11: a 2x2 window of stride 2 leaves a partial one under ceil_mode.
        int seen = 0;
        for (auto& n : *m.mutable_graph()->mutable_node())
          if (n.op_type() == "MaxPool" && ++seen == 2) attribute(&n, "ceil_mode")->set_i(1);
      },
      "ceil_mode 1 on a 11x11x64 input");
  expect_refused(
      "dropout-training",
      [](auto& m) {
        pb::TensorProto* on = m.mutable_graph()->add_initializer();
        on->set_name("training_on");
        on->set_data_type(pb::TensorProto::BOOL);
        on->set_raw_data(std::string(1, '\1'));
        pb::NodeProto* d = first(m, "Dropout");
        d->add_input("");
        d->add_input("training_on");
      },
      "node skip_dropout (Dropout): training_mode is on", "logits.onnx");
  expect_refused(
      "two-initializers",
      [](auto& m) { *m.mutable_graph()->add_initializer() = m.graph().initializer(0); },
      "two initializers are named");
  expect_refused(
      "flatten-axis", [](auto& m) { attribute(first(m, "Flatten"), "axis")->set_i(2); },
      "axis 2: import reads a flatten to [N, -1]");
}

TEST(OnnxProto, BytesThatAreNoModelAreRefused) {
  const fs::path p = fs::temp_directory_path() /
                     ("splitconv-onnxproto-" + std::to_string(getpid()) + "-junk.onnx");
  for (const std::string bytes :
       {std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11), std::string()}) {
    std::ofstream(p, std::ios::binary) << bytes;
    try {
      splitconv::import_onnx(p.string());
      ADD_FAILURE() << "accepted " << bytes.size() << " bytes";
    } catch (const splitconv::InputError& e) {
      EXPECT_NE(std::string(e.what()).find("not an ONNX model"), std::string::npos) << e.what();
    }
  }
  fs::remove(p);
}

// The same network written in other forms imports to the same spec and weights.
TEST(OnnxProto, OtherFormsOfTheSameLayersImportAlike) {
  const splitconv::ImportedModel base = splitconv::import_onnx(kFixtures + "seed-v0.onnx");
  auto same = [&](const std::string& name, const std::function<void(pb::ModelProto&)>& edit) {
    SCOPED_TRACE(name);
    pb::ModelProto m = load("seed-v0.onnx");
    edit(m);
    const std::string path = save(m, name + ".onnx");
    const splitconv::ImportedModel r = splitconv::import_onnx(path);
    fs::remove(path);
    EXPECT_EQ(splitconv::format_spec(r.spec), splitconv::format_spec(base.spec));
    return r;
  };
  // Gemm's B as [in, out] without transB.
  auto r = same("no-transb", [](auto& m) {
    pb::NodeProto* g = first(m, "Gemm");
    attribute(g, "transB")->set_i(0);
    pb::TensorProto* w = initializer(m, g->input(1));
    const int64_t out = w->dims(0), in = w->dims(1);
    std::string t(w->raw_data().size(), '\0');
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i)
        std::memcpy(&t[size_t(4 * (i * out + o))], &w->raw_data()[size_t(4 * (o * in + i))], 4);
    w->set_raw_data(t);
    w->set_dims(0, in), w->set_dims(1, out);
  });
  EXPECT_EQ(r.params, base.params);
  // float_data instead of raw_data.
  r = same("float-data", [](auto& m) {
    pb::TensorProto* t = initializer(m, "features.3.weight");
    std::vector<float> v(t->raw_data().size() / 4);
    std::memcpy(v.data(), t->raw_data().data(), t->raw_data().size());
    t->clear_raw_data();
    for (float f : v) t->add_float_data(f);
  });
  EXPECT_EQ(r.params, base.params);
  // auto_pad VALID, and the weights as graph inputs without values (export_params=False).
  r = same("no-weights", [](auto& m) {
    attribute(first(m, "Conv"), "auto_pad")->set_s("VALID");
    attribute(first(m, "Conv"), "auto_pad")->set_type(pb::AttributeProto::STRING);
    auto* g = m.mutable_graph();
    for (const auto& t : g->initializer()) {
      pb::ValueInfoProto* v = g->add_input();
      v->set_name(t.name());
      auto* tt = v->mutable_type()->mutable_tensor_type();
      tt->set_elem_type(pb::TensorProto::FLOAT);
      for (int64_t d : t.dims()) tt->mutable_shape()->add_dim()->set_dim_value(d);
    }
    g->clear_initializer();
  });
  EXPECT_FALSE(r.has_weights);
  EXPECT_TRUE(r.params.empty());
}

}  // namespace
