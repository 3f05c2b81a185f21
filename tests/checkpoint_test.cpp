// Safetensors checkpoints: a bitwise round trip, and every way a file can lie gives one
// InputError line naming the file.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "splitconv/checkpoint.h"
#include "splitconv/error.h"
#include "splitconv/model.h"
#include "splitconv/spec.h"

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using namespace splitconv;

namespace {

// Three biases of the same shape: enough to overlap two tensors of one size.
const char* kSpec =
    "input 8x8x1\n"
    "conv 4 3x3 relu\n"
    "maxpool 2x2\n"
    "conv 4 3x1 relu\n"
    "conv 4 1x3 relu\n"
    "flatten\n"
    "dense 10 softmax\n";

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// A safetensors file taken apart: the header, and each tensor's bytes in file order.
struct Parts {
  json metadata;
  bool has_metadata = false;
  struct Tensor {
    std::string name;
    json info;  // dtype, shape, data_offsets
    std::vector<uint8_t> bytes;
  };
  std::vector<Tensor> tensors;

  Tensor& at(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name) return t;
    throw std::runtime_error("no tensor " + name);
  }
  void erase(const std::string& name) {
    std::erase_if(tensors, [&](const Tensor& t) { return t.name == name; });
  }
};

Parts take_apart(const std::string& path) {
  auto bytes = slurp(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(bytes[size_t(i)]) << (8 * i);
  json header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + std::ptrdiff_t(n));
  Parts p;
  for (auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      p.metadata = value;
      p.has_metadata = true;
      continue;
    }
    auto b = value["data_offsets"][0].get<size_t>(), e = value["data_offsets"][1].get<size_t>();
    p.tensors.push_back({name, value, {bytes.begin() + std::ptrdiff_t(8 + n + b),
                                       bytes.begin() + std::ptrdiff_t(8 + n + e)}});
  }
  return p;
}

void write_header_and_data(const std::string& path, const std::string& header,
                           const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out;
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(n >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  spit(path, out);
}

// Puts the parts back together; `relayout` recomputes contiguous offsets from the bytes,
// otherwise each tensor keeps the offsets in its info (for lying offsets).
void put_together(const std::string& path, Parts& p, bool relayout = true) {
  json header = json::object();
  if (p.has_metadata) header["__metadata__"] = p.metadata;
  std::vector<uint8_t> data;
  for (auto& t : p.tensors) {
    if (relayout) t.info["data_offsets"] = {data.size(), data.size() + t.bytes.size()};
    header[t.name] = t.info;
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  }
  write_header_and_data(path, header.dump(), data);
}

class CheckpointFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "splitconv-ckpt-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    model_ = build_model(parse_spec(kSpec, "test.net"));
    path_ = dir_ + "/model.safetensors";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Random bit patterns in every slot (NaN payloads, infinities, denormals and all), zero
  // padding: a round trip must give back exactly these bits.
  std::vector<float> random_buffer() {
    std::vector<float> buf(size_t(model_.param_floats), 0.0f);
    for (const auto& s : model_.slots)
      for (int64_t i = 0; i < s.size; ++i) buf[size_t(s.offset + i)] = std::bit_cast<float>(uint32_t(rng_()));
    return buf;
  }

  Checkpoint make(bool resumable) {
    Checkpoint ck;
    ck.spec_text = kSpec;
    ck.dataset = "mnist";
    ck.state.params = random_buffer();
    if (resumable) {
      ck.state.m = random_buffer();
      ck.state.v = random_buffer();
      ck.state.step = 123456789012;
      ck.state.epoch = 7;
    }
    return ck;
  }

  // Saves a resumable checkpoint, lets `edit` spoil it, and expects an InputError naming the
  // file and `fault`.
  void expect_rejected(const std::function<void(Parts&)>& edit, const std::string& fault,
                       bool relayout = true) {
    save_checkpoint(path_, model_, make(true));
    Parts p = take_apart(path_);
    edit(p);
    put_together(path_, p, relayout);
    expect_error(fault);
  }

  void expect_error(const std::string& fault) {
    try {
      load_checkpoint(path_);
      ADD_FAILURE() << "no InputError; expected " << fault;
    } catch (const InputError& e) {
      std::string msg = e.what();
      EXPECT_EQ(msg.rfind(path_, 0), 0u) << msg;
      EXPECT_NE(msg.find(fault), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    }
  }

  // The names in the directory: after a save, the checkpoint alone (no temporary file left).
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_))
      names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::string dir_, path_;
  Model model_;
  std::mt19937 rng_{std::random_device{}()};
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_F(CheckpointFile, ResumableRoundTripIsBitwise) {
  Checkpoint ck = make(true);
  save_checkpoint(path_, model_, ck);
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
  Checkpoint back = load_checkpoint(path_);
  EXPECT_TRUE(same_bits(back.state.params, ck.state.params));
  EXPECT_TRUE(same_bits(back.state.m, ck.state.m));
  EXPECT_TRUE(same_bits(back.state.v, ck.state.v));
  EXPECT_EQ(back.state.step, 123456789012);
  EXPECT_EQ(back.state.epoch, 7);
  EXPECT_EQ(back.dataset, "mnist");
  EXPECT_EQ(back.spec_text, kSpec);
  Model m = model_of(back, path_);
  EXPECT_EQ(m.param_floats, model_.param_floats);
  EXPECT_EQ(m.total_params, model_.total_params);
}

