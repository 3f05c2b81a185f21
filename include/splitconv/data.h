// Datasets in IDX files (raw or .gz) and the data directory (docs/design.md, Formats).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace splitconv {

// Images as uint8 N×C×H×W (C = 1 for the IDX sets) with one uint8 label each.
struct ImageSet {
  int64_t count = 0;
  int h = 0, w = 0, c = 1;
  std::vector<uint8_t> pixels;  // count·c·h·w
  std::vector<uint8_t> labels;  // count (empty when there are none)
  int64_t image_size() const { return int64_t(c) * h * w; }
  // The first n images (all when n <= 0 or n >= count).
  ImageSet head(int64_t n) const;
};

struct Dataset {
  std::string name;  // "mnist", "fashion-mnist"
  ImageSet train, test;
  int classes = 10;
};

// IDX readers: magic, dimensions and sizes checked; a bad file throws InputError naming it.
// A path that does not exist is also tried with ".gz" appended.
ImageSet read_idx_images(const std::string& path);
std::vector<uint8_t> read_idx_labels(const std::string& path);
// Writes an IDX file of images (magic 0x00000803), for tests and tools.
void write_idx_images(const std::string& path, const ImageSet& set);
void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels);

// --data-dir, else $SPLITCONV_DATA, else ./data
std::string resolve_data_dir(const std::string& flag);
// The known dataset names.
const std::vector<std::string>& dataset_names();
// Loads DIR/NAME/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; a missing dataset
// throws InputError saying which files to put where and how to fetch them.
Dataset load_dataset(const std::string& name, const std::string& data_dir);

}  // namespace splitconv
