// The command line as a person uses it: reports, exit codes, one-line errors, no partial files.
#include <gtest/gtest.h>

#include "run_cli.h"
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "splitconv/checkpoint.h"
#include "splitconv/data.h"

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

// --- everything checkable is checked before work starts ---

namespace {

// One line on stderr naming `what`, exit 2.
void expect_refused(const Result& r, const std::string& what) {
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(what), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

const std::string kSmallNet =
    "input 28x28x1\nconv 4 3x3 relu\nmaxpool 2x2\nflatten\ndense 10 softmax\n";

// A data directory of this process with a small MNIST look-alike (28×28, labels 0 to 9) and
// a small model for it.
class CliData : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "splitconv-clidata-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/mnist");
    write_set("train", 96);
    write_set("t10k", 40);
    model_ = write("small.net", kSmallNet);
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write_set(const std::string& prefix, int64_t count) {
    splitconv::ImageSet set;
    set.count = count, set.h = 28, set.w = 28, set.c = 1;
    for (int64_t i = 0; i < count * 784; ++i) set.pixels.push_back(uint8_t((i * 37) % 251));
    for (int64_t i = 0; i < count; ++i) set.labels.push_back(uint8_t(i % 10));
    splitconv::write_idx_images(dir_ + "/mnist/" + prefix + "-images-idx3-ubyte", set);
    splitconv::write_idx_labels(dir_ + "/mnist/" + prefix + "-labels-idx1-ubyte", set.labels);
  }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ + "/" + name) << text;
    return dir_ + "/" + name;
  }
  Result train(const std::string& model, const std::string& args) {
    return run("train " + model + " --device cpu --threads 2 --data-dir " + dir_ + " " + args);
  }

  std::string dir_, model_;
};

}  // namespace

TEST(CliChecks, BadDeviceIsRefusedForTheDeviceNotTheData) {
  Result r = run("train " + src + "/models/seed-v0.net --device tpu --data-dir /nonexistent");
  expect_refused(r, "--device: expected cpu, cuda or auto, got 'tpu'");
  EXPECT_EQ(r.err.find("nonexistent"), std::string::npos) << r.err;
}

TEST(CliChecks, OptionValuesAreRefusedBeforeAnythingIsRead) {
  // The data directory does not exist: each refusal must come from the option itself.
  const std::string model = src + "/models/seed-v0.net --device cpu --data-dir /nonexistent ";
  expect_refused(run("train " + model + "--lr nan"),
                 "--lr nan: expected a finite, positive learning rate");
  expect_refused(run("train " + model + "--lr inf"), "--lr inf: expected a finite, positive");
  expect_refused(run("train " + model + "--lr 0"), "--lr 0: expected a finite, positive");
  expect_refused(run("train " + model + "--lr -0.001"), "--lr -0.001: expected a finite, positive");
  expect_refused(run("train " + model + "--batch 100000000"),
                 "--batch 100000000: expected 1 to 65,536 images a step");
  expect_refused(run("train " + model + "--batch 0"), "--batch 0: expected 1 to 65,536");
  expect_refused(run("train " + model + "--engine turbo"),
                 "--engine: expected graph, fused or auto, got 'turbo'");
  expect_refused(run("train " + model + "--fused-blocks 9"), "--fused-blocks");
  expect_refused(run("train " + model + "--steps-per-launch 0"), "--steps-per-launch");
  expect_refused(run("train " + model + "--threads 100000"),
                 "--threads 100000: expected 1 to 1,024 (0: all cores)");
  expect_refused(run("train " + model + "--threads -2"), "--threads -2: expected 1 to 1,024");
  expect_refused(run("train " + model + "--epochs -1"), "--epochs -1: expected 0 or more");
  expect_refused(run("train " + model + "--conv-impl fast"),
                 "--conv-impl: expected auto, cudnn or own, got 'fast'");
  Result limit = run("train " + model + "--limit -5");
  expect_refused(limit, "--limit -5: expected a number of images, 0 or more (0: all)");
  EXPECT_LT(limit.err.size(), 120u) << "a plain message: " << limit.err;
  // The same options mean the same in every command that takes them.
  expect_refused(run("compare " + model + "--lr nan"), "--lr nan");
  expect_refused(run("compare " + model + "--seeds 0"), "--seeds 0: expected 1 to 1,000");
  expect_refused(run("evaluate x.safetensors --device cpu --limit -5"),
                 "--limit -5: expected a number of images");
  expect_refused(run("evaluate x.safetensors --device cpu --batch 100000000"), "--batch 100000000");
  expect_refused(run("predict x.safetensors --images x.idx --threads 100000"), "--threads 100000");
}

