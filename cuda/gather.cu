// Gathers a training batch from the uint8 images on the device, normalised to [0, 1].
#include "check.h"
#include "ops.h"

namespace splitconv::gpu {
namespace {

constexpr int kBlock = 256;

// One thread per output pixel (grid-stride); the first pixel of an image also copies its label.
__global__ void gather_kernel(const uint8_t* __restrict__ images,
                              const uint8_t* __restrict__ labels, int64_t image_size,
                              const int32_t* __restrict__ order, const StepParams* sp, int count,
                              float* __restrict__ x, uint8_t* __restrict__ batch_labels) {
  const int64_t begin = sp ? sp->begin : 0;
  const int64_t total = int64_t(count) * image_size;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t img = i / image_size, px = i - img * image_size;
    const int64_t src = order ? int64_t(order[begin + img]) : begin + img;
    x[i] = float(images[src * image_size + px]) / 255.0f;  // as cpu::gather_batch: exact
    if (px == 0 && labels && batch_labels) batch_labels[img] = labels[src];
  }
}

}  // namespace

void gather_batch(cudaStream_t s, const uint8_t* images, const uint8_t* labels, int64_t image_size,
                  const int32_t* order, const StepParams* sp, int count, float* x,
                  uint8_t* batch_labels) {
  if (count <= 0 || image_size <= 0) return;
  gather_kernel<<<grid_for(int64_t(count) * image_size, kBlock), kBlock, 0, s>>>(
      images, labels, image_size, order, sp, count, x, batch_labels);
  CHECK_LAUNCH();
}

}  // namespace splitconv::gpu
