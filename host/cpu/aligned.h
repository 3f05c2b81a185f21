// 64-byte aligned float storage for the CPU backend and the CPU benchmarks.
#pragma once
#include <cstddef>
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

}  // namespace splitconv::cpu
