// 64-byte aligned float storage for the CPU backend and the CPU benchmarks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "splitconv/error.h"

namespace splitconv::cpu {

// 64-byte aligned storage. With AVX, Eigen's kernels take a different path for a buffer that
// is not 32-byte aligned, and that changes the rounding: aligned buffers keep a step bitwise
// reproducible from run to run, whatever malloc returns.
template <class T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <class U>
  Aligned64(const Aligned64<U>&) {}
  // A failed allocation says how many bytes it asked for (the command line exits 2).
  T* allocate(size_t n) {
    try {
      return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64)));
    } catch (const std::bad_alloc&) {
      throw OutOfMemory(n * sizeof(T));
    }
  }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  template <class U>
  bool operator==(const Aligned64<U>&) const { return true; }
};
using AlignedFloats = std::vector<float, Aligned64<float>>;

// f floats rounded up to whole 64-byte lines: parts of a 64-byte aligned workspace laid one
// after another stay aligned.
inline int64_t round16(int64_t f) { return (f + 15) / 16 * 16; }

}  // namespace splitconv::cpu
