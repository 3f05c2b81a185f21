// IDX files (raw or gzipped) and the data directory (docs/design.md, Formats).
//
// Every size is checked before it is trusted: a raw file's size against its header before
// anything is allocated, a gzipped file's data as it streams in (it is never read past the
// header's size plus one byte), so a lying header costs an error, not a huge allocation.
#include "splitconv/data.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "splitconv/error.h"
#include "splitconv/files.h"

namespace splitconv {
namespace {

constexpr uint32_t kImageMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelMagic = 0x00000801;  // unsigned byte, 1 dimension
constexpr uint32_t kMaxSide = 1u << 15;       // keeps count·h·w well inside int64
constexpr int64_t kMaxPayload = int64_t(1) << 33;  // 8 GiB: no IDX set comes near it
constexpr size_t kChunk = size_t(1) << 20;

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// One IDX file opened for reading; gzip or raw is told by content, not by name.
class IdxReader {
 public:
  explicit IdxReader(const std::string& requested) {
    path_ = requested;
    if (!exists(path_) && exists(requested + ".gz")) path_ = requested + ".gz";
    struct stat st;
    if (::stat(path_.c_str(), &st) != 0) {
      int err = errno;
      throw InputError(requested + ": cannot open: " + std::strerror(err) +
                       (err == ENOENT ? " (nor " + requested + ".gz)" : ""));
    }
    if (S_ISDIR(st.st_mode)) throw InputError(path_ + ": is a directory, not an IDX file");
    file_size_ = int64_t(st.st_size);
    gz_.reset(gzopen(path_.c_str(), "rb"));
    if (!gz_) throw InputError(path_ + ": cannot open: " + std::strerror(errno));
    gzbuffer(gz_.get(), 1 << 17);
  }

  const std::string& path() const { return path_; }

  // Reads up to n bytes; fewer only at the end of the data.
  size_t read(void* buf, size_t n) {
    size_t done = 0;
    while (done < n) {
      unsigned want = unsigned(std::min(n - done, kChunk));
      int got = gzread(gz_.get(), static_cast<char*>(buf) + done, want);
      if (got < 0) fail_gz();
      if (got == 0) {
        check_gz();  // a truncated gzip stream ends with an error, not a clean end
        break;
      }
      done += size_t(got);
    }
    return done;
  }

  // Reads the header: the magic and `dims` big-endian 32-bit sizes.
  std::array<uint32_t, 4> header(uint32_t magic, int dims, const char* what) {
    uint8_t raw[16] = {};
    size_t want = size_t(4 + 4 * dims);
    size_t got = read(raw, want);
    if (got < 4) {
      throw InputError(path_ + ": truncated: " + std::to_string(got) + " bytes, shorter than an IDX " +
                       what + " header (" + std::to_string(want) + " bytes)");
    }
    uint32_t found = be32(raw);
    if (found != magic) {
      throw InputError(path_ + ": not an IDX " + what + " file: magic " + hex(found) + ", expected " +
                       hex(magic));
    }
    if (got < want) {
      throw InputError(path_ + ": truncated: " + std::to_string(got) + " bytes, shorter than an IDX " +
                       what + " header (" + std::to_string(want) + " bytes)");
    }
    std::array<uint32_t, 4> out = {found, 0, 0, 0};
    for (int i = 0; i < dims; ++i) out[size_t(i + 1)] = be32(raw + 4 + 4 * i);
    header_bytes_ = int64_t(want);
    return out;
  }

  // Reads exactly `expected` bytes of payload, the whole rest of the file; `what` describes
  // the payload for messages ("60000 images of 28×28 (47040000 bytes of pixels)").
  std::vector<uint8_t> payload(int64_t expected, const std::string& what) {
    if (gzdirect(gz_.get())) {
      // Raw: the file's size tells the whole story before anything is allocated.
      int64_t holds = file_size_ - header_bytes_;
      if (holds < expected) truncated(what, holds);
      if (holds > expected) trailing(what, holds - expected);
    }
    if (expected > kMaxPayload) throw InputError(path_ + ": implausible header: says " + what);
    // Gzipped: the buffer grows with the data that actually arrives, never ahead of it.
    std::vector<uint8_t> data;
    data.reserve(size_t(std::min<int64_t>(expected, int64_t(kChunk) * 16)));
    while (int64_t(data.size()) < expected) {
      size_t want = size_t(std::min<int64_t>(expected - int64_t(data.size()), int64_t(kChunk)));
      size_t at = data.size();
      data.resize(at + want);
      size_t got = read(data.data() + at, want);
      data.resize(at + got);
      if (got < want) truncated(what, int64_t(data.size()));
    }
    uint8_t extra;
    if (read(&extra, 1) != 0) trailing(what, -1);
    return data;
  }

