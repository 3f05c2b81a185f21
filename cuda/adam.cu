// Adam in Keras's form over the whole flat parameter buffer, in one launch.
#include <cmath>

#include "check.h"
#include "ops.h"

namespace splitconv::gpu {
namespace {

constexpr int kBlock = 256;

// The step size and β, ε come from device memory (StepParams), so a captured graph replays
// every step unchanged. Same float arithmetic, in the same order, as cpu::adam.
__global__ void adam_kernel(int64_t count, float* __restrict__ p, const float* __restrict__ g,
                            float* __restrict__ m, float* __restrict__ v, const StepParams* sp) {
  const float lr_t = sp->lr_t, beta1 = sp->beta1, beta2 = sp->beta2, eps = sp->eps;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = g[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] -= lr_t * mi / (sqrtf(vi) + eps);
  }
}

}  // namespace

void adam(cudaStream_t s, int64_t count, float* p, const float* g, float* m, float* v,
          const StepParams* sp) {
  if (count <= 0) return;
  adam_kernel<<<grid_for(count, kBlock, 4096), kBlock, 0, s>>>(count, p, g, m, v, sp);
  CHECK_LAUNCH();
}

}  // namespace splitconv::gpu
