// IDX reading and writing, raw and gzipped, and every way a data file can lie.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "splitconv/data.h"
#include "splitconv/error.h"

namespace fs = std::filesystem;
using namespace splitconv;

namespace {

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

void gzip_file(const std::string& src, const std::string& dst) {
  std::vector<uint8_t> bytes = slurp(src);
  gzFile gz = gzopen(dst.c_str(), "wb9");
  ASSERT_NE(gz, nullptr) << dst;
  ASSERT_EQ(gzwrite(gz, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
}

// Expects `f` to throw InputError whose message names `path` and contains `fault`.
template <class F>
void expect_input_error(F&& f, const std::string& path, const std::string& fault) {
  try {
    f();
    ADD_FAILURE() << "no InputError for " << path;
  } catch (const InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(fault), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
  }
}

class DataIdx : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "splitconv-data-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (fs::path(dir_) / name).string(); }

  ImageSet random_images(int64_t count, int h, int w) {
    ImageSet set;
    set.count = count;
    set.h = h;
    set.w = w;
    set.pixels.resize(size_t(count * h * w));
    for (auto& p : set.pixels) p = uint8_t(rng_());
    return set;
  }
  std::vector<uint8_t> random_labels(size_t n, int classes = 10) {
    std::vector<uint8_t> l(n);
    for (auto& x : l) x = uint8_t(rng_() % unsigned(classes));
    return l;
  }

  std::string dir_;
  std::mt19937 rng_{std::random_device{}()};
};

TEST_F(DataIdx, RawImagesAndLabelsRoundTrip) {
  ImageSet set = random_images(7, 5, 6);
  auto labels = random_labels(7);
  write_idx_images(path("img"), set);
  write_idx_labels(path("lab"), labels);
  ImageSet back = read_idx_images(path("img"));
  EXPECT_EQ(back.count, 7);
  EXPECT_EQ(back.h, 5);
  EXPECT_EQ(back.w, 6);
  EXPECT_EQ(back.c, 1);
  EXPECT_EQ(back.pixels, set.pixels);
  EXPECT_TRUE(back.labels.empty());
  EXPECT_EQ(read_idx_labels(path("lab")), labels);
  EXPECT_FALSE(fs::exists(path("img.tmp")));
}

TEST_F(DataIdx, WrittenImagesHaveTheStandardHeader) {
  write_idx_images(path("img"), random_images(3, 2, 4));
  auto bytes = slurp(path("img"));
  ASSERT_EQ(bytes.size(), 16u + 3 * 2 * 4);
  std::vector<uint8_t> header(bytes.begin(), bytes.begin() + 16);
  EXPECT_EQ(header, (std::vector<uint8_t>{0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 4}));
}

TEST_F(DataIdx, GzippedFilesRoundTripAndAreFoundWithoutTheSuffix) {
  ImageSet set = random_images(11, 28, 28);
  auto labels = random_labels(11);
  write_idx_images(path("raw-img"), set);
  write_idx_labels(path("raw-lab"), labels);
  gzip_file(path("raw-img"), path("img.gz"));
  gzip_file(path("raw-lab"), path("lab.gz"));
  EXPECT_EQ(read_idx_images(path("img.gz")).pixels, set.pixels);
  EXPECT_EQ(read_idx_images(path("img")).pixels, set.pixels);  // "img" does not exist: img.gz
  EXPECT_EQ(read_idx_labels(path("lab")), labels);
}

TEST_F(DataIdx, EmptySetRoundTrips) {
  ImageSet set = random_images(0, 3, 3);
  write_idx_images(path("img"), set);
  ImageSet back = read_idx_images(path("img"));
  EXPECT_EQ(back.count, 0);
  EXPECT_TRUE(back.pixels.empty());
}

TEST_F(DataIdx, LabelsReadAsImagesIsWrongMagic) {
  write_idx_labels(path("lab"), random_labels(5));
  expect_input_error([&] { read_idx_images(path("lab")); }, path("lab"), "magic 0x00000801");
  write_idx_images(path("img"), random_images(2, 3, 3));
  expect_input_error([&] { read_idx_labels(path("img")); }, path("img"), "magic 0x00000803");
}

TEST_F(DataIdx, TruncatedPixelsAreNamed) {
  write_idx_images(path("img"), random_images(10, 28, 28));
  auto bytes = slurp(path("img"));
  bytes.resize(bytes.size() - 100);
  spit(path("img"), bytes);
  expect_input_error([&] { read_idx_images(path("img")); }, path("img"),
                     "truncated: header says 10 images of 28×28 (7840 bytes of pixels) but the file "
                     "holds 7740 bytes");
}

TEST_F(DataIdx, TruncatedHeaderIsNamed) {
  write_idx_images(path("img"), random_images(1, 2, 2));
  auto bytes = slurp(path("img"));
  bytes.resize(10);
  spit(path("img"), bytes);
  expect_input_error([&] { read_idx_images(path("img")); }, path("img"), "truncated");
  spit(path("empty"), {});
  expect_input_error([&] { read_idx_labels(path("empty")); }, path("empty"), "truncated");
}

TEST_F(DataIdx, LabelCountBeyondTheFileIsTruncation) {
  write_idx_labels(path("lab"), random_labels(100));
  auto bytes = slurp(path("lab"));
  bytes[7] = 101;  // header count 101, 100 labels in the file
  spit(path("lab"), bytes);
  expect_input_error([&] { read_idx_labels(path("lab")); }, path("lab"),
                     "header says 101 labels (101 bytes) but the file holds 100 bytes");
}

TEST_F(DataIdx, LyingHugeCountFailsWithoutAllocating) {
  // 4294967295 images of 28×28 would be 3.4 TB; the raw file's size and the gz stream's
  // length are checked before any such allocation.
  write_idx_images(path("img"), random_images(3, 28, 28));
  auto bytes = slurp(path("img"));
  for (int i = 4; i < 8; ++i) bytes[size_t(i)] = 0xff;
  spit(path("img"), bytes);
  expect_input_error([&] { read_idx_images(path("img")); }, path("img"), "4294967295 images");
  write_idx_images(path("small"), random_images(3, 28, 28));
  bytes = slurp(path("small"));
  bytes[5] = 0x10;  // 1048579 images: 822 MB claimed, 2352 bytes present
  spit(path("small"), bytes);
  gzip_file(path("small"), path("small.gz"));
  expect_input_error([&] { read_idx_images(path("small.gz")); }, path("small.gz"),
                     "truncated: header says 1048579 images of 28×28 (822085936 bytes of pixels) "
                     "but the file holds 2352 bytes");
  gzip_file(path("img"), path("img.gz"));
  expect_input_error([&] { read_idx_images(path("img.gz")); }, path("img.gz"),
                     "implausible header: says 4294967295 images");
}

TEST_F(DataIdx, TrailingBytesAreRejected) {
  write_idx_images(path("img"), random_images(4, 3, 3));
  auto bytes = slurp(path("img"));
  bytes.insert(bytes.end(), {1, 2, 3});
  spit(path("img"), bytes);
  expect_input_error([&] { read_idx_images(path("img")); }, path("img"),
                     "trailing data: header says 4 images of 3×3 (36 bytes of pixels) but the file "
                     "holds 3 bytes more");
  gzip_file(path("img"), path("img2.gz"));
  expect_input_error([&] { read_idx_images(path("img2.gz")); }, path("img2.gz"), "trailing data");
}

TEST_F(DataIdx, CorruptGzipIsAnInputError) {
  write_idx_images(path("img"), random_images(50, 28, 28));
  gzip_file(path("img"), path("img.gz"));
  auto bytes = slurp(path("img.gz"));
  bytes.resize(bytes.size() / 2);
  spit(path("img.gz"), bytes);
  EXPECT_THROW(read_idx_images(path("img.gz")), InputError);
  expect_input_error([&] { read_idx_images(path("img.gz")); }, path("img.gz"), "gzip");
}

TEST_F(DataIdx, ZeroSidedImagesAreRejected) {
  write_idx_images(path("img"), random_images(2, 3, 3));
  auto bytes = slurp(path("img"));
  for (int i = 8; i < 12; ++i) bytes[size_t(i)] = 0;  // rows 0
  spit(path("img"), bytes);
  expect_input_error([&] { read_idx_images(path("img")); }, path("img"), "rows 0");
}

TEST_F(DataIdx, MissingFileIsNamed) {
  expect_input_error([&] { read_idx_images(path("nope")); }, path("nope"), "cannot open");
  expect_input_error([&] { read_idx_labels(path("nope")); }, path("nope"), "cannot open");
}

TEST_F(DataIdx, HeadTakesTheFirstImages) {
  ImageSet set = random_images(5, 2, 3);
  set.labels = random_labels(5);
  ImageSet two = set.head(2);
  EXPECT_EQ(two.count, 2);
  EXPECT_EQ(two.pixels, std::vector<uint8_t>(set.pixels.begin(), set.pixels.begin() + 12));
  EXPECT_EQ(two.labels, std::vector<uint8_t>(set.labels.begin(), set.labels.begin() + 2));
  EXPECT_EQ(set.head(0).count, 5);
  EXPECT_EQ(set.head(9).count, 5);
}

// --- datasets in a data directory ---

class DataDir : public DataIdx {
 protected:
  // Writes DIR/NAME with `train` and `test` images of 28×28; `gz` gzips the test files.
  void make_dataset(const std::string& name, int64_t train, int64_t test, bool gz) {
    std::string d = path(name);
    fs::create_directories(d);
    write_idx_images(d + "/train-images-idx3-ubyte", random_images(train, 28, 28));
    write_idx_labels(d + "/train-labels-idx1-ubyte", random_labels(size_t(train)));
    write_idx_images(d + "/t10k-images-idx3-ubyte", random_images(test, 28, 28));
    write_idx_labels(d + "/t10k-labels-idx1-ubyte", random_labels(size_t(test)));
    if (gz) {
      for (const char* f : {"/t10k-images-idx3-ubyte", "/t10k-labels-idx1-ubyte"}) {
        gzip_file(d + f, d + f + ".gz");
        fs::remove(d + f);
      }
    }
  }
};

TEST_F(DataDir, LoadsRawAndGzippedFiles) {
  make_dataset("mnist", 20, 8, true);
  Dataset ds = load_dataset("mnist", dir_);
  EXPECT_EQ(ds.name, "mnist");
  EXPECT_EQ(ds.classes, 10);
  EXPECT_EQ(ds.train.count, 20);
  EXPECT_EQ(ds.train.labels.size(), 20u);
  EXPECT_EQ(ds.test.count, 8);
  EXPECT_EQ(ds.test.h, 28);
  EXPECT_EQ(ds.test.pixels.size(), 8u * 784);
}

TEST_F(DataDir, MissingDatasetSaysWhichFilesToPutWhere) {
  try {
    load_dataset("fashion-mnist", dir_);
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    std::string msg = e.what();
    for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
      EXPECT_NE(msg.find(f), std::string::npos) << msg;
    }
    EXPECT_NE(msg.find(dir_ + "/fashion-mnist/"), std::string::npos) << msg;
    EXPECT_NE(msg.find("tools/fetch-data.sh"), std::string::npos) << msg;
  }
}

TEST_F(DataDir, UnknownNameListsTheKnownOnes) {
  try {
    load_dataset("cifar", dir_);
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("cifar"), std::string::npos) << msg;
    EXPECT_NE(msg.find("mnist, fashion-mnist"), std::string::npos) << msg;
  }
  EXPECT_EQ(dataset_names(), (std::vector<std::string>{"mnist", "fashion-mnist"}));
}