 private:
  struct GzClose {
    void operator()(gzFile f) const { gzclose(f); }
  };

  static uint32_t be32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
  }
  static std::string hex(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
  }

  [[noreturn]] void truncated(const std::string& what, int64_t holds) const {
    throw InputError(path_ + ": truncated: header says " + what + " but the file holds " +
                     std::to_string(holds) + " bytes");
  }
  // `extra` < 0: a gzipped file, whose excess is not counted.
  [[noreturn]] void trailing(const std::string& what, int64_t extra) const {
    throw InputError(path_ + ": trailing data: header says " + what + " but the file holds " +
                     (extra >= 0 ? std::to_string(extra) + " bytes" : std::string("data")) +
                     " more");
  }
  void check_gz() const {
    int err = Z_OK;
    const char* msg = gzerror(gz_.get(), &err);
    if (err != Z_OK && err != Z_STREAM_END) {
      throw InputError(path_ + ": corrupt or truncated gzip data: " + (msg && *msg ? msg : "read error"));
    }
  }
  [[noreturn]] void fail_gz() const {
    check_gz();
    throw InputError(path_ + ": read error: " + std::strerror(errno));
  }

  std::string path_;
  int64_t file_size_ = 0;
  int64_t header_bytes_ = 0;
  std::unique_ptr<gzFile_s, GzClose> gz_;
};

void check_side(const std::string& path, const char* name, uint32_t v) {
  if (v == 0 || v > kMaxSide) {
    throw InputError(path + ": implausible IDX header: " + name + " " + std::to_string(v) +
                     " (expected 1 to " + std::to_string(kMaxSide) + ")");
  }
}

void put_be32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

// Writes header + payload through a temporary file and a rename: no half file is ever left.
void write_file(const std::string& path, const uint8_t* header, size_t header_len,
                const uint8_t* data, size_t len) {
  write_file_atomic(path, {{header, header_len}, {data, len}});
}

const std::array<const char*, 4> kFiles = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

// Loads one split; the counts of images and labels must agree and labels must be classes.
ImageSet load_split(const std::string& images_path, const std::string& labels_path, int classes) {
  ImageSet set = read_idx_images(images_path);
  set.labels = read_idx_labels(labels_path);
  std::string labels_shown = exists(labels_path) ? labels_path : labels_path + ".gz";
  if (int64_t(set.labels.size()) != set.count) {
    std::string images_shown = exists(images_path) ? images_path : images_path + ".gz";
    throw InputError(labels_shown + ": " + std::to_string(set.labels.size()) + " labels for the " +
                     std::to_string(set.count) + " images in " + images_shown);
  }
  for (size_t i = 0; i < set.labels.size(); ++i) {
    if (set.labels[i] >= classes) {
      throw InputError(labels_shown + ": label " + std::to_string(set.labels[i]) + " at index " +
                       std::to_string(i) + " is not a class (expected 0 to " +
                       std::to_string(classes - 1) + ")");
    }
  }
  return set;
}

}  // namespace

ImageSet ImageSet::head(int64_t n) const {
  if (n <= 0 || n >= count) return *this;
  ImageSet out;
  out.count = n;
  out.h = h;
  out.w = w;
  out.c = c;
  out.pixels.assign(pixels.begin(), pixels.begin() + n * image_size());
  if (!labels.empty()) out.labels.assign(labels.begin(), labels.begin() + n);
  return out;
}