TEST(CliChecks, OutputPathsAreCheckedBeforeTheFirstStep) {
  // Refused before the data is read, so before any training.
  const std::string model = src + "/models/seed-v0.net --device cpu --data-dir /nonexistent ";
  expect_refused(run("train " + model + "--save /nonexistent/dir/ck.safetensors"),
                 "--save /nonexistent/dir/ck.safetensors: directory /nonexistent/dir:");
  expect_refused(run("train " + model + "--json /nonexistent/dir/r.json"),
                 "--json /nonexistent/dir/r.json");
  expect_refused(run("compare " + model + "--json /nonexistent/dir/r.json"),
                 "--json /nonexistent/dir/r.json");
  expect_refused(run("train " + model + "--save " + fs::temp_directory_path().string()),
                 "is a directory");
  expect_refused(run("evaluate x.safetensors --json /nonexistent/dir/r.json"),
                 "--json /nonexistent/dir/r.json");
  expect_refused(run("analyze " + src + "/models/seed-v0.net --json /nonexistent/dir/r.json"),
                 "--json /nonexistent/dir/r.json");
  expect_refused(run("factorize " + src + "/models/seed-v0.net -o /nonexistent/dir/v1.net"),
                 "--output /nonexistent/dir/v1.net");
  expect_refused(run("bench sweep --device cpu --csv /nonexistent/dir/s.csv"),
                 "--csv /nonexistent/dir/s.csv");
}

TEST(CliChecks, SizesPastTheLimitsAreOneLine) {
  auto spec = scratch("huge.net");
  std::ofstream(spec) << "input 3000000x3000000x1\nconv 64 3x3 relu\nflatten\ndense 10 softmax\n";
  expect_refused(
      run("analyze " + spec.string()),
      spec.string() +
          ":1: '3000000x3000000x1': 3000000 is over the limit of 1,000,000 per dimension");
  std::ofstream(spec) << "input 100000x100000x1000\nconv 64 3x3 relu\nflatten\ndense 10 softmax\n";
  expect_refused(run("analyze " + spec.string()),
                 "input 100000x100000x1000 is 10,000,000,000,000 elements (36.4 TiB) per image, "
                 "over the limit of 2,147,483,647 elements per tensor");
  expect_refused(run("train " + spec.string() + " --device cpu --data-dir /nonexistent"),
                 "input 100000x100000x1000 is 10,000,000,000,000 elements");
}

TEST_F(CliData, ModelInputMustMatchTheImages) {
  auto net = write("rgb.net", "input 32x32x3\nconv 4 3x3 relu\nflatten\ndense 10 softmax\n");
  expect_refused(train(net, ""),
                 net + ": the model takes 32x32x3 images but the mnist train images are 28x28x1");
  expect_refused(run("compare " + model_ + " " + net + " --device cpu --data-dir " + dir_),
                 net + ": the model takes 32x32x3 images");
}

TEST_F(CliData, ClassesMustCoverTheLabels) {
  auto net = write("seven.net", "input 28x28x1\nconv 4 3x3 relu\nflatten\ndense 7 softmax\n");
  expect_refused(
      train(net, ""),
      net + ": the model has 7 classes (0 to 6) but the mnist train labels run to 9 (10 classes)");
}

