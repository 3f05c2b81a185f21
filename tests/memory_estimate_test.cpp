// The memory estimate as people see it: `analyze` (per model, at --batch and --threads) and
// `train --verbose` show what the CPU engine would allocate, CpuEngine::memory_needed (which
// tests/cpu_engine_test.cpp checks against the buffers the engine holds).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "cpu/cpu_engine.h"
#include "run_cli.h"
#include "splitconv/backend.h"
#include "splitconv/data.h"
#include "splitconv/error.h"
#include "splitconv/format.h"
#include "splitconv/model.h"
#include "splitconv/spec.h"

namespace fs = std::filesystem;
using splitconv::testing::run_cli;

namespace {

const std::string src = SPLITCONV_SOURCE_DIR;

class MemoryEstimate : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "splitconv-memory-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
    return dir_ + "/" + name;
  }
  static splitconv::cpu::CpuMemory needed(const std::string& spec_path, int batch, int threads) {
    auto model = splitconv::build_model(splitconv::load_spec(spec_path));
    return splitconv::cpu::CpuEngine::memory_needed(model, batch, threads);
  }

  std::string dir_;
};

}  // namespace

TEST_F(MemoryEstimate, AnalyzeShowsTheCpuEnginesBytesAtTheBatchAndThreadsAsked) {
  const std::string model = src + "/models/seed-v0.net", json = dir_ + "/a.json";
  auto r = run_cli("analyze " + model + " --batch 64 --threads 3 --json " + json);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto need = needed(model, 64, 3);
  ASSERT_GT(need.parameters, 0);
  ASSERT_GT(need.activations, 0);
  ASSERT_GT(need.workspace, 0);
  EXPECT_NE(
      r.out.find("memory to train at batch 64 on the CPU, 3 threads: " +
                 splitconv::bytes_text(need.total()) + " (parameters, gradients and Adam state " +
                 splitconv::bytes_text(need.parameters) + ", activations " +
                 splitconv::bytes_text(need.activations) + ", workspace " +
                 splitconv::bytes_text(need.workspace) + ")"),
      std::string::npos)
      << r.out;
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in)["memory"];
  EXPECT_EQ(j["device"], "cpu");
  EXPECT_EQ(j["batch"], 64);
  EXPECT_EQ(j["parameters"], need.parameters);
  EXPECT_EQ(j["activations"], need.activations);
  EXPECT_EQ(j["workspace"], need.workspace);
  EXPECT_EQ(j["total"], need.total());
}

TEST_F(MemoryEstimate, AnalyzeEstimatesEachModelAndGrowsWithTheBatch) {
  const std::string v0 = src + "/models/seed-v0.net", v1 = src + "/models/seed-v1.net";
  const std::string small = dir_ + "/small.json", large = dir_ + "/large.json";
  auto a = run_cli("analyze " + v0 + " " + v1 + " --threads 1 --json " + small);
  auto b = run_cli("analyze " + v0 + " " + v1 + " --threads 1 --batch 512 --json " + large);
  ASSERT_EQ(a.code, 0) << a.err;
  ASSERT_EQ(b.code, 0) << b.err;
  std::ifstream sin(small), lin(large);
  const auto s = nlohmann::json::parse(sin)["models"], l = nlohmann::json::parse(lin)["models"];
  ASSERT_EQ(s.size(), 2u);
  ASSERT_EQ(l.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const std::string model = i ? v1 : v0;
    EXPECT_EQ(s[i]["memory"]["batch"], 32) << "the default batch is train's";
    EXPECT_EQ(s[i]["memory"]["total"], needed(model, 32, 1).total()) << model;
    EXPECT_EQ(l[i]["memory"]["total"], needed(model, 512, 1).total()) << model;
    EXPECT_EQ(s[i]["memory"]["parameters"], l[i]["memory"]["parameters"]) << model;
    EXPECT_GT(l[i]["memory"]["activations"], s[i]["memory"]["activations"]) << model;
  }
  EXPECT_NE(s[0]["memory"]["total"], s[1]["memory"]["total"]);
}

TEST_F(MemoryEstimate, AModelThatCannotBePlannedAtTheBatchIsStillAnalyzed) {
  // One image's activations fit the limits (998×998×1,000), a batch of 65,536 of them do not.
  const std::string model = write("wide.net",
                                  "input 1000x1000x1\nconv 1000 3x3 relu\nflatten\n"
                                  "dense 2 softmax\n");
  const std::string json = dir_ + "/w.json";
  auto r = run_cli("analyze " + model + " --batch 65536 --json " + json);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("memory to train at batch 65536 on the CPU"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("cannot be planned: "), std::string::npos) << r.out;
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in)["memory"];
  EXPECT_TRUE(j.contains("error")) << j.dump();
  EXPECT_FALSE(j.contains("total")) << j.dump();
}

