// Fuzz target: the IDX readers (read_idx_images, read_idx_labels), raw and gzipped.
//
// The first byte chooses how the rest reaches the readers: even, the file is the rest as it
// is (raw IDX, or a gzip stream taken from the corpus and mutated into corrupt ones); odd, the
// rest is gzipped first, so that valid gzip streams carry mutated IDX contents. Both readers
// read the same file. Promises checked: bad data is an InputError; what is read agrees with
// itself (count × rows × columns pixels, rows and columns positive).
#include <zlib.h>

#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "splitconv/data.h"
#include "splitconv/error.h"

using namespace splitconv;

namespace {

std::string write_input(const uint8_t* data, size_t size) {
  if (size == 0 || (data[0] & 1) == 0)
    return fuzz::scratch_file("input-idx3-ubyte", size ? data + 1 : data, size ? size - 1 : 0);
  std::string path = fuzz::scratch_file("input-idx3-ubyte", nullptr, 0);
  gzFile gz = gzopen(path.c_str(), "wb");
  if (!gz) fuzz::fail("cannot open " + path + " for gzip");
  if (size > 1 && gzwrite(gz, data + 1, unsigned(size - 1)) != int(size - 1))
    fuzz::fail("cannot gzip into " + path);
  if (gzclose(gz) != Z_OK) fuzz::fail("cannot gzip into " + path);
  return path;
}

}  // namespace

SPLITCONV_FUZZ_TARGET(idx) {
  const std::string path = write_input(data, size);
  try {
    ImageSet set = read_idx_images(path);
    if (set.h <= 0 || set.w <= 0 || set.c != 1 || set.count < 0)
      fuzz::fail("images: implausible shape " + std::to_string(set.count) + "×" +
                 std::to_string(set.h) + "×" + std::to_string(set.w) + "×" + std::to_string(set.c));
    if (int64_t(set.pixels.size()) != set.count * set.image_size())
      fuzz::fail("images: " + std::to_string(set.pixels.size()) + " pixels for " +
                 std::to_string(set.count) + " images of " + std::to_string(set.image_size()));
    if (!set.labels.empty()) fuzz::fail("images: labels from an image file");
    ImageSet head = set.head(1);
    if (set.count >= 1 && head.count != 1) fuzz::fail("images: head(1) holds no single image");
  } catch (const InputError&) {
  }
  try {
    std::vector<uint8_t> labels = read_idx_labels(path);
    (void)labels;
  } catch (const InputError&) {
  }
  return 0;
}
