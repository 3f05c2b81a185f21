#include "splitconv/random.h"

#include <cstddef>
#include <numeric>
#include <utility>

namespace splitconv {

std::vector<int32_t> epoch_order(int64_t count, uint64_t seed, int epoch) {
  std::vector<int32_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), 0);
  // A generator per epoch, so resuming at epoch E draws the same order as running through.
  Rng rng(seed * 0x100000001B3ull + 0x5EED0000ull + uint64_t(epoch));
  for (int64_t i = count - 1; i > 0; --i) {
    int64_t j = int64_t(rng.below(uint64_t(i) + 1));
    std::swap(order[std::size_t(i)], order[std::size_t(j)]);
  }
  return order;
}

}  // namespace splitconv