TEST_F(MemoryEstimate, AnalyzeRefusesABadThreadCountAndTimingOptionsWithoutTheMeasuredRule) {
  const std::string model = src + "/models/seed-v0.net";
  auto t = run_cli("analyze " + model + " --threads 5000");
  EXPECT_EQ(t.code, 2) << t.err;
  EXPECT_NE(t.err.find("--threads"), std::string::npos) << t.err;
  auto d = run_cli("analyze " + model + " --device cpu");
  EXPECT_EQ(d.code, 2) << d.err;
  EXPECT_NE(d.err.find("--device and --runs need --rule measured"), std::string::npos) << d.err;
}

TEST_F(MemoryEstimate, TrainVerboseShowsTheEstimateOfThePlanItRuns) {
  fs::create_directories(dir_ + "/mnist");
  for (auto [prefix, count] : {std::pair<const char*, int>{"train", 40}, {"t10k", 8}}) {
    splitconv::ImageSet set;
    set.count = count, set.h = 28, set.w = 28, set.c = 1;
    for (int64_t i = 0; i < count * 784; ++i) set.pixels.push_back(uint8_t((i * 37) % 251));
    for (int i = 0; i < count; ++i) set.labels.push_back(uint8_t(i % 10));
    splitconv::write_idx_images(dir_ + "/mnist/" + prefix + "-images-idx3-ubyte", set);
    splitconv::write_idx_labels(dir_ + "/mnist/" + prefix + "-labels-idx1-ubyte", set.labels);
  }
  const std::string model = write(
      "small.net", "input 28x28x1\nconv 4 3x3 relu\nmaxpool 2x2\nflatten\ndense 10 softmax\n");
  const std::string run =
      "train " + model + " --device cpu --threads 2 --batch 16 --epochs 1 " + "--data-dir " + dir_;
  auto quiet = run_cli(run);
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("memory at batch"), std::string::npos) << quiet.err;
  auto verbose = run_cli(run + " --verbose");
  ASSERT_EQ(verbose.code, 0) << verbose.err;
  const auto need = needed(model, 16, 2);
  EXPECT_NE(verbose.err.find(
                model + ": memory at batch 16: " + splitconv::bytes_text(need.total()) +
                " (parameters, gradients and Adam state " + splitconv::bytes_text(need.parameters) +
                ", activations " + splitconv::bytes_text(need.activations) + ", workspace " +
                splitconv::bytes_text(need.workspace) + ")"),
            std::string::npos)
      << verbose.err;
}

// The CUDA graph engine's estimate, against the CPU engine's (an independent sum over the
// same plan): four parameter-sized buffers (params, grads, m, v), the same activation, gradient and arg-max buffers and labels, plus the
// batch's probabilities on the device; no workspace (cuDNN's is chosen at plan time).
TEST(GraphEngineMemory, IsTheCpuEnginesBuffersWithFourParameterCopiesAndTheProbabilities) {
  for (const char* name : {"seed-v0.net", "seed-v1.net", "fast-mnist.net"}) {
    const splitconv::Model m =
        splitconv::build_model(splitconv::load_spec(src + "/models/" + name));
    for (int batch : {1, 32, 257}) {
      const splitconv::cpu::CpuMemory cpu = splitconv::cpu::CpuEngine::memory_needed(m, batch, 1);
      const splitconv::MemoryEstimate gpu = splitconv::graph_engine_memory(m, batch);
      EXPECT_EQ(gpu.parameters, m.param_floats * 4 * 4) << name;
      EXPECT_EQ(gpu.activations, cpu.activations + int64_t(batch) * m.classes * 4) << name;
      EXPECT_EQ(gpu.workspace, 0) << name;
    }
  }
}

TEST(GraphEngineMemory, PastTheSizeLimitsIsRefused) {
  const splitconv::Model m = splitconv::build_model(splitconv::parse_spec(
      "input 28x28x1\nconv 32 3x3 relu\nflatten\ndense 10 softmax\n", "m.net"));
  EXPECT_THROW(splitconv::graph_engine_memory(m, 100'000'000), splitconv::InputError);
}

// The model of the GPU test that is refused for the card's memory passes the size limits and
// needs 12 maps × (act + grad) × 2000 × 64·64·256 floats: about 187 GiB.
TEST(GraphEngineMemory, TheGpuTestsTooLargePlanIsWithinTheSizeLimits) {
  std::string text = "input 64x64x256\n";
  for (int i = 0; i < 12; ++i) text += "conv 256 3x3 relu padding=same\n";
  text += "flatten\ndense 10 softmax\n";
  const splitconv::Model big = splitconv::build_model(splitconv::parse_spec(text, "big.net"));
  const splitconv::MemoryEstimate need = splitconv::graph_engine_memory(big, 2000);
  EXPECT_GT(need.total(), int64_t(160) << 30);  // past the largest cards (H200: 141 GB)
}
