// Models from other tools (ONNX: splitconv/onnx.h; Keras configs: splitconv/keras.h): the spec,
// the weights when the file holds them, and which parts of the file became which layer.
#pragma once
#include <string>
#include <vector>

#include "splitconv/model.h"
#include "splitconv/spec.h"

namespace splitconv {

struct ImportedModel {
  Spec spec;                  // names from the file when all are valid spec names
  Model model;                // build_model(spec)
  bool has_weights = false;   // false for a config, or a graph exported without its parameters
  std::vector<float> params;  // in `model`'s slot layout, when has_weights
  std::string origin;         // "ONNX opset 13, pytorch 1.13.0", "Keras 2.15.0"
  std::string part_kind;      // what the file's parts are: "nodes", "Keras layers"
  int parts = 0;              // how many the file has
  // One entry per layer: the layer's name and the parts of the file it came from.
  struct LayerSource {
    std::string layer;
    std::vector<std::string> parts;
  };
  std::vector<LayerSource> sources;
  std::vector<std::string> notes;  // what the mapping did beyond one part per layer
};

// Whether `name` may name a layer in a spec (a letter, then letters, digits, _ or -; 64 at most).
bool is_spec_name(const std::string& name);

// Builds the model of `spec`, whose layers are unnamed: they take `names` (one per layer) when
// every one is a valid spec name, they are unique and the spec builds with them, else the
// default names (conv1, pool1, ...). Built through the spec's text, so every spec check and
// size limit applies; throws InputError "PATH: the imported model does not build: ..." when
// the spec does not build. `spec` gets the names chosen.
Model build_imported(Spec& spec, const std::vector<std::string>& names, const std::string& path);

}  // namespace splitconv