TEST_F(CheckpointFile, WeightsOnlyRoundTripHasNoOptimizerState) {
  Checkpoint ck = make(false);
  save_checkpoint(path_, model_, ck);
  Checkpoint back = load_checkpoint(path_);
  EXPECT_TRUE(same_bits(back.state.params, ck.state.params));
  EXPECT_TRUE(back.state.m.empty());
  EXPECT_TRUE(back.state.v.empty());
  EXPECT_EQ(back.state.step, 0);
}

TEST_F(CheckpointFile, FileIsPlainSafetensors) {
  save_checkpoint(path_, model_, make(true));
  auto bytes = slurp(path_);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(bytes[size_t(i)]) << (8 * i);
  EXPECT_EQ((8 + n) % 8, 0u) << "data 8-byte aligned";
  Parts p = take_apart(path_);
  EXPECT_EQ(p.metadata["format"], kCheckpointFormat);
  EXPECT_EQ(p.metadata["step"], "123456789012");
  EXPECT_EQ(p.metadata["epoch"], "7");
  auto& w = p.at("conv1.weight");
  EXPECT_EQ(w.info["dtype"], "F32");
  EXPECT_EQ(w.info["shape"], json({4, 1, 3, 3}));
  EXPECT_EQ(p.at("dense1.weight").info["shape"], json({10, 4}));
  EXPECT_EQ(p.tensors.size(), model_.slots.size() * 3);
  p.at("optimizer.m.conv2.bias");
  p.at("optimizer.v.dense1.bias");
}

TEST_F(CheckpointFile, SaveReplacesAnOldFileWhole) {
  save_checkpoint(path_, model_, make(true));
  Checkpoint ck = make(false);
  save_checkpoint(path_, model_, ck);
  EXPECT_TRUE(same_bits(load_checkpoint(path_).state.params, ck.state.params));
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
}

