// The CUDA ops: each the twin of a CPU op in host/cpu/cpu_ops.h — same name, same arguments in
// the same order — taking device pointers and, first, the stream it runs on (and the cuBLAS
// handle for dense layers). The step's changing values come as StepParams (splitconv/tensor.h)
// in device memory, so one captured graph serves every step. Nothing here synchronises or allocates, so every
// op may be captured into a CUDA graph. Tensors NCHW float32, weights OIHW / [out, in].
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "splitconv/tensor.h"

namespace splitconv::gpu {

// --- gather.cu ---
// x[i] = images[j]/255 and batch_labels[i] = labels[j] for i < count, with
// j = order[begin + i] (order null: j = begin + i); begin = sp->begin (sp null: 0).
// images: N×image_size uint8; labels and batch_labels may be null.
void gather_batch(cudaStream_t s, const uint8_t* images, const uint8_t* labels, int64_t image_size,
                  const int32_t* order, const StepParams* sp, int count, float* x,
                  uint8_t* batch_labels);

// --- activation.cu ---
void relu_forward(cudaStream_t s, int64_t count, float* y);                    // in place
void relu_backward(cudaStream_t s, int64_t count, const float* y, float* dy);  // dy *= (y > 0)
// y[n,c,p] = y[n,c,p] + b[c], then max(·, 0) when relu; y: n×c×plane (dense: plane = 1)
void bias_act_forward(cudaStream_t s, int n, int c, int64_t plane, const float* b, bool relu,
                      float* y);
// db[c] = Σ_{n,p} dy[n,c,p]   (overwritten)
void bias_backward(cudaStream_t s, int n, int c, int64_t plane, const float* dy, float* db);

// --- pool.cu ---
// argmax: index within the image's channel plane (h·w) of the chosen input; ties keep the first
void maxpool_forward(cudaStream_t s, const PoolGeom& g, const float* x, float* y, int32_t* argmax);
// dx (overwritten) = Σ of dy over the outputs whose argmax chose each input
void maxpool_backward(cudaStream_t s, const PoolGeom& g, const float* dy, const int32_t* argmax,
                      float* dx);

// --- dense.cu (cuBLAS; the handle's stream must already be s) ---
// y = x·Wᵀ + b, then ReLU when relu        x: n×in, w: out×in, y: n×out
void dense_forward(cublasHandle_t h, cudaStream_t s, const DenseGeom& g, const float* x,
                   const float* w, const float* b, bool relu, float* y);
// dx = dy·W (skipped when dx is null), dw = dyᵀ·x, db = Σ_n dy   (all overwritten)
void dense_backward(cublasHandle_t h, cudaStream_t s, const DenseGeom& g, const float* x,
                    const float* w, const float* dy, float* dx, float* dw, float* db);

// --- loss.cu ---
// Fused, numerically stable softmax + sparse categorical cross-entropy over n rows of k
// logits. Adds Σ loss to *loss_sum and the number of correct (first) arg-maxes to *correct.
// When dlogits is not null it receives (softmax − onehot)·grad_scale. A label ≥ k gives NaN.
void softmax_xent(cudaStream_t s, int n, int k, const float* logits, const uint8_t* labels,
                  float* dlogits, float grad_scale, double* loss_sum, unsigned long long* correct);
void softmax(cudaStream_t s, int n, int k, const float* logits, float* probs);

// --- adam.cu ---
// θ ← θ − lr_t·m/(√v + ε) after m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², with lr_t, β, ε
// read from *sp. One launch over the whole flat buffer (padding has g = 0 and stays 0).
void adam(cudaStream_t s, int64_t count, float* p, const float* g, float* m, float* v,
          const StepParams* sp);

}  // namespace splitconv::gpu