TEST_F(DataDir, LabelCountMustMatchImageCount) {
  make_dataset("mnist", 20, 8, false);
  std::string lab = path("mnist/train-labels-idx1-ubyte");
  write_idx_labels(lab, random_labels(19));
  expect_input_error([&] { load_dataset("mnist", dir_); }, lab, "19 labels for the 20 images");
}

TEST_F(DataDir, LabelsMustBeClasses) {
  make_dataset("mnist", 20, 8, false);
  std::string lab = path("mnist/t10k-labels-idx1-ubyte");
  auto labels = random_labels(8);
  labels[5] = 10;
  write_idx_labels(lab, labels);
  expect_input_error([&] { load_dataset("mnist", dir_); }, lab, "label 10 at index 5");
}

TEST(DataResolve, FlagThenEnvironmentThenDefault) {
  const char* old = std::getenv("SPLITCONV_DATA");
  std::string saved = old ? old : "";
  setenv("SPLITCONV_DATA", "/from/env", 1);
  EXPECT_EQ(resolve_data_dir("/from/flag"), "/from/flag");
  EXPECT_EQ(resolve_data_dir(""), "/from/env");
  unsetenv("SPLITCONV_DATA");
  EXPECT_EQ(resolve_data_dir(""), "./data");
  if (old) setenv("SPLITCONV_DATA", saved.c_str(), 1);
}

// The real sets, when tools/fetch-data.sh has put them in the data directory.
TEST(DataReal, FetchedDatasetsHaveTheirKnownSizes) {
  std::string dir = std::getenv("SPLITCONV_DATA") ? resolve_data_dir("")
                                                  : std::string(SPLITCONV_SOURCE_DIR) + "/data";
  int found = 0;
  for (const auto& name : dataset_names()) {
    if (!fs::exists(dir + "/" + name)) continue;
    ++found;
    Dataset ds = load_dataset(name, dir);
    EXPECT_EQ(ds.train.count, 60000) << name;
    EXPECT_EQ(ds.test.count, 10000) << name;
    EXPECT_EQ(ds.train.h, 28);
    EXPECT_EQ(ds.train.w, 28);
  }
  if (!found) GTEST_SKIP() << "no dataset in " << dir << " (tools/fetch-data.sh fetches them)";
}

}  // namespace
