// Keras configs (splitconv/keras.h; docs/design.md, Keras configs): the JSON of a Sequential
// model's to_json() as a spec. Keras 2 and Keras 3 write the same layer fields; they differ in
// where the input shape is (Keras 2: batch_input_shape of the InputLayer or of the first
// layer; Keras 3: batch_shape of the InputLayer) and in the wrapping of nested objects
// (Keras 3 adds module and registered_name). Every field is checked for its type and range
// before it is used.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>

#include "splitconv/error.h"
#include "splitconv/keras.h"

namespace splitconv {
namespace {

using json = nlohmann::json;

constexpr int64_t kMaxConfigBytes = int64_t(64) << 20;  // a config is a few KiB of text

const char* kSupported =
    "import reads InputLayer, Conv2D, MaxPooling2D, Flatten, Dense, Dropout, Activation and ReLU";

class KerasReader {
 public:
  explicit KerasReader(std::string path) : path_(std::move(path)) {}
  ImportedModel run();

 private:
  [[noreturn]] void fail(const std::string& fault) const { throw InputError(path_ + ": " + fault); }
  [[noreturn]] void fail_layer(const std::string& fault) const {
    fail("layer " + name_ + " (" + class_ + "): " + fault);
  }
  const json& field(const json& cfg, const char* key) const;
  int size_value(const json& v, const std::string& what) const;
  std::pair<int, int> pair_field(const json& cfg, const char* key, std::optional<int> def) const;
  std::string string_field(const json& cfg, const char* key, const std::string& def) const;
  std::string activation_name(const json& cfg) const;
  void read_input(const json& shape, const char* key);
  void layer(const json& entry, size_t index);
  void conv(const json& cfg);
  void pool(const json& cfg);
  void dense(const json& cfg);
  void activation(const std::string& act);
  void add(LayerSpec l) {
    layers_.push_back(l);
    names_.push_back(name_);
    parts_.push_back({name_});
  }

