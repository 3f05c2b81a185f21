// A small deterministic generator: the same seed gives the same numbers on every platform
// and backend (std:: distributions are implementation-defined, so they are not used).
#pragma once
#include <cstdint>
#include <vector>

namespace splitconv {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  float uniform(float lo, float hi) { return float(lo + (hi - lo) * uniform()); }
  uint64_t below(uint64_t n) { return uint64_t(uniform() * double(n)); }  // [0, n)

 private:
  uint64_t state_;
};

// The order of the training images in one epoch (Fisher–Yates), fixed by seed and epoch.
std::vector<int32_t> epoch_order(int64_t count, uint64_t seed, int epoch);

}  // namespace splitconv
