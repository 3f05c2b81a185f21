// Reading an ONNX file that no one vouches for (docs/design.md, ONNX import and export): what
// import and the graph analysis share.
#include "onnx_read.h"

#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>

#include "splitconv/error.h"
#include "splitconv/model.h"
#include "splitconv/onnx.h"

namespace splitconv::onnx_detail {
namespace {

// protobuf reads messages up to 2 GiB.
constexpr int64_t kMaxFile = int64_t(INT32_MAX);

// Silences protobuf's own log lines while a file is parsed: the caller reports the fault
// in one line of its own.
class QuietProtobuf {
 public:
  QuietProtobuf() : old_(google::protobuf::SetLogHandler(&Drop)) {}
  ~QuietProtobuf() { google::protobuf::SetLogHandler(old_); }
  QuietProtobuf(const QuietProtobuf&) = delete;
  QuietProtobuf& operator=(const QuietProtobuf&) = delete;

 private:
  static void Drop(google::protobuf::LogLevel, const char*, int, const std::string&) {}
  google::protobuf::LogHandler* old_;
};

}  // namespace

std::string ints_text(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ",";
    s += v[i] == kBatch ? "N" : std::to_string(v[i]);
  }
  return s + "]";
}

int read_model_file(const std::string& path_, pb::ModelProto& model_) {
  auto fail = [&](const std::string& fault) { throw InputError(path_ + ": " + fault); };
  std::string bytes_;
  int opset_ = 0;
  std::ifstream in(path_, std::ios::binary | std::ios::ate);
  if (!in) fail(std::string("cannot open: ") + std::strerror(errno));
  const std::streamoff size = in.tellg();
  if (size < 0) fail("cannot read (not a regular file?)");
  if (size > kMaxFile)
    fail("is " + std::to_string(size) +
         " bytes; an ONNX protobuf is at most 2 GiB (a model with "
         "external data is not read)");
  bytes_.resize(size_t(size));
  in.seekg(0);
  if (size > 0 && !in.read(bytes_.data(), size))
    fail(std::string("cannot read: ") + std::strerror(errno));
  bool parsed = false;
  {
    QuietProtobuf quiet;
    parsed = model_.ParseFromString(bytes_);
  }
  if (!parsed) fail("not an ONNX model: the protobuf does not parse (truncated or corrupt file)");
  bytes_.clear();
  bytes_.shrink_to_fit();
  if (model_.ir_version() <= 0) fail("not an ONNX model: no ir_version");
  if (!model_.has_graph()) fail("not an ONNX model: no graph");
  for (const auto& o : model_.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") {
      if (o.version() < kOnnxMinOpset || o.version() > kOnnxMaxOpset)
        fail("opset " + std::to_string(o.version()) +
             " of the default domain; import reads opsets " + std::to_string(kOnnxMinOpset) +
             " to " + std::to_string(kOnnxMaxOpset));
      opset_ = int(o.version());
    }
  }
  if (opset_ == 0) fail("imports no opset of the default ONNX domain");
  return opset_;
}

TensorInfo check_tensor(const std::string& path, const std::string& name,
                        const pb::TensorProto& t, const std::string& what) {
  auto fail = [&](const std::string& fault) { throw InputError(path + ": " + fault); };
  TensorInfo c;
  int64_t count = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) fail(what + " " + name + " has a negative dimension " + std::to_string(d));
    count = product_within(count, d, kMaxTensor);
    if (count < 0)
      fail(what + " " + name + ": dims " + ints_text({t.dims().begin(), t.dims().end()}) +
           " exceed " + std::to_string(kMaxTensor) + " elements");
    c.dims.push_back(d);
  }
  c.count = count;
  if (t.data_location() == pb::TensorProto::EXTERNAL || t.external_data_size() > 0)
    fail(what + " " + name +
         " is stored in an external file; import reads tensors stored in the model");
  // The data must hold exactly the elements the dims claim, in one of the fields.
  int width = 0;
  int64_t field = -1;
  switch (t.data_type()) {
    case pb::TensorProto::FLOAT:
      width = 4, field = t.float_data_size();
      break;
    case pb::TensorProto::INT64:
      width = 8, field = t.int64_data_size();
      break;
    case pb::TensorProto::INT32:
      width = 4, field = t.int32_data_size();
      break;
    case pb::TensorProto::BOOL:  // one byte each in raw_data, else one int32_data entry each
      width = 1, field = t.int32_data_size();
      break;
    default:
      break;  // other types are refused where they are used
  }
  if (width > 0) {
    const int64_t have = t.has_raw_data() ? int64_t(t.raw_data().size()) / width : field;
    const bool exact =
        t.has_raw_data() ? int64_t(t.raw_data().size()) == count * width : field == count;
    if (!exact)
      fail(what + " " + name + ": dims " + ints_text(c.dims) + " claim " + std::to_string(count) +
           " elements but its data holds " +
           (t.has_raw_data() ? std::to_string(t.raw_data().size()) + " bytes"
                             : std::to_string(have)));
  }
  return c;
}

