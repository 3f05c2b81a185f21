// The .net parser (docs/design.md, Formats): one layer a line, '#' comments, KEY=VALUE options.
#include "splitconv/spec.h"

#include <charconv>
#include <fstream>
#include <map>
#include <sstream>

#include "splitconv/error.h"
#include "splitconv/format.h"
#include "splitconv/model.h"

namespace splitconv {
namespace {

struct LineParser {
  const std::string& source;
  int line;

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(source + ":" + std::to_string(line) + ": " + what);
  }

  // A size of the spec: a positive integer of at most kMaxDim (docs/design.md, Size limits).
  int positive(const std::string& tok, const char* what) const {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    const bool digits = ec != std::errc::invalid_argument && p == tok.data() + tok.size();
    if (digits && (ec == std::errc::result_out_of_range || v > kMaxDim)) over_limit(what, tok);
    if (!digits || ec != std::errc() || v <= 0)
      fail(std::string("expected ") + what + " (a positive integer), got '" + tok + "'");
    return int(v);
  }

  [[noreturn]] void over_limit(const char* what, const std::string& tok) const {
    fail(std::string(what) + " " + tok + " is over the limit of " + thousands(kMaxDim) +
         " per dimension");
  }

  // "3x3", "3x1", "28x28x1": `parts` positive integers of at most kMaxDim separated by 'x'
  std::vector<int> dims(const std::string& tok, size_t parts, const char* what) const {
    std::vector<int> out;
    std::string too_big;
    size_t start = 0;
    while (true) {
      size_t x = tok.find_first_of("xX", start);
      std::string piece = tok.substr(start, x == std::string::npos ? std::string::npos : x - start);
      if (piece.empty()) break;
      int64_t v = 0;
      auto [p, ec] = std::from_chars(piece.data(), piece.data() + piece.size(), v);
      if (ec == std::errc::invalid_argument || p != piece.data() + piece.size()) break;
      if (ec == std::errc::result_out_of_range || v > kMaxDim) {
        if (too_big.empty()) too_big = piece;
        v = 1;  // keep counting the parts: the limit is the fault only when the form is right
      } else if (v <= 0) {
        break;
      }
      out.push_back(int(v));
      if (x == std::string::npos) break;
      start = x + 1;
    }
    if (out.size() != parts) fail(std::string("expected ") + what + ", got '" + tok + "'");
    if (!too_big.empty())
      fail("'" + tok + "': " + too_big + " is over the limit of " + thousands(kMaxDim) +
           " per dimension");
    return out;
  }
};

std::vector<std::string> tokens(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string t; in >> t;) out.push_back(t);
  return out;
}

bool is_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char ch : s)
    if (!(isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-')) return false;
  return isalpha(static_cast<unsigned char>(s[0]));
}

// Options after the positional words: relu|none|softmax, stride=S, padding=P, name=N
void parse_options(const LineParser& p, const std::vector<std::string>& tok, size_t from,
                   LayerSpec& layer, bool allow_act, bool allow_softmax, bool allow_padding,
                   bool allow_stride) {
  bool have_act = false;
  for (size_t i = from; i < tok.size(); ++i) {
    const std::string& t = tok[i];
    auto eq = t.find('=');
    if (eq == std::string::npos) {
      if (!allow_act) p.fail("unexpected '" + t + "'");
      if (have_act) p.fail("activation given twice ('" + t + "')");
      if (t == "relu") layer.activation = Activation::Relu;
      else if (t == "none" || t == "linear") layer.activation = Activation::None;
      else if (t == "softmax" && allow_softmax) layer.activation = Activation::Softmax;
      else
        p.fail(std::string("expected an activation (relu|none") +
               (allow_softmax ? "|softmax" : "") + ") or KEY=VALUE, got '" + t + "'");
      have_act = true;
      continue;
    }
    std::string key = t.substr(0, eq), value = t.substr(eq + 1);
    if (key == "name") {
      if (!is_name(value)) p.fail("expected name=NAME (letters, digits, _ or -), got '" + t + "'");
      layer.name = value;
    } else if (key == "stride" && allow_stride) {
      layer.stride = p.positive(value, "stride=S");
    } else if (key == "padding" && allow_padding) {
      if (value == "valid") layer.padding = Padding::Valid;
      else if (value == "same") layer.padding = Padding::Same;
      else p.fail("expected padding=valid|same, got '" + t + "'");
    } else {
      p.fail("unknown option '" + key + "' for " + tok[0]);
    }
  }
}

}  // namespace

