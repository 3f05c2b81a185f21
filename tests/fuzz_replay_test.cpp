// The fuzz targets' promises in the normal suite (tests/fuzz/README.md): every input of the
// seed corpus and every regression input (what a fuzz run found, kept once fixed) goes through
// the same target function as in a fuzz run, compiled here without libFuzzer
// (SPLITCONV_FUZZ_REPLAY): bad input must end in InputError inside the target, so anything
// that escapes it (a broken promise, another exception) fails the test, naming the file.
// And the seeds are what their names say: the valid ones load, so the corpus does not rot
// when a format changes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "splitconv/checkpoint.h"
#include "splitconv/data.h"
#include "splitconv/error.h"
#include "splitconv/model.h"
#include "splitconv/spec.h"

int splitconv_fuzz_spec(const uint8_t* data, size_t size);
int splitconv_fuzz_idx(const uint8_t* data, size_t size);
int splitconv_fuzz_checkpoint(const uint8_t* data, size_t size);

namespace fs = std::filesystem;

namespace {

const fs::path kFuzz = fs::path(SPLITCONV_SOURCE_DIR) / "tests/fuzz";

std::vector<uint8_t> bytes_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// The files of corpus/TARGET/ and regressions/TARGET/ (the latter may not exist yet).
std::vector<fs::path> inputs(const std::string& target, int* seeds) {
  std::vector<fs::path> out;
  *seeds = 0;
  for (const char* dir : {"corpus", "regressions"}) {
    const fs::path d = kFuzz / dir / target;
    if (!fs::is_directory(d)) continue;
    for (const auto& e : fs::directory_iterator(d)) {
      if (!e.is_regular_file()) continue;
      out.push_back(e.path());
      if (std::string(dir) == "corpus") ++*seeds;
    }
  }
  return out;
}

int run_target(const std::string& name, const std::vector<uint8_t>& data) {
  if (name == "spec") return splitconv_fuzz_spec(data.data(), data.size());
  if (name == "idx") return splitconv_fuzz_idx(data.data(), data.size());
  return splitconv_fuzz_checkpoint(data.data(), data.size());
}

class FuzzReplay : public ::testing::TestWithParam<std::string> {};

// A scratch file for the readers that take a path.
fs::path write_scratch(const std::string& name, const uint8_t* data, size_t size) {
  fs::path p =
      fs::temp_directory_path() / ("splitconv-replay-" + std::to_string(getpid()) + "-" + name);
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  return p;
}

}  // namespace

TEST_P(FuzzReplay, EveryCorpusAndRegressionInputKeepsTheTargetsPromises) {
  const std::string target = GetParam();
  int seeds = 0;
  const auto files = inputs(target, &seeds);
  EXPECT_GT(seeds, 0) << "no seed corpus in " << (kFuzz / "corpus" / target);
  for (const auto& f : files) {
    try {
      run_target(target, bytes_of(f));
    } catch (const std::exception& e) {
      ADD_FAILURE() << f << ": " << e.what();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, ::testing::Values("spec", "idx", "checkpoint"),
                         [](const auto& info) { return info.param; });

TEST(FuzzSeeds, TheValidSpecsBuildAndTheBadOneIsRefused) {
  int built = 0;
  for (const auto& e : fs::directory_iterator(kFuzz / "corpus/spec")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("bad-", 0) == 0) {
      EXPECT_THROW(splitconv::build_model(splitconv::load_spec(e.path().string())),
                   splitconv::InputError)
          << name;
      continue;
    }
    EXPECT_NO_THROW(splitconv::build_model(splitconv::load_spec(e.path().string()))) << name;
    ++built;
  }
  EXPECT_GE(built, 4);
}

TEST(FuzzSeeds, TheCheckpointsLoadOneWithOptimizerStateOneWithout) {
  const auto resumable =
      splitconv::load_checkpoint((kFuzz / "corpus/checkpoint/resumable").string());
  EXPECT_FALSE(resumable.state.m.empty());
  EXPECT_EQ(resumable.state.m.size(), resumable.state.params.size());
  const auto weights =
      splitconv::load_checkpoint((kFuzz / "corpus/checkpoint/weights-only").string());
  EXPECT_TRUE(weights.state.m.empty());
  EXPECT_FALSE(weights.state.params.empty());
}

TEST(FuzzSeeds, TheIdxSeedsReadAfterTheirModeByte) {
  // Mode byte 0: the rest is the file as it is (raw or gzipped).
  for (const char* name : {"images-raw", "images-gzip"}) {
    const auto data = bytes_of(kFuzz / "corpus/idx" / name);
    ASSERT_FALSE(data.empty());
    EXPECT_EQ(data[0], 0) << name;
    const auto p = write_scratch(name, data.data() + 1, data.size() - 1);
    const splitconv::ImageSet set = splitconv::read_idx_images(p.string());
    fs::remove(p);
    EXPECT_EQ(set.count, 3) << name;
    EXPECT_EQ(set.h, 4) << name;
    EXPECT_EQ(set.w, 4) << name;
  }
  for (const char* name : {"labels-raw", "labels-gzip"}) {
    const auto data = bytes_of(kFuzz / "corpus/idx" / name);
    ASSERT_FALSE(data.empty());
    const auto p = write_scratch(name, data.data() + 1, data.size() - 1);
    EXPECT_EQ(splitconv::read_idx_labels(p.string()).size(), 3u) << name;
    fs::remove(p);
  }
}
