// Softmax + sparse categorical cross-entropy + accuracy, fused; and plain softmax for predict.
// One thread per row: the rows are short (k = 10 for the datasets here), and double precision
// for the exponential sums keeps the loss within rounding of cpu::softmax_xent.
#include <cmath>

#include "check.h"
#include "ops.h"

namespace splitconv::gpu {
namespace {

constexpr int kBlock = 128;

__device__ int first_argmax(const float* row, int k) {
  int top = 0;
  for (int j = 1; j < k; ++j) top = row[j] > row[top] ? j : top;
  return top;
}

// One block: thread t takes rows t, t + kBlock, … in order and sums their losses and hits,
// then a fixed tree sums the threads and thread 0 adds the total to the device accumulators
// with one atomic each. Launches on a stream run one after another, so the accumulators see
// the same additions in the same order on every run: the sums are reproducible bit for bit.
// (A batch is at most a few thousand rows of ~10 logits: one block is not the bottleneck.)
__global__ void softmax_xent_kernel(int n, int k, const float* __restrict__ logits,
                                    const uint8_t* __restrict__ labels, float* __restrict__ dlogits,
                                    float grad_scale, double* loss_sum,
                                    unsigned long long* correct) {
  __shared__ double loss_part[kBlock];
  __shared__ unsigned hit_part[kBlock];
  double loss = 0;
  unsigned hit = 0;
  for (int r = int(threadIdx.x); r < n; r += kBlock) {
    const float* row = logits + int64_t(r) * k;
    const int label = labels[r];
    const int top = first_argmax(row, k);
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += exp(double(row[j]) - double(row[top]));
    const double log_sum = log(sum);
    if (label < k) {
      loss += log_sum - (double(row[label]) - double(row[top]));  // −log softmax[label]
      hit += top == label ? 1u : 0u;
    } else {
      loss = nan("");  // the host checks labels on upload; this only guards the kernel
    }
    if (dlogits) {
      float* d = dlogits + int64_t(r) * k;
      for (int j = 0; j < k; ++j) {
        const double p = exp(double(row[j]) - double(row[top]) - log_sum);
        d[j] = float((p - (j == label ? 1.0 : 0.0)) * double(grad_scale));
      }
    }
  }
  loss_part[threadIdx.x] = loss;
  hit_part[threadIdx.x] = hit;
  __syncthreads();
  for (int stride = kBlock / 2; stride > 0; stride /= 2) {
    if (int(threadIdx.x) < stride) {
      loss_part[threadIdx.x] += loss_part[threadIdx.x + stride];
      hit_part[threadIdx.x] += hit_part[threadIdx.x + stride];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    atomicAdd(loss_sum, loss_part[0]);
    atomicAdd(correct, (unsigned long long)hit_part[0]);
  }
}

__global__ void softmax_kernel(int n, int k, const float* __restrict__ logits,
                               float* __restrict__ probs) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= n) return;
  const float* row = logits + int64_t(r) * k;
  float* p = probs + int64_t(r) * k;
  const float top = row[first_argmax(row, k)];
  double sum = 0;
  for (int j = 0; j < k; ++j) sum += exp(double(row[j]) - double(top));
  for (int j = 0; j < k; ++j) p[j] = float(exp(double(row[j]) - double(top)) / sum);
}

unsigned blocks(int n) { return unsigned(ceil_div(n, kBlock)); }

}  // namespace

void softmax_xent(cudaStream_t s, int n, int k, const float* logits, const uint8_t* labels,
                  float* dlogits, float grad_scale, double* loss_sum, unsigned long long* correct) {
  if (n <= 0 || k <= 0) return;
  // One block of kBlock threads: the shared arrays, the tree sum and the fixed order assume it.
  softmax_xent_kernel<<<1, kBlock, 0, s>>>(n, k, logits, labels, dlogits, grad_scale,
                                                   loss_sum, correct);
  CHECK_LAUNCH();
}

void softmax(cudaStream_t s, int n, int k, const float* logits, float* probs) {
  if (n <= 0 || k <= 0) return;
  softmax_kernel<<<blocks(n), kBlock, 0, s>>>(n, k, logits, probs);
  CHECK_LAUNCH();
}

}  // namespace splitconv::gpu
