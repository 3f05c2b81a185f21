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

}  // namespace splitconv::onnx_detail