TEST_F(CheckpointFile, FailedSaveLeavesNoFile) {
  std::string bad = dir_ + "/no-such-dir/model.safetensors";
  EXPECT_THROW(save_checkpoint(bad, model_, make(true)), Error);
  EXPECT_FALSE(fs::exists(bad));
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(CheckpointFile, FailedSaveLeavesThePreviousCheckpointIntact) {
  save_checkpoint(path_, model_, make(true));
  const std::vector<uint8_t> before = slurp(path_);
  ASSERT_GT(before.size(), 2048u);
  // A save that fails part-way through its write, as on a full disk: a child process whose
  // file size limit is 1 KiB (it binds root too, unlike permissions).
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::signal(SIGXFSZ, SIG_IGN);  // the write fails with EFBIG instead of killing
    rlimit small{1024, 1024};
    if (setrlimit(RLIMIT_FSIZE, &small) != 0) _exit(3);
    try {
      save_checkpoint(path_, model_, make(true));  // over 2 KiB
    } catch (const Error& e) {
      _exit(std::string(e.what()).find(path_ + ": cannot write checkpoint") == 0 ? 0 : 4);
    }
    _exit(5);  // the save succeeded: the limit did not bite
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "3: no limit, 4: another error, 5: the save succeeded";
  EXPECT_EQ(slurp(path_), before) << "the previous checkpoint was touched";
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"}) << "a temporary file is left";
  EXPECT_NO_THROW(load_checkpoint(path_));
}

TEST_F(CheckpointFile, ConcurrentSavesToOnePathDoNotCollide) {
  // Each save has a temporary file of its own: with one shared name, a save could rename
  // another's half-written file into place or fail on its vanished temporary file.
  std::vector<Checkpoint> cks;
  for (int i = 0; i < 4; ++i) cks.push_back(make(true));
  std::vector<std::thread> threads;
  std::vector<int> failures(cks.size(), 0);
  for (size_t i = 0; i < cks.size(); ++i)
    threads.emplace_back([&, i] {
      for (int round = 0; round < 5; ++round) {
        try {
          save_checkpoint(path_, model_, cks[i]);
        } catch (const Error&) {
          ++failures[i];
        }
      }
    });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < cks.size(); ++i) EXPECT_EQ(failures[i], 0) << "saver " << i;
  EXPECT_EQ(listing(), std::vector<std::string>{"model.safetensors"});
  // The file is one of the saves, whole.
  const Checkpoint back = load_checkpoint(path_);
  bool one_of_them = false;
  for (const auto& ck : cks)
    one_of_them = one_of_them || same_bits(back.state.params, ck.state.params);
  EXPECT_TRUE(one_of_them);
}

