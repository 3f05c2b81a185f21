// The CPU ops: the readable reference every CUDA op, and every fast op of the CPU engine
// (engine_ops.h), is tested against. Shapes are in the geometry structs (splitconv/tensor.h);
// all tensors NCHW float32, weights OIHW / [out,in].
#pragma once
#include <cstdint>

#include "splitconv/tensor.h"

namespace splitconv::cpu {

// Floats of scratch the conv ops need (im2col columns for one image).
int64_t conv_workspace(const ConvGeom& g);

// y[n,m,oh,ow] = b[m] + Σ_{c,i,j} w[m,c,i,j]·x[n,c,oh·s+i−pt, ow·s+j−pl]
void conv_forward(const ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                  float* workspace);
// dx = conv_transpose(dy, w)        (dx: n×c×h×w, overwritten)
void conv_backward_data(const ConvGeom& g, const float* dy, const float* w, float* dx,
                        float* workspace);
// dw = Σ_n dy ⋆ x, db = Σ dy       (overwritten, not accumulated)
void conv_backward_filter(const ConvGeom& g, const float* x, const float* dy, float* dw,
                          float* db, float* workspace);

void relu_forward(int64_t count, float* y);                        // in place
void relu_backward(int64_t count, const float* y, float* dy);       // dy *= (y > 0)
// y[n,c,p] = y[n,c,p] + b[c], then max(·, 0) when relu; y: n×c×plane (dense: plane = 1)
void bias_act_forward(int n, int c, int64_t plane, const float* b, bool relu, float* y);
// db[c] = Σ_{n,p} dy[n,c,p]   (overwritten)
void bias_backward(int n, int c, int64_t plane, const float* dy, float* db);

// argmax: index within the image's channel plane (h·w) of the chosen input, per output
void maxpool_forward(const PoolGeom& g, const float* x, float* y, int32_t* argmax);
void maxpool_backward(const PoolGeom& g, const float* dy, const int32_t* argmax, float* dx);

// y = x·Wᵀ + b, then ReLU when relu        x: n×in, w: out×in, y: n×out
void dense_forward(const DenseGeom& g, const float* x, const float* w, const float* b, bool relu,
                   float* y);
// dx may be null (first layer); dw, db overwritten
void dense_backward(const DenseGeom& g, const float* x, const float* w, const float* dy,
                    float* dx, float* dw, float* db);
// The dense layer's parts around its GEMMs, shared with the engine's dense ops (engine_ops.h):
// y (n×out) += b on every row, then max(·, 0) when relu; db = Σ over the rows of dy.
void dense_bias_act(const DenseGeom& g, const float* b, bool relu, float* y);
void dense_bias_grad(const DenseGeom& g, const float* dy, float* db);

// Fused, numerically stable softmax + sparse categorical cross-entropy over n rows of k
// logits. Adds Σ loss and the number of correct arg-maxes to *loss_sum and *correct. When
// dlogits is not null it receives (softmax − onehot)·grad_scale (grad_scale = 1/batch).
void softmax_xent(int n, int k, const float* logits, const uint8_t* labels, float* dlogits,
                  float grad_scale, double* loss_sum, int64_t* correct);
// probabilities of n rows of k logits
void softmax(int n, int k, const float* logits, float* probs);

// θ ← θ − lr_t·m/(√v + ε) after m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g², with lr_t, β, ε
// read from *sp.
void adam(int64_t count, float* p, const float* g, float* m, float* v, const StepParams* sp);

// x[i] = images[j]/255 and batch_labels[i] = labels[j] for i < count, with j = order[begin + i]
// (order null: j = begin + i). images: N×image_size uint8; labels and batch_labels may be null.
// The twin of gpu::gather_batch (which reads begin from the device).
void gather_batch(const uint8_t* images, const uint8_t* labels, int64_t image_size,
                  const int32_t* order, int64_t begin, int count, float* x, uint8_t* batch_labels);

}  // namespace splitconv::cpu
