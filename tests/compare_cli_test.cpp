// compare --seeds and --plot of train and compare, end to end on a small synthetic dataset:
// the statistics in the report agree with its own runs, paths are checked before training,
// and without matplotlib the report is still written.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "run_cli.h"
#include "splitconv/data.h"

namespace fs = std::filesystem;
using nlohmann::json;
using splitconv::testing::run_cli;

namespace {

// t(0.975, 3) from the table: the interval of 4 seeds.
constexpr double kT3 = 3.182446305;

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

// The PNG signature, a first IHDR chunk with a non-zero size, and a closing IEND chunk.
void expect_png(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  ASSERT_TRUE(in) << p << " was not written";
  std::string b((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(b.size(), 60u) << p;
  EXPECT_EQ(b.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8)) << p;
  EXPECT_EQ(b.substr(12, 4), "IHDR") << p;
  auto be32 = [&](size_t at) {
    return uint32_t(uint8_t(b[at])) << 24 | uint32_t(uint8_t(b[at + 1])) << 16 |
           uint32_t(uint8_t(b[at + 2])) << 8 | uint32_t(uint8_t(b[at + 3]));
  };
  EXPECT_GT(be32(16), 100u) << "width";
  EXPECT_GT(be32(20), 100u) << "height";
  EXPECT_EQ(b.substr(b.size() - 8, 4), "IEND") << p;
}

class CompareCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("splitconv-compare-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "data" / "mnist");
    // A task a tiny model learns in two epochs, but not equally from every seed: class k is
    // a bright band at rows 2k..2k+3, under noise.
    std::mt19937 rng(7);
    auto make = [&](int64_t count, const std::string& images, const std::string& labels) {
      splitconv::ImageSet set;
      set.count = count;
      set.h = set.w = 28;
      set.pixels.resize(size_t(count) * 784);
      std::vector<uint8_t> lab(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) {
        const int k = int(rng() % 10);
        lab[size_t(i)] = uint8_t(k);
        for (int y = 0; y < 28; ++y)
          for (int x = 0; x < 28; ++x) {
            const bool band = y >= 2 * k && y < 2 * k + 4;
            set.pixels[size_t(i) * 784 + size_t(y) * 28 + size_t(x)] =
                uint8_t(std::min<unsigned>(255, (band ? 90 : 0) + rng() % 160));
          }
      }
      splitconv::write_idx_images((dir_ / "data/mnist" / images).string(), set);
      splitconv::write_idx_labels((dir_ / "data/mnist" / labels).string(), lab);
    };
    make(192, "train-images-idx3-ubyte", "train-labels-idx1-ubyte");
    make(100, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte");
    std::ofstream(dir_ / "a.net") << "input 28x28x1\nconv 4 3x3 relu\nmaxpool 4x4\nflatten\n"
                                     "dense 10 softmax\n";
    std::ofstream(dir_ / "b.net") << "input 28x28x1\nconv 4 3x1 relu\nconv 4 1x3 relu\n"
                                     "maxpool 4x4\nflatten\ndense 10 softmax\n";
  }
  void TearDown() override {
    unsetenv("SPLITCONV_PYTHON");
    fs::remove_all(dir_);
  }

  std::string p(const std::string& name) const { return (dir_ / name).string(); }
  // Quick training on the synthetic set, on one CPU thread.
  std::string common() const {
    return " --dataset mnist --data-dir " + p("data") + " --device cpu --threads 1 --epochs 2";
  }
  std::string models() const { return "compare " + p("a.net") + " " + p("b.net"); }

  fs::path dir_;
};

std::vector<double> runs_of(const json& report, const std::string& model, const char* key) {
  std::vector<double> v;
  for (const auto& r : report["models"])
    if (r["model"] == model) v.push_back(r[key].get<double>());
  return v;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

double sample_std(const std::vector<double>& v) {
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size() - 1));
}

}  // namespace

