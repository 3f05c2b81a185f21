// Geometry of the ops, shared by the CPU and CUDA backends. Tensors are NCHW float32.
#pragma once
#include <cstdint>

#include "splitconv/model.h"

namespace splitconv {

// x: n×c×h×w, weight: m×c×kh×kw (OIHW), bias: m, y: n×m×oh×ow
struct ConvGeom {
  int n = 0, c = 0, h = 0, w = 0;
  int m = 0, kh = 0, kw = 0;
  int stride = 1, pad_top = 0, pad_left = 0;
  int oh = 0, ow = 0;
  int64_t x_size() const { return int64_t(n) * c * h * w; }
  int64_t y_size() const { return int64_t(n) * m * oh * ow; }
  int64_t w_size() const { return int64_t(m) * c * kh * kw; }
};

// x: n×c×h×w, y: n×c×oh×ow; windows ph×pw with the given stride, no padding
struct PoolGeom {
  int n = 0, c = 0, h = 0, w = 0;
  int ph = 0, pw = 0, stride = 1;
  int oh = 0, ow = 0;
  int64_t x_size() const { return int64_t(n) * c * h * w; }
  int64_t y_size() const { return int64_t(n) * c * oh * ow; }
};

// x: n×in, weight: out×in, bias: out, y: n×out
struct DenseGeom {
  int n = 0, in = 0, out = 0;
};

inline ConvGeom conv_geom(const Layer& l, int batch) {
  return {batch, l.in.c, l.in.h, l.in.w, l.out.c, l.spec.kh, l.spec.kw,
          l.stride, l.pad_top, l.pad_left, l.out.h, l.out.w};
}
inline PoolGeom pool_geom(const Layer& l, int batch) {
  return {batch, l.in.c, l.in.h, l.in.w, l.spec.kh, l.spec.kw, l.stride, l.out.h, l.out.w};
}
inline DenseGeom dense_geom(const Layer& l, int batch) {
  return {batch, int(l.in.size()), l.out.c};
}

// What changes from one training step to the next. The GPU engine reads it from device memory
// (the host writes it with one small copy a step, so one captured graph serves every step);
// the CPU ops take it from host memory.
struct StepParams {
  int64_t begin = 0;  // first index into the epoch's order
  float lr_t = 0;     // Keras's lr·√(1−β2ᵗ)/(1−β1ᵗ), from adam_step_size
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-7f;
};

// Keras's Adam step size: lr_t = lr·√(1−β2ᵗ)/(1−β1ᵗ)
double adam_step_size(double lr, double beta1, double beta2, int64_t t);

}  // namespace splitconv
