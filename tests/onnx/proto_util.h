// What the ONNX tests that edit graphs share: read a model, write an edited one to a file of
// this process, find a node by its op.
#pragma once
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace splitconv::testing {

inline ONNX_NAMESPACE::ModelProto load_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ONNX_NAMESPACE::ModelProto m;
  EXPECT_TRUE(m.ParseFromIstream(&in)) << path;
  return m;
}

// Written to the temporary directory as splitconv-PREFIX-PID-NAME; returns the path.
inline std::string save_model(const ONNX_NAMESPACE::ModelProto& m, const std::string& prefix,
                              const std::string& name) {
  const std::filesystem::path p = std::filesystem::temp_directory_path() /
                                  ("splitconv-" + prefix + "-" + std::to_string(getpid()) + "-" + name);
  std::ofstream out(p, std::ios::binary);
  EXPECT_TRUE(m.SerializeToOstream(&out));
  return p.string();
}

inline ONNX_NAMESPACE::NodeProto* first_node(ONNX_NAMESPACE::ModelProto& m, const std::string& op) {
  for (auto& n : *m.mutable_graph()->mutable_node())
    if (n.op_type() == op) return &n;
  ADD_FAILURE() << "no " << op;
  return nullptr;
}

}  // namespace splitconv::testing
