// GEMMs for the CPU engine that never allocate: Eigen's GEMM kernels, given their packing
// buffers (which an Eigen product expression allocates on each call) from the caller's
// workspace. The results are the bits of the Eigen expression with the same operands (same
// kernels, same blocking), so the reference ops and the engine agree as before.
#pragma once
#include <cstdint>

namespace splitconv::cpu {

// One operand: a row-major matrix at p with leading dimension ld, used as stored or transposed.
struct GemmOperand {
  const float* p;
  int64_t ld;
  bool transposed = false;
};

// Floats of packing space gemm needs for C (m×n) = A (m×k) · B (k×n); the space must be
// 64-byte aligned (cpu/aligned.h). Depends on this CPU's cache sizes, the same for a process.
int64_t gemm_space(int64_t m, int64_t n, int64_t k);

// C = A·B, or C += A·B when accumulate; C row-major with leading dimension ldc. `space` holds
// at least gemm_space(m, n, k) floats.
void gemm(int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b, float* c, int64_t ldc,
          bool accumulate, float* space);

}  // namespace splitconv::cpu