std::optional<std::vector<int64_t>> tensor_ints(const pb::TensorProto& t, int64_t count) {
  std::vector<int64_t> v(static_cast<size_t>(count));
  if (t.data_type() == pb::TensorProto::INT64) {
    if (t.has_raw_data()) {
      for (size_t i = 0; i < v.size(); ++i) {
        uint64_t u = 0;
        for (int b = 0; b < 8; ++b)
          u |= uint64_t(uint8_t(t.raw_data()[8 * i + size_t(b)])) << (8 * b);
        v[i] = int64_t(u);
      }
    } else {
      std::copy(t.int64_data().begin(), t.int64_data().end(), v.begin());
    }
  } else if (t.data_type() == pb::TensorProto::INT32) {
    if (t.has_raw_data()) {
      for (size_t i = 0; i < v.size(); ++i) {
        uint32_t u = 0;
        for (int b = 0; b < 4; ++b)
          u |= uint32_t(uint8_t(t.raw_data()[4 * i + size_t(b)])) << (8 * b);
        v[i] = int32_t(u);
      }
    } else {
      std::copy(t.int32_data().begin(), t.int32_data().end(), v.begin());
    }
  } else {
    return std::nullopt;
  }
  return v;
}

void NodeReader::fail(const std::string& fault) const { throw InputError(path_ + ": " + fault); }

void NodeReader::fail(const pb::NodeProto& n, const std::string& fault) const {
  fail("node " + node_name(n) + " (" + n.op_type() + "): " + fault);
}

std::string NodeReader::node_name(const pb::NodeProto& n) const {
  return n.name().empty() ? "#" + std::to_string(node_index_) : n.name();
}

const pb::AttributeProto* NodeReader::attr(const pb::NodeProto& n, const char* name) const {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

const pb::AttributeProto* NodeReader::typed(const pb::NodeProto& n, const char* name,
                                            pb::AttributeProto::AttributeType type,
                                            const char* what) const {
  const auto* a = attr(n, name);
  if (a && a->type() != type) fail(n, std::string("attribute ") + name + " is not " + what);
  return a;
}

std::optional<int64_t> NodeReader::attr_int(const pb::NodeProto& n, const char* name) const {
  const auto* a = typed(n, name, pb::AttributeProto::INT, "an integer");
  return a ? std::optional<int64_t>(a->i()) : std::nullopt;
}

std::optional<float> NodeReader::attr_float(const pb::NodeProto& n, const char* name) const {
  const auto* a = typed(n, name, pb::AttributeProto::FLOAT, "a float");
  return a ? std::optional<float>(a->f()) : std::nullopt;
}

std::optional<std::vector<int64_t>> NodeReader::attr_ints(const pb::NodeProto& n,
                                                          const char* name) const {
  const auto* a = typed(n, name, pb::AttributeProto::INTS, "a list of integers");
  if (!a) return std::nullopt;
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

std::string NodeReader::attr_string(const pb::NodeProto& n, const char* name,
                                    const std::string& def) const {
  const auto* a = typed(n, name, pb::AttributeProto::STRING, "a string");
  return a ? a->s() : def;
}

}  // namespace splitconv::onnx_detail
