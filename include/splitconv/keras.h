// Keras configs (docs/design.md, Keras configs): a Sequential model's to_json(), Keras 2 or
// Keras 3 field names, as a spec. The file holds no weights.
#pragma once
#include <string>

#include "splitconv/import.h"

namespace splitconv {

// Reads a Keras Sequential model's JSON (origin "Keras VERSION"; its parts are its layers);
// throws InputError "PATH: layer NAME (CLASS): fault" (or "PATH: fault") for a file that is
// not such JSON, or a layer or setting the spec cannot represent.
ImportedModel import_keras_json(const std::string& path);

// Whether a file looks like JSON (its first non-blank byte is '{'): how `import` tells a Keras
// config from an ONNX protobuf.
bool looks_like_json(const std::string& path);

}  // namespace splitconv