TEST_F(CompareCli, SeedsGiveIntervalsAndAPairedVerdict) {
  auto r = run_cli(models() + common() + " --seeds 4 --json " + p("cmp.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = read_json(p("cmp.json"));
  EXPECT_EQ(j["seeds"], 4);
  EXPECT_EQ(j["confidence"], 0.95);
  EXPECT_EQ(j["interval"], "student t");
  EXPECT_EQ(j["paired_test"], "paired t");
  ASSERT_EQ(j["models"].size(), 8u);
  ASSERT_EQ(j["summary"].size(), 2u);

  for (const auto& s : j["summary"]) {
    const std::string model = s["model"];
    const std::vector<double> acc = runs_of(j, model, "test_accuracy");
    ASSERT_EQ(acc.size(), 4u);
    const json& a = s["test_accuracy"];
    EXPECT_EQ(a["n"], 4);
    EXPECT_NEAR(a["mean"].get<double>(), mean(acc), 1e-12) << model;
    EXPECT_NEAR(a["std"].get<double>(), sample_std(acc), 1e-12) << model;
    EXPECT_NEAR(a["half_width"].get<double>(), kT3 * sample_std(acc) / 2, 1e-9) << model;
    EXPECT_NEAR(a["low"].get<double>(), mean(acc) - kT3 * sample_std(acc) / 2, 1e-9) << model;
    EXPECT_NEAR(a["high"].get<double>(), mean(acc) + kT3 * sample_std(acc) / 2, 1e-9) << model;
    // The best epoch's accuracy: each run's highest over its epochs.
    std::vector<double> best;
    for (const auto& run : j["models"]) {
      if (run["model"] != model) continue;
      double b = 0;
      for (const auto& e : run["epochs"]) b = std::max(b, e["test_accuracy"].get<double>());
      EXPECT_EQ(run["best_test_accuracy"].get<double>(), b);
      best.push_back(b);
    }
    EXPECT_NEAR(s["best_test_accuracy"]["mean"].get<double>(), mean(best), 1e-12) << model;
    EXPECT_EQ(s["train_seconds"]["n"], 4);
    EXPECT_GT(s["train_seconds"]["mean"].get<double>(), 0);
    // Per-epoch curves: the mean over the seeds of each epoch.
    ASSERT_EQ(s["curves"].size(), 2u);
    for (size_t e = 0; e < 2; ++e) {
      std::vector<double> loss;
      for (const auto& run : j["models"])
        if (run["model"] == model) loss.push_back(run["epochs"][e]["loss"].get<double>());
      EXPECT_EQ(s["curves"][e]["epoch"], int(e) + 1);
      EXPECT_NEAR(s["curves"][e]["loss"]["mean"].get<double>(), mean(loss), 1e-12);
      EXPECT_NEAR(s["curves"][e]["loss"]["half_width"].get<double>(), kT3 * sample_std(loss) / 2,
                  1e-9);
    }
  }
  // The pair: b − a, seed by seed.
  ASSERT_EQ(j["pairs"].size(), 1u);
  const json& pair = j["pairs"][0];
  EXPECT_EQ(pair["a"], p("a.net"));
  EXPECT_EQ(pair["b"], p("b.net"));
  std::map<uint64_t, double> acc_a, acc_b;
  for (const auto& run : j["models"])
    (run["model"] == p("a.net") ? acc_a : acc_b)[run["seed"].get<uint64_t>()] =
        run["test_accuracy"].get<double>();
  ASSERT_EQ(acc_a.size(), 4u);
  ASSERT_EQ(acc_b.size(), 4u);
  std::vector<double> diff;
  for (auto [seed, a] : acc_a) diff.push_back(acc_b.at(seed) - a);
  const json& d = pair["test_accuracy_difference"];
  EXPECT_NEAR(d["mean"].get<double>(), mean(diff), 1e-12);
  EXPECT_NEAR(d["half_width"].get<double>(), kT3 * sample_std(diff) / 2, 1e-9);
  EXPECT_EQ(d["df"], 3);
  EXPECT_EQ(d["significant"].get<bool>(),
            d["low"].get<double>() > 0 || d["high"].get<double>() < 0);
  const std::string verdict = pair["verdict"];
  EXPECT_EQ(verdict.rfind("b is ", 0), 0u) << verdict;
  EXPECT_NE(verdict.find(" accurate than a: "), std::string::npos) << verdict;
  EXPECT_NE(verdict.find("(paired t, 4 seeds, p "), std::string::npos) << verdict;
  EXPECT_NE(r.out.find(verdict), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("95% CI: Student t over the 4 seeds"), std::string::npos) << r.out;
}

TEST_F(CompareCli, OneSeedGivesNoInterval) {
  auto r = run_cli(models() + common() + " --seeds 1 --json " + p("one.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = read_json(p("one.json"));
  EXPECT_EQ(j["summary"][0]["test_accuracy"]["n"], 1);
  EXPECT_TRUE(j["summary"][0]["test_accuracy"]["half_width"].is_null());
  EXPECT_TRUE(j["summary"][0]["test_accuracy"]["low"].is_null());
  EXPECT_TRUE(j["pairs"][0]["test_accuracy_difference"]["p_value"].is_null());
  EXPECT_FALSE(j["pairs"][0]["test_accuracy_difference"]["significant"].get<bool>());
  const std::string verdict = j["pairs"][0]["verdict"];
  EXPECT_NE(verdict.find("on 1 seed: one seed gives no interval"), std::string::npos) << verdict;
}

TEST_F(CompareCli, OutputPathsAreCheckedBeforeTraining) {
  // The data directory does not exist either: a path fault must come first, before any data.
  const std::string no_data = " --dataset mnist --data-dir " + p("absent") + " --device cpu";
  for (const std::string& cmd : {models(), "train " + p("a.net")}) {
    auto r = run_cli(cmd + no_data + " --plot " + p("no-such-dir/curves.png"));
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_NE(r.err.find("--plot " + p("no-such-dir/curves.png") + ": directory " +
                         p("no-such-dir") + ": No such file or directory"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;

    r = run_cli(cmd + no_data + " --plot " + p("curves.svg"));
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_NE(r.err.find("--plot: expected a .png file"), std::string::npos) << r.err;

    r = run_cli(cmd + no_data + " --plot " + dir_.string());
    EXPECT_EQ(r.code, 2) << cmd;

    r = run_cli(cmd + no_data + " --json " + p("no-such-dir/r.json"));
    EXPECT_EQ(r.code, 2) << cmd;
    EXPECT_NE(r.err.find("--json " + p("no-such-dir/r.json") + ": directory"), std::string::npos)
        << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST_F(CompareCli, WithoutMatplotlibTheReportIsStillWritten) {
  setenv("SPLITCONV_PYTHON", p("no-python-here").c_str(), 1);
  auto r = run_cli(models() + common() + " --seeds 2 --plot " + p("curves.png"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("--plot: no python3 with matplotlib"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("the report goes to " + p("curves.json")), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(p("curves.png")));
  EXPECT_EQ(read_json(p("curves.json"))["summary"].size(), 2u);

  // With --json, the report goes there.
  r = run_cli("train " + p("a.net") + common() + " --plot " + p("t.png") + " --json " +
              p("t.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("the report goes to " + p("t.json")), std::string::npos) << r.err;
  EXPECT_EQ(read_json(p("t.json"))["epochs"].size(), 2u);
  EXPECT_FALSE(fs::exists(p("t.png")));
  EXPECT_FALSE(fs::exists(p("t.json.tmp")));
}

TEST_F(CompareCli, PlotsArePngsWhereMatplotlibIsInstalled) {
  std::string python;
  for (const char* candidate : {"python3", "/usr/bin/python3"}) {
    const std::string probe = std::string(candidate) + " -c 'import matplotlib' >/dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) {
      python = candidate;
      break;
    }
  }
  if (python.empty())
    GTEST_SKIP() << "no python3 with matplotlib (Debian: python3-matplotlib): --plot draws "
                    "nothing here, which WithoutMatplotlibTheReportIsStillWritten covers";
  auto r = run_cli("train " + p("a.net") + common() + " --plot " + p("train.png"));
  ASSERT_EQ(r.code, 0) << r.err;
  expect_png(p("train.png"));
  EXPECT_FALSE(fs::exists(p("train.json"))) << "no report asked for, none left behind";
  r = run_cli(models() + common() + " --seeds 2 --plot " + p("compare.png") + " --json " +
              p("compare.json"));
  ASSERT_EQ(r.code, 0) << r.err;
  expect_png(p("compare.png"));
  EXPECT_EQ(read_json(p("compare.json"))["seeds"], 2);
}
