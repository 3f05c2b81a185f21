// Checkpoints as safetensors (docs/design.md, Formats): an 8-byte little-endian header length,
// a JSON header naming each tensor's dtype, shape and byte range, then the tensors' bytes.
//
// The reader trusts nothing: every length, offset, dtype and shape is checked against the
// file and against the model that the spec in the file builds, before a byte is copied.
#include "splitconv/checkpoint.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "splitconv/error.h"
#include "splitconv/files.h"
#include "splitconv/spec.h"

namespace splitconv {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr const char* kMPrefix = "optimizer.m.";
constexpr const char* kVPrefix = "optimizer.v.";
constexpr uint64_t kMaxHeader = uint64_t(100) << 20;  // safetensors' own limit

// Floats are stored little-endian; on a big-endian host each is byte-swapped.
void floats_to_le(const float* src, size_t n, std::vector<uint8_t>& out) {
  size_t at = out.size();
  out.resize(at + n * 4);
  std::memcpy(out.data() + at, src, n * 4);
  if constexpr (std::endian::native == std::endian::big) {
    for (size_t i = 0; i < n; ++i) std::reverse(out.begin() + at + 4 * i, out.begin() + at + 4 * i + 4);
  }
}

void floats_from_le(const uint8_t* src, size_t n, float* dst) {
  std::memcpy(dst, src, n * 4);
  if constexpr (std::endian::native == std::endian::big) {
    auto* b = reinterpret_cast<uint8_t*>(dst);
    for (size_t i = 0; i < n; ++i) std::reverse(b + 4 * i, b + 4 * i + 4);
  }
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

// --- writing ---

// One tensor of the file: its name and where its floats are.
struct OutTensor {
  std::string name;
  const ParamSlot* slot;
  const std::vector<float>* buffer;
};

std::vector<uint8_t> serialise(const Model& model, const Checkpoint& ck) {
  const TrainState& st = ck.state;
  std::vector<OutTensor> tensors;
  for (const auto& s : model.slots) tensors.push_back({s.name, &s, &st.params});
  if (!st.m.empty()) {
    for (const auto& s : model.slots) tensors.push_back({kMPrefix + s.name, &s, &st.m});
    for (const auto& s : model.slots) tensors.push_back({kVPrefix + s.name, &s, &st.v});
  }

  ordered_json header = ordered_json::object();
  header["__metadata__"] = {
      {"format", kCheckpointFormat},
      {"spec", ck.spec_text.empty() ? format_spec(model.spec) : ck.spec_text},
      {"dataset", ck.dataset},
      {"step", std::to_string(st.step)},
      {"epoch", std::to_string(st.epoch)},
  };
  // Only an interrupted run's checkpoint is inside an epoch; others keep their old bytes.
  if (st.epoch_step > 0) header["__metadata__"]["epoch_step"] = std::to_string(st.epoch_step);
  if (!ck.train_config.empty()) header["__metadata__"]["train_config"] = ck.train_config;
  int64_t at = 0;
  for (const auto& t : tensors) {
    int64_t bytes = t.slot->size * 4;
    header[t.name] = {{"dtype", "F32"}, {"shape", t.slot->shape}, {"data_offsets", {at, at + bytes}}};
    at += bytes;
  }
  std::string text = header.dump();
  // Pad with spaces so the data starts 8-byte aligned, as the safetensors library does.
  text.append((8 - text.size() % 8) % 8, ' ');

  std::vector<uint8_t> out;
  out.reserve(8 + text.size() + size_t(at));
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(n >> (8 * i)));
  out.insert(out.end(), text.begin(), text.end());
  for (const auto& t : tensors) {
    floats_to_le(t.buffer->data() + t.slot->offset, size_t(t.slot->size), out);
  }
  return out;
}

void check_state(const std::string& path, const Model& model, const TrainState& st) {
  auto want = size_t(model.param_floats);
  if (st.params.size() != want) {
    throw Error(path + ": cannot save: " + std::to_string(st.params.size()) +
                " parameters for a model of " + std::to_string(want));
  }
  if (!(st.m.empty() && st.v.empty()) && (st.m.size() != want || st.v.size() != want)) {
    throw Error(path + ": cannot save: optimizer state of " + std::to_string(st.m.size()) + "/" +
                std::to_string(st.v.size()) + " floats for a model of " + std::to_string(want));
  }
}

// A file whose spec builds another model could never be loaded: refuse to write it.
void check_spec(const std::string& path, const Model& model, const std::string& text) {
  if (text.empty()) return;  // format_spec(model.spec) is written instead
  bool same = false;
  try {
    Model built = build_model(parse_spec(text, path + ":spec"));
    same = built.slots.size() == model.slots.size() && built.param_floats == model.param_floats;
    for (size_t i = 0; same && i < built.slots.size(); ++i) {
      same = built.slots[i].name == model.slots[i].name && built.slots[i].shape == model.slots[i].shape &&
             built.slots[i].offset == model.slots[i].offset;
    }
  } catch (const InputError& e) {
    throw Error(path + ": cannot save: the checkpoint's spec text does not parse: " + e.what());
  }
  if (!same) throw Error(path + ": cannot save: the checkpoint's spec text describes another model");
}

// --- reading ---

struct InTensor {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // within the data section
};

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw InputError(path + ": cannot open: " + std::strerror(errno));
  std::streamoff size = in.tellg();
  if (size < 0) throw InputError(path + ": cannot read (not a regular file?)");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(reinterpret_cast<char*>(bytes.data()), size)) {
    throw InputError(path + ": cannot read: " + std::strerror(errno));
  }
  return bytes;
}