  std::string path_;
  std::string name_, class_;  // the layer being read
  bool have_input_ = false;
  int in_h_ = 0, in_w_ = 0, in_c_ = 0;
  bool ended_ = false;  // a softmax ended the model
  std::vector<LayerSpec> layers_;
  std::vector<std::string> names_;
  std::vector<std::vector<std::string>> parts_;
  std::vector<std::string> notes_;
};

const json& KerasReader::field(const json& cfg, const char* key) const {
  if (!cfg.contains(key)) fail_layer(std::string("has no ") + key);
  return cfg[key];
}

int KerasReader::size_value(const json& v, const std::string& what) const {
  if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxDim)
    fail_layer(what + " is " + v.dump() + ", not an integer from 1 to " + std::to_string(kMaxDim));
  return int(v.get<int64_t>());
}

// An integer or a list of two (Keras writes tuples as lists).
std::pair<int, int> KerasReader::pair_field(const json& cfg, const char* key,
                                            std::optional<int> def) const {
  if (!cfg.contains(key) || cfg[key].is_null()) {
    if (!def) fail_layer(std::string("has no ") + key);
    return {*def, *def};
  }
  const json& v = cfg[key];
  if (v.is_number_integer()) {
    const int n = size_value(v, key);
    return {n, n};
  }
  if (!v.is_array() || v.size() != 2)
    fail_layer(std::string(key) + " is " + v.dump() + ", not an integer or a list of two");
  return {size_value(v[0], key), size_value(v[1], key)};
}

std::string KerasReader::string_field(const json& cfg, const char* key,
                                      const std::string& def) const {
  if (!cfg.contains(key) || cfg[key].is_null()) return def;
  if (!cfg[key].is_string())
    fail_layer(std::string(key) + " is " + cfg[key].dump() + ", not a string");
  return cfg[key].get<std::string>();
}

// "relu", "linear", "softmax", or Keras 3's wrapped form {"config": "relu", ...}.
std::string KerasReader::activation_name(const json& cfg) const {
  if (!cfg.contains("activation") || cfg["activation"].is_null()) return "linear";
  const json& a = cfg["activation"];
  std::string name;
  if (a.is_string())
    name = a.get<std::string>();
  else if (a.is_object() && a.contains("config") && a["config"].is_string())
    name = a["config"].get<std::string>();
  else
    fail_layer("activation " + a.dump() + " is not the name of one");
  if (name != "relu" && name != "linear" && name != "softmax")
    fail_layer("activation " + name + ": the spec has relu, softmax (last layer) and linear");
  return name;
}

// [null, H, W, C] (batch_input_shape, batch_shape) or [H, W, C] (input_shape), channels last.
void KerasReader::read_input(const json& shape, const char* key) {
  const size_t rank = std::strcmp(key, "input_shape") == 0 ? 3 : 4;
  if (!shape.is_array() || shape.size() != rank)
    fail_layer(std::string(key) + " is " + shape.dump() + ", not " +
               (rank == 4 ? "[batch, H, W, C]" : "[H, W, C]") + " of an image");
  const size_t at = rank - 3;
  if (rank == 4 && !shape[0].is_null() && !shape[0].is_number_integer())
    fail_layer(std::string(key) + " has a batch of " + shape[0].dump());
  in_h_ = size_value(shape[at], std::string(key) + " height");
  in_w_ = size_value(shape[at + 1], std::string(key) + " width");
  in_c_ = size_value(shape[at + 2], std::string(key) + " channels");
  have_input_ = true;
}

void KerasReader::activation(const std::string& act) {
  if (act == "linear") return;
  if (act == "softmax") {
    if (layers_.empty() || layers_.back().kind != LayerKind::Dense ||
        layers_.back().activation != Activation::None)
      fail_layer(
          "softmax not right after a Dense layer; the spec's softmax is the last dense layer's");
    layers_.back().activation = Activation::Softmax;
    if (parts_.back().back() != name_) parts_.back().push_back(name_);
    ended_ = true;
    return;
  }
  // relu: onto the last conv or dense layer; pools and the flatten commute with ReLU.
  int last = -1;
  for (int i = int(layers_.size()) - 1; i >= 0 && last < 0; --i)
    if (layers_[size_t(i)].kind == LayerKind::Conv || layers_[size_t(i)].kind == LayerKind::Dense)
      last = i;
  if (last < 0)
    fail_layer("relu before any Conv2D or Dense layer; the spec's activations belong to a layer");
  LayerSpec& l = layers_[size_t(last)];
  if (l.activation == Activation::Relu) {
    notes_.push_back(name_ + ": a second relu on " + names_[size_t(last)] + ", skipped");
    return;
  }
  if (last + 1 != int(layers_.size()))
    notes_.push_back(name_ + ": relu after a pool or flatten moved onto " + names_[size_t(last)] +
                     " (max-pooling and ReLU commute)");
  l.activation = Activation::Relu;
  parts_[size_t(last)].push_back(name_);
}

void KerasReader::conv(const json& cfg) {
  if (!layers_.empty() && std::any_of(layers_.begin(), layers_.end(), [](const LayerSpec& l) {
        return l.kind == LayerKind::Flatten;
      }))
    fail_layer("comes after the Flatten; the spec has convolutions and pools before it only");
  LayerSpec l;
  l.kind = LayerKind::Conv;
  l.units = size_value(field(cfg, "filters"), "filters");
  std::tie(l.kh, l.kw) = pair_field(cfg, "kernel_size", std::nullopt);
  const auto [sh, sw] = pair_field(cfg, "strides", 1);
  if (sh != sw)
    fail_layer("strides [" + std::to_string(sh) + "," + std::to_string(sw) +
               "]: the spec has one stride for both directions");
  l.stride = sh;
  const auto [dh, dw] = pair_field(cfg, "dilation_rate", 1);
  if (dh != 1 || dw != 1) fail_layer("dilation_rate other than 1 is not supported");
  if (cfg.contains("groups") &&
      !(cfg["groups"].is_number_integer() && cfg["groups"].get<int64_t>() == 1))
    fail_layer("groups " + cfg["groups"].dump() + ": grouped convolutions are not trainable here");
  const std::string padding = string_field(cfg, "padding", "valid");
  // Keras's same padding is TensorFlow's, which is the spec's (the odd pixel bottom/right).
  if (padding == "same")
    l.padding = Padding::Same;
  else if (padding != "valid")
    fail_layer("padding " + padding + ": the spec has valid and same");
  const std::string act = activation_name(cfg);
  if (act == "softmax")
    fail_layer("softmax on a convolution; the spec's softmax is the last dense layer's");
  l.activation = act == "relu" ? Activation::Relu : Activation::None;
  if (cfg.contains("use_bias") && cfg["use_bias"] == false)
    notes_.push_back(name_ + ": use_bias false, but splitconv's conv has a bias (" +
                     std::to_string(l.units) + " more parameters)");
  add(l);
}

void KerasReader::pool(const json& cfg) {
  LayerSpec l;
  l.kind = LayerKind::MaxPool;
  std::tie(l.kh, l.kw) = pair_field(cfg, "pool_size", 2);
  // strides null (or absent) means the pool size.
  auto [sh, sw] = std::pair{l.kh, l.kw};
  if (cfg.contains("strides") && !cfg["strides"].is_null())
    std::tie(sh, sw) = pair_field(cfg, "strides", std::nullopt);
  if (sh != sw)
    fail_layer("strides [" + std::to_string(sh) + "," + std::to_string(sw) +
               "]: the spec has one stride for both directions");
  l.stride = sh;
  if (string_field(cfg, "padding", "valid") != "valid")
    fail_layer("padding " + string_field(cfg, "padding", "valid") +
               ": the spec's pools have no padding");
  add(l);
}

void KerasReader::dense(const json& cfg) {
  if (std::none_of(layers_.begin(), layers_.end(),
                   [](const LayerSpec& l) { return l.kind == LayerKind::Flatten; }))
    fail_layer("reads the image; flatten it first (Flatten), as the spec does");
  LayerSpec l;
  l.kind = LayerKind::Dense;
  l.units = size_value(field(cfg, "units"), "units");
  add(l);
  const std::string act = activation_name(cfg);
  if (act == "relu") layers_.back().activation = Activation::Relu;
  if (act == "softmax") {
    layers_.back().activation = Activation::Softmax;
    ended_ = true;
  }
  if (cfg.contains("use_bias") && cfg["use_bias"] == false)
    notes_.push_back(name_ + ": use_bias false, but splitconv's dense layer has a bias (" +
                     std::to_string(l.units) + " more parameters)");
}

void KerasReader::layer(const json& entry, size_t index) {
  name_ = "#" + std::to_string(index);
  class_ = "?";
  if (!entry.is_object()) fail("layer #" + std::to_string(index) + " is not a JSON object");
  if (!entry.contains("class_name") || !entry["class_name"].is_string())
    fail("layer #" + std::to_string(index) + " has no class_name");
  class_ = entry["class_name"].get<std::string>();
  if (!entry.contains("config") || !entry["config"].is_object()) fail_layer("has no config object");
  const json& cfg = entry["config"];
  if (cfg.contains("name") && cfg["name"].is_string()) name_ = cfg["name"].get<std::string>();
  if (class_ == "InputLayer") {
    if (have_input_ || !layers_.empty()) fail_layer("an input after the first layer");
    for (const char* key : {"batch_input_shape", "batch_shape", "input_shape"})
      if (cfg.contains(key)) {
        read_input(cfg[key], key);
        return;
      }
    fail_layer("gives no batch_input_shape, batch_shape or input_shape");
  }
  if (!have_input_) {
    for (const char* key : {"batch_input_shape", "input_shape"})
      if (cfg.contains(key) && !have_input_) read_input(cfg[key], key);
    if (!have_input_)
      fail_layer("the first layer gives no input shape (an InputLayer, or batch_input_shape)");
  }
  const std::string format = string_field(cfg, "data_format", "channels_last");
  if (format != "channels_last")
    fail_layer("data_format " + format +
               ": import reads channels_last, as Keras writes by default");
  if (ended_ && class_ != "Dropout")
    fail_layer("comes after the final softmax; the spec's softmax ends the model");
  if (class_ == "Conv2D" || class_ == "Convolution2D")
    conv(cfg);
  else if (class_ == "MaxPooling2D" || class_ == "MaxPool2D")
    pool(cfg);
  else if (class_ == "Flatten") {
    if (std::any_of(layers_.begin(), layers_.end(),
                    [](const LayerSpec& l) { return l.kind == LayerKind::Flatten; }))
      fail_layer("a second Flatten; the spec has one");
    LayerSpec l;
    l.kind = LayerKind::Flatten;
    add(l);
  } else if (class_ == "Dense")
    dense(cfg);
  else if (class_ == "Dropout")
    notes_.push_back(name_ + ": Dropout skipped (inference)");
  else if (class_ == "Activation")
    activation(activation_name(cfg));
  else if (class_ == "ReLU") {
    for (const char* key : {"max_value", "negative_slope", "threshold"})
      if (cfg.contains(key) && !cfg[key].is_null() && !(cfg[key].is_number() && cfg[key] == 0))
        fail_layer(std::string(key) + " " + cfg[key].dump() + ": the spec's relu is max(x, 0)");
    activation("relu");
  } else if (class_ == "BatchNormalization")
    fail_layer("batch normalization: the spec has none (fold it into the convolution before)");
  else
    fail_layer(std::string("unsupported layer; ") + kSupported);
}

ImportedModel KerasReader::run() {
  std::ifstream in(path_, std::ios::binary | std::ios::ate);
  if (!in) fail(std::string("cannot open: ") + std::strerror(errno));
  const std::streamoff size = in.tellg();
  if (size < 0) fail("cannot read (not a regular file?)");
  if (size > kMaxConfigBytes)
    fail("is " + std::to_string(size) + " bytes; a Keras config is at most 64 MiB of JSON");
  std::string text(size_t(size), '\0');
  in.seekg(0);
  if (size > 0 && !in.read(text.data(), size))
    fail(std::string("cannot read: ") + std::strerror(errno));
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    fail(std::string("not valid JSON (truncated?): ") + e.what());
  }
  if (!root.is_object() || !root.contains("class_name") || !root["class_name"].is_string())
    fail("not a Keras model's JSON: no class_name");
  const std::string cls = root["class_name"].get<std::string>();
  if (cls == "Functional" || cls == "Model")
    fail("a functional model (class " + cls + "); import reads Sequential models");
  if (cls != "Sequential") fail("a Keras " + cls + ", not a Sequential model");
  if (!root.contains("config")) fail("the Sequential model has no config");
  const json& cfg = root["config"];
  // Keras 2.0 and 2.1 wrote the layers as the config itself; later versions as config.layers.
  const json* list = cfg.is_array() ? &cfg : nullptr;
  if (cfg.is_object() && cfg.contains("layers") && cfg["layers"].is_array()) list = &cfg["layers"];
  if (!list) fail("the Sequential model's config has no list of layers");
  // Keras 3 may give the input shape only as the model's build_input_shape.
  if (cfg.is_object() && cfg.contains("build_input_shape") && !list->empty()) {
    const json& first = (*list)[0];
    const bool is_input =
        first.is_object() && first.contains("class_name") && first["class_name"] == "InputLayer";
    const bool has_shape =
        first.is_object() && first.contains("config") && first["config"].is_object() &&
        (first["config"].contains("batch_input_shape") || first["config"].contains("input_shape"));
    if (!is_input && !has_shape) {
      name_ = "config", class_ = "Sequential";
      read_input(cfg["build_input_shape"], "build_input_shape");
    }
  }
  for (size_t i = 0; i < list->size(); ++i) layer((*list)[i], i);
  if (!have_input_) fail("the model has no layers");
  if (layers_.empty() || layers_.back().kind != LayerKind::Dense)
    fail(
        "the model does not end in a Dense layer; the spec's last layer is dense (the class "
        "logits)");
  LayerSpec& last = layers_.back();
  if (last.activation == Activation::Relu)
    fail("the model ends in a relu after its last Dense layer (" + names_.back() +
         "); the spec's last layer gives the class logits");
  if (last.activation == Activation::None) {
    last.activation = Activation::Softmax;
    notes_.push_back("the model ends in logits: its last layer becomes dense " +
                     std::to_string(last.units) +
                     " softmax (splitconv trains the last layer with softmax cross-entropy)");
  }
  ImportedModel out;
  out.spec.source = path_;
  out.spec.in_h = in_h_, out.spec.in_w = in_w_, out.spec.in_c = in_c_;
  out.spec.layers = layers_;
  out.model = build_imported(out.spec, names_, path_);
  // Keras 2 names its version; Keras 3 writes none but puts a module on every object.
  out.origin = "Keras";
  if (root.contains("keras_version") && root["keras_version"].is_string())
    out.origin += " " + root["keras_version"].get<std::string>();
  else if (root.contains("module"))
    out.origin += " 3";
  out.part_kind = "Keras layers";
  out.parts = int(list->size());
  for (size_t i = 0; i < layers_.size(); ++i)
    out.sources.push_back({out.model.layers[i].name(), parts_[i]});
  out.notes = notes_;
  return out;
}

}  // namespace

ImportedModel import_keras_json(const std::string& path) { return KerasReader(path).run(); }

bool looks_like_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char c = 0;
  while (in.get(c))
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return c == '{';
  return false;
}

}  // namespace splitconv