TEST_F(CliData, APlanPastTheMemoryIsRefusedWithTheBytes) {
  // Each tensor within the limits, terabytes in all: refused before anything is allocated.
  std::string text = "input 28x28x1\nflatten\n";
  for (int i = 0; i < 60; ++i) text += "dense 46340 relu\n";
  text += "dense 10 softmax\n";
  auto net = write("huge.net", text);
  Result r = train(net, "");
  expect_refused(r, net + ": the CPU engine needs ");
  EXPECT_NE(r.err.find(" TiB at batch 32 with 2 threads (parameters, gradients and Adam state "),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(" available"), std::string::npos) << r.err;
  // compare checks every model before the first trains.
  Result c = run("compare " + model_ + " " + net + " --device cpu --threads 2 --data-dir " + dir_);
  expect_refused(c, net + ": the CPU engine needs ");
  EXPECT_EQ(c.out, "") << "nothing trained";
  expect_refused(run("bench layers " + net + " --device cpu --threads 2"),
                 net + ": the CPU engine needs ");
}

TEST_F(CliData, TrainsSavesAndEvaluatesWithLimit) {
  const std::string ck = dir_ + "/ck.safetensors", json = dir_ + "/eval.json";
  Result t = train(model_, "--epochs 1 --limit 64 --save " + ck);
  ASSERT_EQ(t.code, 0) << t.err;
  Result e =
      run("evaluate " + ck + " --device cpu --data-dir " + dir_ + " --limit 10 --json " + json);
  ASSERT_EQ(e.code, 0) << e.err;
  std::ifstream in(json);
  EXPECT_EQ(nlohmann::json::parse(in)["images"], 10);
}

TEST_F(CliData, ADivergingRunExitsOne) {
  Result r = train(model_, "--epochs 1 --lr 1e30");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("splitconv: error: training diverged: the loss is not finite"),
            std::string::npos)
      << r.err;
}

TEST_F(CliData, ASaveThatFailsMidRunExitsOneAndKeepsThePreviousCheckpoint) {
  const std::string ck = dir_ + "/ck.safetensors";
  ASSERT_EQ(train(model_, "--epochs 1 --limit 32 --save " + ck).code, 0);
  std::ifstream first(ck, std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(first)), {});
  // The path passes the check before training (a file can be created there), but the writes
  // of the save fail: a file size limit of 512 bytes, which binds root too.
  const std::string cmd = "trap '' XFSZ; ulimit -f 1; " + std::string(SPLITCONV_BINARY) +
                          " train " + model_ +
                          " --device cpu --threads 2 --epochs 1 --limit 32 --data-dir " + dir_ +
                          " --save " + ck + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  for (size_t n; (n = fread(buf.data(), 1, buf.size(), p)) > 0;) out.append(buf.data(), n);
  const int status = pclose(p);
  ASSERT_TRUE(WIFEXITED(status)) << out;
  EXPECT_EQ(WEXITSTATUS(status), 1) << out;
  EXPECT_NE(out.find("splitconv: error: " + ck + ": cannot write checkpoint: File too large"),
            std::string::npos)
      << out;
  std::ifstream after(ck, std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(after)), {}), before);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"ck.safetensors", "mnist", "small.net"}));
}

namespace {
std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}
}  // namespace

