// Reading an ONNX file that no one vouches for: parsing within protobuf's limit, and tensors
// checked against their dims before any use (docs/design.md, ONNX import and export).
#pragma once
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace splitconv::onnx_detail {

namespace pb = ONNX_NAMESPACE;

// The batch, in the integer vectors that Shape, Gather, Unsqueeze and Concat compute.
inline constexpr int64_t kBatch = INT64_MIN;

// "[1,N,3]" (kBatch as N).
std::string ints_text(const std::vector<int64_t>& v);

// Reads and parses PATH (at most 2 GiB, protobuf's own logging silenced) and checks it is an
// ONNX model with a graph and an opset of the default domain in the range import reads;
// returns that opset. Throws InputError "PATH: fault".
int read_model_file(const std::string& path, pb::ModelProto& model);

struct TensorInfo {
  std::vector<int64_t> dims;
  int64_t count = 0;
};
// Checks a tensor before any use: dims non-negative with a product of at most kMaxTensor,
// data in the file (not external) and, for float32, int64, int32 and bool, exactly as many
// elements as the dims claim. WHAT names it in the message ("initializer", "constant").
TensorInfo check_tensor(const std::string& path, const std::string& name,
                        const pb::TensorProto& t, const std::string& what);

// The values of an int64 or int32 tensor already checked to hold `count` elements; nullopt
// for another type.
std::optional<std::vector<int64_t>> tensor_ints(const pb::TensorProto& t, int64_t count);

// A node's attributes, read by name: nullopt (or the default) when absent; an attribute of
// another type fails through the reader's own fail(node, fault), which names the file and the
// node. A reader derives from NodeAttributes<Reader> and befriends it.
template <class Reader>
class NodeAttributes {
 public:
  const pb::AttributeProto* attr(const pb::NodeProto& n, const char* name) const {
    for (const auto& a : n.attribute())
      if (a.name() == name) return &a;
    return nullptr;
  }
  std::optional<int64_t> attr_int(const pb::NodeProto& n, const char* name) const {
    const auto* a = typed(n, name, pb::AttributeProto::INT, "an integer");
    return a ? std::optional<int64_t>(a->i()) : std::nullopt;
  }
  std::optional<float> attr_float(const pb::NodeProto& n, const char* name) const {
    const auto* a = typed(n, name, pb::AttributeProto::FLOAT, "a float");
    return a ? std::optional<float>(a->f()) : std::nullopt;
  }
  std::optional<std::vector<int64_t>> attr_ints(const pb::NodeProto& n, const char* name) const {
    const auto* a = typed(n, name, pb::AttributeProto::INTS, "a list of integers");
    if (!a) return std::nullopt;
    return std::vector<int64_t>(a->ints().begin(), a->ints().end());
  }
  std::string attr_string(const pb::NodeProto& n, const char* name,
                          const std::string& def) const {
    const auto* a = typed(n, name, pb::AttributeProto::STRING, "a string");
    return a ? a->s() : def;
  }

 private:
  const pb::AttributeProto* typed(const pb::NodeProto& n, const char* name,
                                  pb::AttributeProto::AttributeType type, const char* what) const {
    const auto* a = attr(n, name);
    if (a && a->type() != type)
      static_cast<const Reader&>(*this).fail(n, std::string("attribute ") + name + " is not " + what);
    return a;
  }
};

}  // namespace splitconv::onnx_detail
