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

// What every reader of a graph's nodes shares: the file it reads, the index of the node at
// hand, failing with a line that names both ("PATH: node NAME (OP): fault", a node without a
// name as #INDEX), and the node's attributes read by name: nullopt (or the default) when
// absent, an attribute of another type a failure.
class NodeReader {
 public:
  explicit NodeReader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const std::string& fault) const;
  [[noreturn]] void fail(const pb::NodeProto& n, const std::string& fault) const;
  std::string node_name(const pb::NodeProto& n) const;

  const pb::AttributeProto* attr(const pb::NodeProto& n, const char* name) const;
  std::optional<int64_t> attr_int(const pb::NodeProto& n, const char* name) const;
  std::optional<float> attr_float(const pb::NodeProto& n, const char* name) const;
  std::optional<std::vector<int64_t>> attr_ints(const pb::NodeProto& n, const char* name) const;
  std::string attr_string(const pb::NodeProto& n, const char* name, const std::string& def) const;

 protected:
  std::string path_;
  int node_index_ = 0;  // the node being read (its name when it has none)

 private:
  const pb::AttributeProto* typed(const pb::NodeProto& n, const char* name,
                                  pb::AttributeProto::AttributeType type, const char* what) const;
};

}  // namespace splitconv::onnx_detail