// A run stopped after its first epoch and resumed with no flags but --resume equals the run
// straight through, bit for bit (CPU, same threads): the checkpoint restores the schedule, the
// seed, the batch, Adam's settings and the run's length. A flag that differs is refused.
TEST_F(CliData, AResumedScheduledRunEqualsTheRunStraightThrough) {
  const std::string straight = dir_ + "/straight.safetensors", half = dir_ + "/half.safetensors",
                    resumed = dir_ + "/resumed.safetensors";
  const std::string recipe =
      "--epochs 2 --batch 16 --limit 64 --lr 0.01 --beta1 0.8 --lr-schedule onecycle --seed 5 ";
  ASSERT_EQ(train(model_, recipe + "--save " + straight).code, 0);
  ASSERT_EQ(train(model_, recipe + "--stop-after-epoch 1 --save " + half).code, 0);
  EXPECT_NE(file_bytes(half), file_bytes(straight));
  Result r = run("train --resume " + half + " --device cpu --threads 2 --data-dir " + dir_ +
                 " --save " + resumed);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(file_bytes(resumed), file_bytes(straight));

  expect_refused(run("train --resume " + half + " --device cpu --data-dir " + dir_ + " --batch 32"),
                 "--batch 32 differs from " + half + "'s 16: a resumed run keeps its configuration");
  expect_refused(run("train --resume " + half + " --device cpu --data-dir " + dir_ + " --epochs 3"),
                 "--epochs 3 differs from " + half + "'s 2");
  expect_refused(run("train --resume " + half + " --device cpu --data-dir " + dir_ +
                     " --lr-schedule constant"),
                 "--lr-schedule constant differs from " + half + "'s onecycle");
}

namespace {
// The binary as a child process of this test (stdout dropped, stderr to err_file).
pid_t start_cli(const std::string& args, const std::string& err_file) {
  const std::string cmd =
      "exec " + std::string(SPLITCONV_BINARY) + " " + args + " >/dev/null 2>" + err_file;
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}
// Its exit code, or 1000 + the signal that killed it.
int wait_for(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
}
}  // namespace

// SIGINT (Ctrl-C) and SIGTERM during `train --save`, sent to a real child once its first
// checkpoint exists: it saves a resumable checkpoint, says where, writes its report and exits
// 128 + the signal; resumed to the end of that epoch, it equals the run straight through to
// there, bit for bit (wherever in the epoch the signal came).
TEST_F(CliData, AnInterruptedRunSavesAResumableCheckpointAndExits130Or143) {
  for (int sig : {SIGINT, SIGTERM}) {
    const std::string name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    const std::string ck = dir_ + "/int.safetensors", err = dir_ + "/int.err",
                      json = dir_ + "/int.json", resumed = dir_ + "/resumed.safetensors",
                      straight = dir_ + "/straight.safetensors";
    fs::remove(ck);
    // Far longer than the test runs: only the signal ends it.
    const std::string recipe = "--epochs 1000000 --batch 8 --limit 96 --seed 4 ";
    const pid_t pid = start_cli("train " + model_ + " --device cpu --threads 2 --data-dir " +
                                    dir_ + " " + recipe + "--save " + ck + " --json " + json,
                                err);
    ASSERT_GT(pid, 0);
    for (int i = 0; i < 6000 && !fs::exists(ck); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(fs::exists(ck)) << file_bytes(err);
    ASSERT_EQ(kill(pid, sig), 0);
    EXPECT_EQ(wait_for(pid), 128 + sig) << file_bytes(err);
    const std::string said = file_bytes(err);
    EXPECT_NE(said.find("splitconv: interrupted by " + name + " "), std::string::npos) << said;
    EXPECT_NE(said.find("resumable checkpoint written to " + ck +
                        " (continue: splitconv train --resume " + ck + ")"),
              std::string::npos)
        << said;
    std::ifstream in(json);
    const nlohmann::json report = nlohmann::json::parse(in);
    EXPECT_EQ(report["interrupted"], true);

    const splitconv::Checkpoint stopped = splitconv::load_checkpoint(ck);
    EXPECT_EQ(stopped.state.step, int64_t(stopped.state.epoch) * 12 + stopped.state.epoch_step);
    const std::string until = " --stop-after-epoch " + std::to_string(stopped.state.epoch + 1);
    Result r = run("train --resume " + ck + " --device cpu --threads 2 --data-dir " + dir_ +
                   until + " --save " + resumed);
    ASSERT_EQ(r.code, 0) << r.err;
    ASSERT_EQ(train(model_, recipe + until + " --save " + straight).code, 0);
    EXPECT_EQ(file_bytes(resumed), file_bytes(straight)) << name;
  }
}

// A checkpoint whose place inside the epoch is past the epoch's end is refused in one line.
TEST_F(CliData, AResumedStepPastTheEpochIsRefused) {
  const std::string ck = dir_ + "/ck.safetensors";
  ASSERT_EQ(train(model_, "--epochs 1 --batch 8 --limit 96 --save " + ck).code, 0);
  splitconv::Checkpoint c = splitconv::load_checkpoint(ck);
  const splitconv::Model m = splitconv::model_of(c, ck);
  c.state.epoch_step = 12;
  splitconv::save_checkpoint(ck, m, c);
  expect_refused(run("train --resume " + ck + " --device cpu --data-dir " + dir_),
                 ck + ": stopped after step 12 of an epoch, which has 12 steps here");
}

// Under a constant rate, --epochs may extend a resumed run.
TEST_F(CliData, AConstantRateRunMayBeExtended) {
  const std::string ck = dir_ + "/ck.safetensors";
  ASSERT_EQ(train(model_, "--epochs 1 --limit 32 --save " + ck).code, 0);
  Result r = run("train --resume " + ck + " --device cpu --data-dir " + dir_ + " --epochs 2 --json " +
                 dir_ + "/r.json");
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream in(dir_ + "/r.json");
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["train_images"], 32) << "the limit comes from the checkpoint";
  EXPECT_EQ(j["epochs"].size(), 1u) << "one more epoch";
}

