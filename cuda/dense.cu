// Dense layers through cuBLAS SGEMM. cuBLAS is column-major: a row-major n×in matrix is its
// column-major in×n transpose, so each product below is written for the transposes.
#include "check.h"
#include "ops.h"

namespace splitconv::gpu {

void dense_forward(cublasHandle_t h, cudaStream_t s, const DenseGeom& g, const float* x,
                   const float* w, const float* b, bool relu, float* y) {
  if (g.n <= 0) return;
  const float one = 1.0f, zero = 0.0f;
  // y = x·Wᵀ  ⇔  yᵀ (out×n) = W (out×in) · xᵀ (in×n); W is the column-major in×out wᵀ: op T.
  CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, g.out, g.n, g.in, &one, w, g.in, x, g.in,
                           &zero, y, g.out));
  bias_act_forward(s, g.n, g.out, 1, b, relu, y);
}

void dense_backward(cublasHandle_t h, cudaStream_t s, const DenseGeom& g, const float* x,
                    const float* w, const float* dy, float* dx, float* dw, float* db) {
  const float one = 1.0f, zero = 0.0f;
  if (dx && g.n > 0) {
    // dx = dy·W  ⇔  dxᵀ (in×n) = Wᵀ (in×out) · dyᵀ (out×n)
    CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, g.in, g.n, g.out, &one, w, g.in, dy,
                             g.out, &zero, dx, g.in));
  }
  // dw = dyᵀ·x  ⇔  dwᵀ (in×out) = xᵀ (in×n) · dy (n×out); dy is the column-major out×n dyᵀ: op T.
  // With n = 0 cuBLAS writes β·C = 0, the right gradient of an empty batch.
  CUBLAS_CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_T, g.in, g.out, g.n, &one, x, g.in, dy, g.out,
                           &zero, dw, g.in));
  bias_backward(s, g.n, g.out, 1, dy, db);
}

}  // namespace splitconv::gpu