Spec parse_spec(std::string_view text, const std::string& source) {
  Spec spec;
  spec.source = source;
  std::map<std::string, int> counts;
  std::map<std::string, int> seen_names;
  std::istringstream in{std::string(text)};
  std::string raw;
  int lineno = 0;
  bool have_input = false;
  while (std::getline(in, raw)) {
    ++lineno;
    if (auto hash = raw.find('#'); hash != std::string::npos) raw.resize(hash);
    auto tok = tokens(raw);
    if (tok.empty()) continue;
    LineParser p{source, lineno};
    const std::string& kw = tok[0];
    if (kw == "input") {
      if (have_input) p.fail("a second 'input' line");
      if (!spec.layers.empty()) p.fail("'input' must come before the layers");
      if (tok.size() != 2) p.fail("expected 'input HxWxC', e.g. 'input 28x28x1'");
      auto d = p.dims(tok[1], 3, "HxWxC, e.g. 28x28x1");
      spec.in_h = d[0], spec.in_w = d[1], spec.in_c = d[2];
      spec.input_line = lineno;
      have_input = true;
      continue;
    }
    if (!have_input) p.fail("expected 'input HxWxC' before the first layer, got '" + kw + "'");
    LayerSpec layer;
    layer.line = lineno;
    if (kw == "conv") {
      if (tok.size() < 3) p.fail("expected 'conv FILTERS KHxKW [relu|none] [stride=S] [padding=valid|same] [name=N]'");
      layer.kind = LayerKind::Conv;
      layer.units = p.positive(tok[1], "FILTERS");
      auto d = p.dims(tok[2], 2, "a kernel KHxKW, e.g. 3x3");
      layer.kh = d[0], layer.kw = d[1];
      parse_options(p, tok, 3, layer, true, false, true, true);
    } else if (kw == "maxpool") {
      if (tok.size() < 2) p.fail("expected 'maxpool PHxPW [stride=S] [name=N]'");
      layer.kind = LayerKind::MaxPool;
      auto d = p.dims(tok[1], 2, "a pool size PHxPW, e.g. 2x2");
      layer.kh = d[0], layer.kw = d[1];
      layer.stride = 0;
      parse_options(p, tok, 2, layer, false, false, false, true);
      if (layer.stride == 0) {
        if (layer.kh != layer.kw)
          p.fail("a non-square pool needs an explicit stride=S");
        layer.stride = layer.kh;
      }
    } else if (kw == "flatten") {
      layer.kind = LayerKind::Flatten;
      parse_options(p, tok, 1, layer, false, false, false, false);
    } else if (kw == "dense") {
      if (tok.size() < 2) p.fail("expected 'dense UNITS [relu|softmax|none] [name=N]'");
      layer.kind = LayerKind::Dense;
      layer.units = p.positive(tok[1], "UNITS");
      parse_options(p, tok, 2, layer, true, true, false, false);
    } else {
      p.fail("expected a layer (input, conv, maxpool, flatten, dense), got '" + kw + "'");
    }
    const char* prefix = layer.kind == LayerKind::Conv      ? "conv"
                         : layer.kind == LayerKind::MaxPool ? "pool"
                         : layer.kind == LayerKind::Dense   ? "dense"
                                                            : "flatten";
    int index = ++counts[prefix];
    if (layer.name.empty()) layer.name = prefix + std::to_string(index);
    if (auto it = seen_names.find(layer.name); it != seen_names.end())
      p.fail("layer name '" + layer.name + "' already used on line " + std::to_string(it->second));
    seen_names[layer.name] = lineno;
    spec.layers.push_back(layer);
  }
  if (!have_input) throw InputError(source + ": no 'input HxWxC' line");
  if (spec.layers.empty()) throw InputError(source + ": no layers after 'input'");
  return spec;
}

Spec load_spec(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path + ": cannot open model spec");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InputError(path + ": cannot read model spec");
  return parse_spec(text.str(), path);
}

const char* to_string(LayerKind kind) {
  switch (kind) {
    case LayerKind::Conv: return "conv";
    case LayerKind::MaxPool: return "maxpool";
    case LayerKind::Flatten: return "flatten";
    case LayerKind::Dense: return "dense";
  }
  return "?";
}

const char* to_string(Activation act) {
  switch (act) {
    case Activation::None: return "none";
    case Activation::Relu: return "relu";
    case Activation::Softmax: return "softmax";
  }
  return "?";
}

const char* to_string(Padding pad) { return pad == Padding::Same ? "same" : "valid"; }

std::string format_spec(const Spec& spec, const std::string& title) {
  std::ostringstream out;
  if (!title.empty()) out << "# " << title << "\n";
  out << "input " << spec.in_h << "x" << spec.in_w << "x" << spec.in_c << "\n";
  std::map<std::string, int> counts;
  for (const auto& l : spec.layers) {
    const char* prefix = l.kind == LayerKind::Conv      ? "conv"
                         : l.kind == LayerKind::MaxPool ? "pool"
                         : l.kind == LayerKind::Dense   ? "dense"
                                                        : "flatten";
    std::string default_name = prefix + std::to_string(++counts[prefix]);
    out << to_string(l.kind);
    switch (l.kind) {
      case LayerKind::Conv:
        out << " " << l.units << " " << l.kh << "x" << l.kw << " " << to_string(l.activation);
        if (l.stride != 1) out << " stride=" << l.stride;
        if (l.padding == Padding::Same) out << " padding=same";
        break;
      case LayerKind::MaxPool:
        out << " " << l.kh << "x" << l.kw;
        if (l.stride != l.kh || l.kh != l.kw) out << " stride=" << l.stride;
        break;
      case LayerKind::Flatten: break;
      case LayerKind::Dense: out << " " << l.units << " " << to_string(l.activation); break;
    }
    if (l.name != default_name) out << " name=" << l.name;
    out << "\n";
  }
  return out.str();
}

}  // namespace splitconv