TEST_F(CliData, TargetAccuracyIsReportedInTheJson) {
  const std::string json = dir_ + "/t.json";
  Result r = train(model_, "--epochs 2 --limit 64 --target-accuracy 1.0 --eval-every 2 --json " + json);
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["target"]["accuracy"], 1.0);
  EXPECT_EQ(j["target"]["reached"], false);
  EXPECT_TRUE(j["target"]["time_to_target_seconds"].is_null());
  EXPECT_EQ(j["target"]["steps"], 4);  // 64 images in steps of 32, two epochs
  EXPECT_GT(j["setup_seconds"].get<double>(), 0.0);
  EXPECT_EQ(j["optimizer"]["schedule"]["kind"], "constant");
  expect_refused(train(model_, "--target-accuracy 1.5"), "--target-accuracy: expected an accuracy");
  expect_refused(train(model_, "--lr-schedule cyclic"), "--lr-schedule: expected constant");
}

// compare with a target: per model, how many seeds reached it and the spread of the time and
// of the final accuracy.
TEST_F(CliData, CompareSummarisesTheTimeToTarget) {
  const std::string json = dir_ + "/c.json";
  Result r = run("compare " + model_ + " --device cpu --threads 2 --data-dir " + dir_ +
                 " --epochs 1 --limit 32 --seeds 2 --target-accuracy 0.01 --json " + json);
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in);
  const auto& t = j["summary"][0]["target"];
  EXPECT_EQ(t["seeds"], 2);
  EXPECT_EQ(t["reached"], 2) << "an accuracy of 1% is reached at the first evaluation";
  EXPECT_EQ(t["time_to_target_seconds"]["n"], 2);
  EXPECT_LE(t["time_to_target_seconds"]["min"].get<double>(),
            t["time_to_target_seconds"]["max"].get<double>());
  EXPECT_EQ(t["steps_to_target"]["mean"], 1.0) << "one step an epoch of 32 images";
  EXPECT_EQ(t["final_accuracy"]["n"], 2);
  EXPECT_TRUE(j["models"][0]["target"]["reached"].get<bool>());
  EXPECT_NE(r.out.find("target 0.0100 reached by 2 of 2 seeds"), std::string::npos) << r.out;
}