uint64_t to_u64(const std::string& path, const std::string& what, const nlohmann::json& v) {
  if (!v.is_number_unsigned()) {
    throw InputError(path + ": " + what + " is " + v.dump() + ", not a non-negative integer");
  }
  return v.get<uint64_t>();
}

InTensor parse_tensor(const std::string& path, const std::string& name, const nlohmann::json& j,
                      uint64_t data_size) {
  std::string where = "tensor " + name;
  if (!j.is_object()) throw InputError(path + ": " + where + " is not a JSON object");
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!j.contains(key)) throw InputError(path + ": " + where + " has no " + key);
  }
  const auto& dtype = j["dtype"];
  if (!dtype.is_string() || dtype.get<std::string>() != "F32") {
    throw InputError(path + ": " + where + " has dtype " + dtype.dump() + "; only F32 is read");
  }
  InTensor t;
  t.name = name;
  const auto& shape = j["shape"];
  if (!shape.is_array()) throw InputError(path + ": " + where + ": shape is not an array");
  uint64_t elems = 1;
  for (const auto& d : shape) {
    uint64_t v = to_u64(path, where + " shape entry", d);
    // The product is bounded by the data size, so it cannot overflow before the check.
    if (v != 0 && elems > data_size / v) {
      throw InputError(path + ": " + where + ": shape " + shape.dump() + " is larger than the file");
    }
    elems *= v;
    t.shape.push_back(int64_t(v));
  }
  const auto& off = j["data_offsets"];
  if (!off.is_array() || off.size() != 2) {
    throw InputError(path + ": " + where + ": data_offsets is " + off.dump() + ", not [begin,end]");
  }
  t.begin = to_u64(path, where + " data_offsets", off[0]);
  t.end = to_u64(path, where + " data_offsets", off[1]);
  // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "[" + std::string&&.
  std::string range("[");
  range.append(std::to_string(t.begin)).append(",").append(std::to_string(t.end)).append("]");
  if (t.end < t.begin) throw InputError(path + ": " + where + ": data_offsets " + range + " run backwards");
  if (t.end > data_size) {
    throw InputError(path + ": " + where + ": data_offsets " + range + " run past the end of the data (" +
                     std::to_string(data_size) + " bytes)");
  }
  if (t.end - t.begin != elems * 4) {
    throw InputError(path + ": " + where + ": " + std::to_string(t.end - t.begin) +
                     " bytes for shape " + shape_text(t.shape) + " of F32 (" +
                     std::to_string(elems * 4) + " bytes)");
  }
  return t;
}

