// The command line as a person uses it: reports, exit codes, one-line errors, no partial files.
#include <gtest/gtest.h>

#include "run_cli.h"
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace fs = std::filesystem;

namespace {

using Result = splitconv::testing::CliResult;

Result run(const std::string& args) { return splitconv::testing::run_cli(args); }

const std::string src = SPLITCONV_SOURCE_DIR;

fs::path scratch(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("splitconv-cli-" + std::to_string(getpid()));
  fs::create_directories(dir);
  return dir / name;
}

}  // namespace

TEST(Cli, AnalyzeJsonHoldsTheNotebookFigures) {
  auto json = scratch("v0.json");
  Result r = run("analyze " + src + "/models/seed-v0.net --json " + json.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("93,322"), std::string::npos);
  std::ifstream in(json);
  auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["total_params"], 93322);
  std::vector<int64_t> params;
  for (auto& l : j["layers"]) params.push_back(l["params"]);
  EXPECT_EQ(params, (std::vector<int64_t>{320, 0, 18496, 0, 36928, 0, 36928, 650}));
  EXPECT_EQ(j["layers"][0]["output"]["h"], 26);
  ASSERT_EQ(j["split"].size(), 3u);
  EXPECT_EQ(j["split"][0]["exact_rule"], false);
  EXPECT_EQ(j["split"][1]["exact_rule"], false);
  EXPECT_EQ(j["split"][2]["exact_rule"], true);
  EXPECT_EQ(j["split"][2]["params_after"], 24704);
  EXPECT_EQ(j["split"][2]["macs_before"], 331776);
}

TEST(Cli, FactorizeSeedV0GivesSeedV1sParameters) {
  auto out = scratch("v0-split.net");
  Result r = run("factorize " + src + "/models/seed-v0.net -o " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  auto json = scratch("split.json");
  Result a = run("analyze " + out.string() + " --json " + json.string());
  ASSERT_EQ(a.code, 0) << a.err;
  std::ifstream in(json);
  EXPECT_EQ(nlohmann::json::parse(in)["total_params"], 81098);
}

TEST(Cli, BadSpecIsOneLineAndExitTwo) {
  auto bad = scratch("bad.net");
  std::ofstream(bad) << "input 28x28x1\nconv 32 3x3 relu\nconv 64 three relu\n";
  auto json = scratch("bad.json");
  fs::remove(json);
  Result r = run("analyze " + bad.string() + " --json " + json.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(bad.string() + ":3:"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(json)) << "no output file on bad input";
}

TEST(Cli, UsageErrorsExitTwoAndHelpExitsZero) {
  EXPECT_EQ(run("").code, 2);
  EXPECT_EQ(run("frobnicate").code, 2);
  EXPECT_EQ(run("analyze").code, 2);
  EXPECT_EQ(run("train " + src + "/models/seed-v0.net --device tpu --data-dir /nonexistent").code, 2);
  Result h = run("--help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("analyze"), std::string::npos);
  for (const char* cmd : {"analyze", "factorize", "train", "compare", "evaluate", "predict", "data",
                          "devices"})
    EXPECT_EQ(run(std::string(cmd) + " --help").code, 0) << cmd;
}

TEST(Cli, MissingDataSaysWhatToPutWhere) {
  Result r = run("train " + src + "/models/seed-v0.net --data-dir /nonexistent/data --device cpu");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/nonexistent/data/mnist"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("fetch-data.sh"), std::string::npos) << r.err;
}

TEST(Cli, DevicesAnswersWithOrWithoutAGpu) {
  Result r = run("devices");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(r.out.find("cuda:0") != std::string::npos ||
              r.out.find("no CUDA device") != std::string::npos)
      << r.out;
}