ImageSet read_idx_images(const std::string& path) {
  IdxReader in(path);
  auto hdr = in.header(kImageMagic, 3, "image");
  check_side(in.path(), "rows", hdr[2]);
  check_side(in.path(), "columns", hdr[3]);
  ImageSet set;
  set.count = hdr[1];
  set.h = int(hdr[2]);
  set.w = int(hdr[3]);
  set.c = 1;
  int64_t bytes = set.count * set.image_size();
  std::string what = std::to_string(set.count) + " images of " + std::to_string(set.h) + "×" +
                     std::to_string(set.w) + " (" + std::to_string(bytes) + " bytes of pixels)";
  set.pixels = in.payload(bytes, what);
  return set;
}

std::vector<uint8_t> read_idx_labels(const std::string& path) {
  IdxReader in(path);
  auto hdr = in.header(kLabelMagic, 1, "label");
  int64_t count = hdr[1];
  return in.payload(count, std::to_string(count) + " labels (" + std::to_string(count) + " bytes)");
}

void write_idx_images(const std::string& path, const ImageSet& set) {
  if (set.c != 1) throw Error(path + ": IDX images have one channel, this set has " + std::to_string(set.c));
  if (set.count < 0 || set.count > int64_t(UINT32_MAX) || set.h <= 0 || set.w <= 0 ||
      int64_t(set.pixels.size()) != set.count * set.image_size()) {
    throw Error(path + ": inconsistent image set (" + std::to_string(set.count) + " images of " +
                std::to_string(set.h) + "×" + std::to_string(set.w) + ", " +
                std::to_string(set.pixels.size()) + " pixels)");
  }
  uint8_t hdr[16];
  put_be32(hdr, kImageMagic);
  put_be32(hdr + 4, uint32_t(set.count));
  put_be32(hdr + 8, uint32_t(set.h));
  put_be32(hdr + 12, uint32_t(set.w));
  write_file(path, hdr, sizeof hdr, set.pixels.data(), set.pixels.size());
}

void write_idx_labels(const std::string& path, const std::vector<uint8_t>& labels) {
  if (labels.size() > size_t(UINT32_MAX)) throw Error(path + ": too many labels for IDX");
  uint8_t hdr[8];
  put_be32(hdr, kLabelMagic);
  put_be32(hdr + 4, uint32_t(labels.size()));
  write_file(path, hdr, sizeof hdr, labels.data(), labels.size());
}

std::string resolve_data_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("SPLITCONV_DATA");
  if (env && *env) return env;
  return "./data";
}

const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names = {"mnist", "fashion-mnist"};
  return names;
}

Dataset load_dataset(const std::string& name, const std::string& data_dir) {
  const auto& names = dataset_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    throw InputError("unknown dataset '" + name + "' (known: " + join(names, ", ") + ")");
  }
  std::string dir = data_dir + "/" + name;
  std::vector<std::string> missing;
  for (const char* f : kFiles) {
    std::string p = dir + "/" + f;
    if (!exists(p) && !exists(p + ".gz")) missing.push_back(f);
  }
  if (!missing.empty()) {
    std::vector<std::string> all(kFiles.begin(), kFiles.end());
    std::string lacks = missing.size() == all.size() ? "" : " (it lacks " + join(missing, ", ") + ")";
    throw InputError("dataset " + name + " not found in " + dir + "/" + lacks +
                     ": put the four IDX files " + join(all, ", ") + " (raw or .gz) there, or run " +
                     "tools/fetch-data.sh " + data_dir + " to fetch them");
  }
  Dataset ds;
  ds.name = name;
  ds.train = load_split(dir + "/" + kFiles[0], dir + "/" + kFiles[1], ds.classes);
  ds.test = load_split(dir + "/" + kFiles[2], dir + "/" + kFiles[3], ds.classes);
  if (ds.train.h != ds.test.h || ds.train.w != ds.test.w) {
    throw InputError(dir + "/" + kFiles[2] + ": test images are " + std::to_string(ds.test.h) + "×" +
                     std::to_string(ds.test.w) + " but training images " +
                     std::to_string(ds.train.h) + "×" + std::to_string(ds.train.w));
  }
  return ds;
}

}  // namespace splitconv