// The byte ranges must tile the data section exactly: in order, no overlap, no gap.
void check_layout(const std::string& path, std::vector<const InTensor*> order, uint64_t data_size) {
  std::sort(order.begin(), order.end(), [](const InTensor* a, const InTensor* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t at = 0;
  const InTensor* prev = nullptr;
  for (const InTensor* t : order) {
    if (t->begin < at) {
      throw InputError(path + ": tensors " + prev->name + " and " + t->name + " overlap (bytes " +
                       std::to_string(prev->begin) + ".." + std::to_string(prev->end) + " and " +
                       std::to_string(t->begin) + ".." + std::to_string(t->end) + ")");
    }
    if (t->begin > at) {
      throw InputError(path + ": " + std::to_string(t->begin - at) + " unclaimed bytes before tensor " +
                       t->name + " (at byte " + std::to_string(at) + " of the data)");
    }
    at = t->end;
    prev = t;
  }
  if (at != data_size) {
    throw InputError(path + ": " + std::to_string(data_size - at) +
                     " bytes after the last tensor that no tensor claims");
  }
}

std::string metadata_string(const std::string& path, const nlohmann::json& meta, const char* key,
                            bool required) {
  if (!meta.contains(key)) {
    if (required) throw InputError(path + ": __metadata__ has no \"" + key + "\"");
    return "";
  }
  if (!meta[key].is_string()) throw InputError(path + ": __metadata__ \"" + key + "\" is not a string");
  return meta[key].get<std::string>();
}

int64_t metadata_count(const std::string& path, const nlohmann::json& meta, const char* key) {
  std::string s = metadata_string(path, meta, key, false);
  if (s.empty()) return 0;
  bool digits = s.size() <= 18 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits) throw InputError(path + ": __metadata__ \"" + key + "\" is \"" + s + "\", not a count");
  return std::stoll(s);
}

// Runs a spec step, making sure the message names the checkpoint.
template <class F>
auto naming(const std::string& path, F&& f) {
  try {
    return f();
  } catch (const InputError& e) {
    std::string msg = e.what();
    if (msg.rfind(path, 0) == 0) throw;
    throw InputError(path + ": spec: " + msg);
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const Model& model, const Checkpoint& ck) {
  check_state(path, model, ck.state);
  check_spec(path, model, ck.spec_text);
  std::vector<uint8_t> bytes = serialise(model, ck);
  write_file_atomic(path, {{bytes.data(), bytes.size()}}, "checkpoint");
}

Checkpoint load_checkpoint(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path);
  if (bytes.size() < 8) {
    throw InputError(path + ": truncated: " + std::to_string(bytes.size()) +
                     " bytes, too short for a safetensors header");
  }
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(bytes[size_t(i)]) << (8 * i);
  if (n > bytes.size() - 8) {
    throw InputError(path + ": header length " + std::to_string(n) + " runs past the end of the file (" +
                     std::to_string(bytes.size()) + " bytes)");
  }
  if (n > kMaxHeader) {
    throw InputError(path + ": header length " + std::to_string(n) + " is implausible (over 100 MiB)");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + std::ptrdiff_t(n));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path + ": header is not valid JSON: " + e.what());
  }
  if (!header.is_object()) throw InputError(path + ": header is not a JSON object");
  const uint8_t* data = bytes.data() + 8 + n;
  uint64_t data_size = bytes.size() - 8 - n;

  // Metadata first: without the spec nothing else can be checked.
  if (!header.contains("__metadata__") || !header["__metadata__"].is_object()) {
    throw InputError(path + ": no __metadata__ object: not a splitconv checkpoint");
  }
  const auto& meta = header["__metadata__"];
  std::string format = metadata_string(path, meta, "format", true);
  if (format != kCheckpointFormat) {
    throw InputError(path + ": unknown checkpoint format \"" + format + "\" (this build reads " +
                     kCheckpointFormat + ")");
  }
  Checkpoint ck;
  ck.spec_text = metadata_string(path, meta, "spec", true);
  ck.dataset = metadata_string(path, meta, "dataset", false);
  ck.state.step = metadata_count(path, meta, "step");
  ck.state.epoch = int(std::min<int64_t>(metadata_count(path, meta, "epoch"), INT32_MAX));
  ck.state.epoch_step = metadata_count(path, meta, "epoch_step");
  ck.train_config = metadata_string(path, meta, "train_config", false);
  if (!ck.train_config.empty()) {
    const auto cfg = nlohmann::json::parse(ck.train_config, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object())
      throw InputError(path + ": __metadata__ \"train_config\" is not a JSON object");
  }
  Model model = naming(path, [&] { return build_model(parse_spec(ck.spec_text, path + ":spec")); });

  std::map<std::string, InTensor> tensors;
  for (const auto& [name, value] : header.items()) {
    if (name != "__metadata__") tensors.emplace(name, parse_tensor(path, name, value, data_size));
  }
  std::vector<const InTensor*> order;
  for (const auto& [name, t] : tensors) order.push_back(&t);
  check_layout(path, order, data_size);

  // Every tensor must be one the model expects, with the model's shape.
  std::map<std::string, const ParamSlot*> expected;
  for (const auto& s : model.slots) {
    expected[s.name] = &s;
    expected[kMPrefix + s.name] = &s;
    expected[kVPrefix + s.name] = &s;
  }
  size_t optimizer = 0;
  for (const auto& [name, t] : tensors) {
    auto it = expected.find(name);
    if (it == expected.end()) {
      throw InputError(path + ": unexpected tensor " + name + " (the spec's model has no such parameter)");
    }
    if (t.shape != it->second->shape) {
      throw InputError(path + ": tensor " + name + " has shape " + shape_text(t.shape) +
                       ", the spec's model needs " + shape_text(it->second->shape));
    }
    if (name.rfind("optimizer.", 0) == 0) ++optimizer;
  }
  for (const auto& s : model.slots) {
    if (!tensors.count(s.name)) throw InputError(path + ": tensor " + s.name + " is missing");
  }
  bool resumable = optimizer > 0;
  if (resumable) {
    for (const auto& s : model.slots) {
      for (const char* prefix : {kMPrefix, kVPrefix}) {
        if (!tensors.count(prefix + s.name)) {
          throw InputError(path + ": optimizer state is incomplete: tensor " + prefix + s.name +
                           " is missing");
        }
      }
    }
  }

  auto fill = [&](const std::string& prefix, std::vector<float>& buf) {
    buf.assign(size_t(model.param_floats), 0.0f);
    for (const auto& s : model.slots) {
      const InTensor& t = tensors.at(prefix + s.name);
      floats_from_le(data + t.begin, size_t(s.size), buf.data() + s.offset);
    }
  };
  fill("", ck.state.params);
  if (resumable) {
    fill(kMPrefix, ck.state.m);
    fill(kVPrefix, ck.state.v);
  }
  return ck;
}

Model model_of(const Checkpoint& ck, const std::string& path) {
  Model model = naming(path, [&] { return build_model(parse_spec(ck.spec_text, path + ":spec")); });
  auto want = size_t(model.param_floats);
  if (ck.state.params.size() != want) {
    throw InputError(path + ": " + std::to_string(ck.state.params.size()) +
                     " parameters, but the spec's model has " + std::to_string(want));
  }
  if (!(ck.state.m.empty() && ck.state.v.empty()) && (ck.state.m.size() != want || ck.state.v.size() != want)) {
    throw InputError(path + ": optimizer state does not fit the spec's model");
  }
  return model;
}

}  // namespace splitconv
