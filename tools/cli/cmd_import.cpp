// splitconv import MODEL.onnx: a sequential ONNX graph as a spec and a checkpoint;
// splitconv import MODEL.json: a Keras Sequential config as a spec (splitconv/keras.h).
// splitconv export CK -o MODEL.onnx: a checkpoint as an ONNX model (splitconv/onnx.h).
#include <algorithm>
#include <cstdio>

#include "cli.h"
#include "splitconv/checkpoint.h"
#include "splitconv/error.h"
#include "splitconv/keras.h"
#include "splitconv/onnx.h"

namespace splitconv::cli {
namespace {

struct ImportArgs {
  std::string model_path, out_path, weights_path;
};

std::string layer_text(const LayerSpec& l) {
  Spec one;
  one.in_h = one.in_w = one.in_c = 1;
  one.layers = {l};
  one.layers[0].name = "";
  std::string text = format_spec(one);
  text = text.substr(text.find('\n') + 1);  // the layer's line, without the input line
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const size_t name = text.find(" name=");
  return name == std::string::npos ? text : text.substr(0, name);
}

void run_import(const ImportArgs& a) {
  if (!a.out_path.empty()) check_writable(a.out_path, "--output");
  if (!a.weights_path.empty()) check_writable(a.weights_path, "--weights");
  const bool keras = a.model_path.ends_with(".json") || looks_like_json(a.model_path);
  ImportedModel r = keras ? import_keras_json(a.model_path) : import_onnx(a.model_path);
  if (!a.weights_path.empty() && !r.has_weights)
    throw InputError(a.model_path +
                     (keras ? ": a Keras config holds no weights"
                            : ": the graph holds no weights (exported without its "
                              "parameters)") +
                     "; leave out --weights");
  const std::string text =
      format_spec(r.spec, "imported from " + a.model_path + " (" + r.origin + ")");

  // The mapping, part by part: on stdout when the spec goes to a file, else on stderr.
  std::string table = a.model_path + ": " + std::to_string(r.parts) + " " + r.part_kind + " -> " +
                      std::to_string(r.model.layers.size()) + " layers, " +
                      thousands(r.model.total_params) + " parameters, " +
                      thousands(r.model.total_macs) + " MACs per image\n";
  int width = 12;
  for (const auto& src : r.sources) width = std::max(width, int(src.layer.size()) + 1);
  char line[512];
  std::snprintf(line, sizeof line, "  %-*s %-40s %s\n", width, "layer", "spec",
                r.part_kind.c_str());
  table += line;
  for (size_t i = 0; i < r.sources.size(); ++i) {
    std::string parts;
    for (const auto& n : r.sources[i].parts) parts += (parts.empty() ? "" : ", ") + n;
    std::snprintf(line, sizeof line, "  %-*s %-40s ", width, r.sources[i].layer.c_str(),
                  layer_text(r.spec.layers[i]).c_str());
    table += line + parts + "\n";
  }
  for (const auto& n : r.notes) table += "  note: " + n + "\n";

  if (!a.weights_path.empty()) {
    Checkpoint ck;
    ck.spec_text = text;
    ck.state.params = r.params;
    save_checkpoint(a.weights_path, r.model, ck);
  }
  if (a.out_path.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fwrite(table.data(), 1, table.size(), stderr);
  } else {
    write_file_atomic(a.out_path, text);
    std::fwrite(table.data(), 1, table.size(), stdout);
  }
}

}  // namespace

void add_import(CLI::App& app) {
  auto* im = app.add_subcommand(
      "import",
      "A sequential ONNX model (Conv, Relu, MaxPool, Flatten, Gemm, ...) as a spec and, with "
      "--weights, a checkpoint of its weights; or a Keras Sequential model's to_json() as a spec");
  static ImportArgs a;
  im->add_option("MODEL", a.model_path, "an ONNX model (.onnx) or a Keras config (.json)")
      ->required();
  im->add_option("-o,--output", a.out_path, "write the spec here (default: stdout)");
  im->add_option("--weights", a.weights_path, "write the weights as a checkpoint (.safetensors)");
  im->callback([] { run_import(a); });

  auto* ex = app.add_subcommand(
      "export", "A checkpoint as an ONNX model (opset " + std::to_string(kOnnxExportOpset) +
                    "): input [N,C,H,W] pixels / 255, output the class probabilities");
  static std::string ck_path, out_path;
  ex->add_option("CHECKPOINT", ck_path, "a .safetensors checkpoint")->required();
  ex->add_option("-o,--output", out_path, "the ONNX file to write")->required();
  ex->callback([] {
    check_writable(out_path, "--output");
    Checkpoint ck = load_checkpoint(ck_path);
    Model model = model_of(ck, ck_path);
    export_onnx(out_path, model, ck.state.params);
    std::printf(
        "%s -> %s: ONNX opset %d, %zu layers, %s parameters; input [N,%d,%d,%d] "
        "(pixels / 255), output probabilities [N,%d]\n",
        ck_path.c_str(), out_path.c_str(), kOnnxExportOpset, model.layers.size(),
        thousands(model.total_params).c_str(), model.input.c, model.input.h, model.input.w,
        model.classes);
  });
}

}  // namespace splitconv::cli
