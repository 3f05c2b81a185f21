// The model spec (.net): one layer a line, parsed into a Spec.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace splitconv {

enum class LayerKind { Conv, MaxPool, Flatten, Dense };
enum class Activation { None, Relu, Softmax };
enum class Padding { Valid, Same };

struct LayerSpec {
  LayerKind kind = LayerKind::Conv;
  std::string name;        // explicit name=, or the default (conv1, pool1, dense1, flatten1)
  int line = 0;            // line in the source, for messages
  int units = 0;           // conv: filters; dense: units
  int kh = 0, kw = 0;      // conv kernel or pool window
  int stride = 1;          // conv: default 1; pool: default the pool height
  Padding padding = Padding::Valid;
  Activation activation = Activation::None;
};

struct Spec {
  std::string source;      // file name shown in messages
  int in_h = 0, in_w = 0, in_c = 0;
  int input_line = 0;      // line of 'input', for messages
  std::vector<LayerSpec> layers;
};

// Parses spec text; throws InputError "SOURCE:LINE: what was expected".
Spec parse_spec(std::string_view text, const std::string& source);
// Reads and parses a file; throws InputError naming the file if it cannot be read.
Spec load_spec(const std::string& path);
// Canonical text of a spec (parses back to the same Spec, names explicit where not default).
std::string format_spec(const Spec& spec, const std::string& title = "");

const char* to_string(LayerKind kind);
const char* to_string(Activation act);
const char* to_string(Padding pad);

}  // namespace splitconv