TEST_F(CheckpointFile, SpecOfAnotherModelIsNotSaved) {
  Checkpoint ck = make(false);
  ck.spec_text = "input 8x8x1\nconv 5 3x3 relu\nflatten\ndense 10 softmax\n";
  EXPECT_THROW(save_checkpoint(path_, model_, ck), Error);
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(CheckpointFile, EmptySpecTextSavesTheModelsOwnSpec) {
  Checkpoint ck = make(false);
  ck.spec_text.clear();
  save_checkpoint(path_, model_, ck);
  Checkpoint back = load_checkpoint(path_);
  EXPECT_EQ(model_of(back, path_).param_floats, model_.param_floats);
  EXPECT_TRUE(same_bits(back.state.params, ck.state.params));
}

TEST_F(CheckpointFile, MissingFileIsNamed) { expect_error("cannot open"); }

TEST_F(CheckpointFile, ShortFileIsTruncated) {
  spit(path_, {1, 2, 3});
  expect_error("truncated");
}

TEST_F(CheckpointFile, HeaderLengthPastTheEnd) {
  save_checkpoint(path_, model_, make(true));
  auto bytes = slurp(path_);
  uint64_t n = bytes.size();  // one header byte past the end (the 8 length bytes count too)
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = uint8_t(n >> (8 * i));
  spit(path_, bytes);
  expect_error("header length");
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = 0xff;
  spit(path_, bytes);
  expect_error("header length");
}

TEST_F(CheckpointFile, BadJson) {
  write_header_and_data(path_, "{\"__metadata__\": {\"format\": ", {});
  expect_error("not valid JSON");
  write_header_and_data(path_, "[1, 2, 3]", {});
  expect_error("not a JSON object");
}

TEST_F(CheckpointFile, OffsetsPastTheEnd) {
  expect_rejected([](Parts& p) { p.at("conv1.bias").info["data_offsets"][1] = 1 << 30; },
                  "run past the end", false);
}

TEST_F(CheckpointFile, OffsetsRunningBackwards) {
  expect_rejected([](Parts& p) { p.at("conv1.bias").info["data_offsets"] = {16, 0}; },
                  "backwards", false);
}

TEST_F(CheckpointFile, OverlappingOffsets) {
  expect_rejected([](Parts& p) {
    p.at("conv2.bias").info["data_offsets"] = p.at("conv1.bias").info["data_offsets"];
  }, "overlap", false);
}

TEST_F(CheckpointFile, BytesThatDisagreeWithTheShape) {
  expect_rejected([](Parts& p) { p.at("conv1.bias").bytes.resize(32, 0); },
                  "tensor conv1.bias: 32 bytes for shape [4]");
}

TEST_F(CheckpointFile, GapBetweenTensors) {
  expect_rejected([](Parts& p) {
    // Four stray bytes before the last tensor, whose offsets move past them.
    auto& last = p.tensors.back();
    auto& off = last.info["data_offsets"];
    off = {off[0].get<uint64_t>() + 4, off[1].get<uint64_t>() + 4};
    last.bytes.insert(last.bytes.begin(), 4, 0);
  }, "4 unclaimed bytes before tensor", false);
}

TEST_F(CheckpointFile, TrailingBytesAfterTheLastTensor) {
  save_checkpoint(path_, model_, make(false));
  auto bytes = slurp(path_);
  bytes.insert(bytes.end(), {0, 0, 0, 0});
  spit(path_, bytes);
  expect_error("bytes after the last tensor");
}

TEST_F(CheckpointFile, WrongDtype) {
  expect_rejected([](Parts& p) { p.at("conv1.weight").info["dtype"] = "F16"; }, "dtype \"F16\"");
}

TEST_F(CheckpointFile, WrongShape) {
  // Same byte count, different shape: only the spec's model can tell.
  expect_rejected([](Parts& p) { p.at("conv1.weight").info["shape"] = {4, 1, 9, 1}; },
                  "tensor conv1.weight has shape [4,1,9,1], the spec's model needs [4,1,3,3]");
}

TEST_F(CheckpointFile, ShapeThatDisagreesWithTheBytes) {
  expect_rejected([](Parts& p) { p.at("conv1.weight").info["shape"] = {4, 1, 3, 4}; },
                  "bytes for shape [4,1,3,4]");
}

TEST_F(CheckpointFile, MissingTensor) {
  expect_rejected([](Parts& p) { p.erase("conv2.weight"); }, "tensor conv2.weight is missing");
}

TEST_F(CheckpointFile, ExtraTensor) {
  expect_rejected([](Parts& p) {
    Parts::Tensor t{"conv9.weight", {{"dtype", "F32"}, {"shape", {2}}}, std::vector<uint8_t>(8, 0)};
    p.tensors.push_back(t);
  }, "unexpected tensor conv9.weight");
}

TEST_F(CheckpointFile, HalfTheOptimizerState) {
  expect_rejected([](Parts& p) { p.erase("optimizer.v.conv3.bias"); },
                  "optimizer state is incomplete: tensor optimizer.v.conv3.bias is missing");
}

TEST_F(CheckpointFile, SpecThatDoesNotParse) {
  expect_rejected([](Parts& p) { p.metadata["spec"] = "input 8x8x1\nconv banana\n"; }, ":spec");
}

TEST_F(CheckpointFile, SpecThatDoesNotBuild) {
  expect_rejected([](Parts& p) { p.metadata["spec"] = "input 2x2x1\nconv 4 3x3 relu\nflatten\ndense 10 softmax\n"; },
                  "spec");
}

TEST_F(CheckpointFile, NoMetadata) {
  expect_rejected([](Parts& p) { p.has_metadata = false; }, "no __metadata__");
}

TEST_F(CheckpointFile, MetadataWithoutSpec) {
  expect_rejected([](Parts& p) { p.metadata.erase("spec"); }, "no \"spec\"");
}

TEST_F(CheckpointFile, UnknownFormat) {
  expect_rejected([](Parts& p) { p.metadata["format"] = "splitconv-99"; }, "unknown checkpoint format");
}

TEST_F(CheckpointFile, StepThatIsNotACount) {
  expect_rejected([](Parts& p) { p.metadata["step"] = "-3"; }, "not a count");
}

TEST_F(CheckpointFile, ModelOfRejectsParametersThatDoNotFit) {
  Checkpoint ck = make(false);
  ck.state.params.pop_back();
  EXPECT_THROW(model_of(ck, path_), InputError);
}

}  // namespace
