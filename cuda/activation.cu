// Elementwise kernels: ReLU, and the bias add (fused with ReLU) and bias gradient shared by the
// convolutions and the dense layers.
#include "check.h"
#include "ops.h"

namespace splitconv::gpu {
namespace {

constexpr int kBlock = 256;

__global__ void relu_forward_kernel(int64_t count, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

__global__ void relu_backward_kernel(int64_t count, const float* __restrict__ y,
                                     float* __restrict__ dy) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count;
       i += int64_t(gridDim.x) * blockDim.x)
    dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

__global__ void bias_act_kernel(int64_t total, int c, int64_t plane, const float* __restrict__ b,
                                bool relu, float* __restrict__ y) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int ch = int((i / plane) % c);
    const float v = y[i] + b[ch];
    y[i] = relu && !(v > 0.0f) ? 0.0f : v;
  }
}

// One block per channel: the block's threads stride over the n·plane values, then a tree sum
// in shared memory. Deterministic: the order of the sums does not depend on timing.
__global__ void bias_backward_kernel(int n, int c, int64_t plane, const float* __restrict__ dy,
                                     float* __restrict__ db) {
  __shared__ float partial[kBlock];
  const int ch = blockIdx.x;
  const int64_t total = int64_t(n) * plane;
  float sum = 0.0f;
  for (int64_t i = threadIdx.x; i < total; i += blockDim.x) {
    const int64_t img = i / plane, p = i - img * plane;
    sum += dy[(img * c + ch) * plane + p];
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (int(threadIdx.x) < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[ch] = partial[0];
}

}  // namespace

void relu_forward(cudaStream_t s, int64_t count, float* y) {
  if (count <= 0) return;
  relu_forward_kernel<<<grid_for(count, kBlock), kBlock, 0, s>>>(count, y);
  CHECK_LAUNCH();
}

void relu_backward(cudaStream_t s, int64_t count, const float* y, float* dy) {
  if (count <= 0) return;
  relu_backward_kernel<<<grid_for(count, kBlock), kBlock, 0, s>>>(count, y, dy);
  CHECK_LAUNCH();
}

void bias_act_forward(cudaStream_t s, int n, int c, int64_t plane, const float* b, bool relu,
                      float* y) {
  const int64_t total = int64_t(n) * c * plane;
  if (total <= 0) return;
  bias_act_kernel<<<grid_for(total, kBlock), kBlock, 0, s>>>(total, c, plane, b, relu, y);
  CHECK_LAUNCH();
}

void bias_backward(cudaStream_t s, int n, int c, int64_t plane, const float* dy, float* db) {
  if (c <= 0) return;
  // blockDim must equal kBlock: the shared array and the tree sum assume it (a power of two).
  bias_backward_kernel<<<unsigned(c), kBlock, 0, s>>>(n, c, plane, dy, db);
  CHECK_LAUNCH();
}

}  // namespace splitconv::gpu
