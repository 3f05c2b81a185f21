// The CPU ops: plain loops where the work is memory-bound, im2col + Eigen GEMM where it is
// compute-bound. Single-threaded on purpose, so each op stays a readable specification; the
// CPU engine runs its convolutions and pooling with the fast ops of engine_ops.h instead.
#include "cpu/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "cpu/eigen_maps.h"
#include "splitconv/error.h"

namespace splitconv {

double adam_step_size(double lr, double beta1, double beta2, int64_t t) {
  // Keras's step size (docs/design.md, Numeric conventions): lr_t = lr·√(1−β2ᵗ)/(1−β1ᵗ)
  const double td = double(t);
  return lr * std::sqrt(1.0 - std::pow(beta2, td)) / (1.0 - std::pow(beta1, td));
}

}  // namespace splitconv

namespace splitconv::cpu {
namespace {

// Output columns [lo, hi) whose input column o·s + j − pad falls inside [0, size).
void valid_range(int out, int size, int s, int j, int pad, int* lo, int* hi) {
  const int first = pad - j;  // o·s ≥ pad − j
  *lo = first <= 0 ? 0 : (first + s - 1) / s;
  const int last = size - 1 + pad - j;  // o·s ≤ size − 1 + pad − j
  *hi = last < 0 ? 0 : std::min(out, last / s + 1);
  *lo = std::min(*lo, *hi);
}

// One image x: c×h×w → cols: (c·kh·kw)×(oh·ow), zeros where the window reads padding.
void im2col(const ConvGeom& g, const float* x, float* cols) {
  for (int c = 0; c < g.c; ++c) {
    for (int i = 0; i < g.kh; ++i) {
      for (int j = 0; j < g.kw; ++j) {
        float* row = cols + ((int64_t(c) * g.kh + i) * g.kw + j) * g.oh * g.ow;
        int xlo, xhi;
        valid_range(g.ow, g.w, g.stride, j, g.pad_left, &xlo, &xhi);
        for (int oy = 0; oy < g.oh; ++oy) {
          float* out = row + int64_t(oy) * g.ow;
          const int iy = oy * g.stride + i - g.pad_top;
          if (iy < 0 || iy >= g.h) {
            std::fill(out, out + g.ow, 0.0f);
            continue;
          }
          const float* in = x + (int64_t(c) * g.h + iy) * g.w + j - g.pad_left;
          std::fill(out, out + xlo, 0.0f);
          if (g.stride == 1) {
            std::copy(in + xlo, in + xhi, out + xlo);  // the common case, as one memcpy
          } else {
            for (int ox = xlo; ox < xhi; ++ox) out[ox] = in[ox * g.stride];
          }
          std::fill(out + xhi, out + g.ow, 0.0f);
        }
      }
    }
  }
}

// The adjoint of im2col: dx (c×h×w, zeroed by the caller) += the columns back in place.
void col2im(const ConvGeom& g, const float* cols, float* dx) {
  for (int c = 0; c < g.c; ++c) {
    for (int i = 0; i < g.kh; ++i) {
      for (int j = 0; j < g.kw; ++j) {
        const float* row = cols + ((int64_t(c) * g.kh + i) * g.kw + j) * g.oh * g.ow;
        int xlo, xhi;
        valid_range(g.ow, g.w, g.stride, j, g.pad_left, &xlo, &xhi);
        for (int oy = 0; oy < g.oh; ++oy) {
          const int iy = oy * g.stride + i - g.pad_top;
          if (iy < 0 || iy >= g.h) continue;
          const float* in = row + int64_t(oy) * g.ow;
          float* out = dx + (int64_t(c) * g.h + iy) * g.w + j - g.pad_left;
          for (int ox = xlo; ox < xhi; ++ox) out[ox * g.stride] += in[ox];
        }
      }
    }
  }
}

int64_t patch_size(const ConvGeom& g) { return int64_t(g.c) * g.kh * g.kw; }

}  // namespace

int64_t conv_workspace(const ConvGeom& g) { return patch_size(g) * g.oh * g.ow; }

void conv_forward(const ConvGeom& g, const float* x, const float* w, const float* b, float* y,
                  float* workspace) {
  const int64_t k = patch_size(g), p = int64_t(g.oh) * g.ow;
  const CMapR wmat(w, g.m, k);  // m×(c·kh·kw)
  const CVec bias(b, g.m);
  for (int n = 0; n < g.n; ++n) {
    im2col(g, x + n * (int64_t(g.c) * g.h * g.w), workspace);
    MapR ymat(y + n * g.m * p, g.m, p);  // m×(oh·ow)
    ymat.noalias() = wmat * CMapR(workspace, k, p);
    ymat.colwise() += bias;
  }
}

void conv_backward_data(const ConvGeom& g, const float* dy, const float* w, float* dx,
                        float* workspace) {
  const int64_t k = patch_size(g), p = int64_t(g.oh) * g.ow, image = int64_t(g.c) * g.h * g.w;
  const CMapR wmat(w, g.m, k);
  MapR cols(workspace, k, p);
  std::fill(dx, dx + g.x_size(), 0.0f);
  for (int n = 0; n < g.n; ++n) {
    cols.noalias() = wmat.transpose() * CMapR(dy + n * g.m * p, g.m, p);
    col2im(g, workspace, dx + n * image);
  }
}

void conv_backward_filter(const ConvGeom& g, const float* x, const float* dy, float* dw, float* db,
                          float* workspace) {
  const int64_t k = patch_size(g), p = int64_t(g.oh) * g.ow, image = int64_t(g.c) * g.h * g.w;
  MapR dwmat(dw, g.m, k);
  Vec dbias(db, g.m);
  dwmat.setZero();
  dbias.setZero();
  for (int n = 0; n < g.n; ++n) {
    im2col(g, x + n * image, workspace);
    const CMapR dymat(dy + n * g.m * p, g.m, p);
    dwmat.noalias() += dymat * CMapR(workspace, k, p).transpose();
    dbias += dymat.rowwise().sum();
  }
}

void relu_forward(int64_t count, float* y) {
  for (int64_t i = 0; i < count; ++i) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

void relu_backward(int64_t count, const float* y, float* dy) {
  for (int64_t i = 0; i < count; ++i) dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void maxpool_forward(const PoolGeom& g, const float* x, float* y, int32_t* argmax) {
  const int64_t planes = int64_t(g.n) * g.c;
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* in = x + pl * g.h * g.w;
    for (int oy = 0; oy < g.oh; ++oy) {
      for (int ox = 0; ox < g.ow; ++ox) {
        // Valid pooling: the window lies inside the map; ties keep the first maximum.
        const int corner = oy * g.stride * g.w + ox * g.stride;
        int best = corner;
        float top = in[corner];
        for (int i = 0; i < g.ph; ++i) {
          for (int j = 0; j < g.pw; ++j) {
            const int at = corner + i * g.w + j;
            best = in[at] > top ? at : best;
            top = in[at] > top ? in[at] : top;
          }
        }
        const int64_t o = (pl * g.oh + oy) * g.ow + ox;
        y[o] = top;
        argmax[o] = best;
      }
    }
  }
}

void maxpool_backward(const PoolGeom& g, const float* dy, const int32_t* argmax, float* dx) {
  std::fill(dx, dx + g.x_size(), 0.0f);
  const int64_t planes = int64_t(g.n) * g.c, out = int64_t(g.oh) * g.ow;
  for (int64_t pl = 0; pl < planes; ++pl) {
    // += : overlapping windows (stride < pool) may pick the same input twice.
    for (int64_t o = 0; o < out; ++o) dx[pl * g.h * g.w + argmax[pl * out + o]] += dy[pl * out + o];
  }
}

void dense_forward(const DenseGeom& g, const float* x, const float* w, const float* b, bool relu,
                   float* y) {
  MapR ymat(y, g.n, g.out);
  ymat.noalias() = CMapR(x, g.n, g.in) * CMapR(w, g.out, g.in).transpose();
  dense_bias_act(g, b, relu, y);
}

void dense_bias_act(const DenseGeom& g, const float* b, bool relu, float* y) {
  MapR(y, g.n, g.out).rowwise() += CVec(b, g.out).transpose();
  if (relu) relu_forward(int64_t(g.n) * g.out, y);
}

void dense_bias_grad(const DenseGeom& g, const float* dy, float* db) {
  Vec(db, g.out) = CMapR(dy, g.n, g.out).colwise().sum().transpose();
}

void bias_act_forward(int n, int c, int64_t plane, const float* b, bool relu, float* y) {
  for (int i = 0; i < n; ++i)
    for (int ch = 0; ch < c; ++ch) {
      float* row = y + (int64_t(i) * c + ch) * plane;
      for (int64_t p = 0; p < plane; ++p) {
        const float v = row[p] + b[ch];
        row[p] = relu && v < 0.0f ? 0.0f : v;
      }
    }
}

void bias_backward(int n, int c, int64_t plane, const float* dy, float* db) {
  for (int ch = 0; ch < c; ++ch) {
    double sum = 0;  // the CUDA twin sums in float in another order: compared within rounding
    for (int i = 0; i < n; ++i) {
      const float* row = dy + (int64_t(i) * c + ch) * plane;
      for (int64_t p = 0; p < plane; ++p) sum += row[p];
    }
    db[ch] = float(sum);
  }
}

void dense_backward(const DenseGeom& g, const float* x, const float* w, const float* dy, float* dx,
                    float* dw, float* db) {
  const CMapR dymat(dy, g.n, g.out);
  if (dx) MapR(dx, g.n, g.in).noalias() = dymat * CMapR(w, g.out, g.in);
  MapR(dw, g.out, g.in).noalias() = dymat.transpose() * CMapR(x, g.n, g.in);
  dense_bias_grad(g, dy, db);
}

void softmax_xent(int n, int k, const float* logits, const uint8_t* labels, float* dlogits,
                  float grad_scale, double* loss_sum, int64_t* correct) {
  double loss = 0;
  int64_t right = 0;
  for (int r = 0; r < n; ++r) {
    const float* row = logits + int64_t(r) * k;
    const int label = labels[r];
    if (label >= k)
      throw Error("softmax_xent: label " + std::to_string(label) + " is not below the " +
                  std::to_string(k) + " classes");
    // Stable: shift by the maximum, so exp never overflows; the first maximum is the answer.
    int top = 0;
    for (int j = 1; j < k; ++j) top = row[j] > row[top] ? j : top;
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += std::exp(double(row[j]) - row[top]);
    const double log_sum = std::log(sum);
    loss += log_sum - (double(row[label]) - row[top]);  // −log softmax[label]
    right += top == label;
    if (!dlogits) continue;
    float* d = dlogits + int64_t(r) * k;
    for (int j = 0; j < k; ++j) {
      const double p = std::exp(double(row[j]) - row[top] - log_sum);
      d[j] = float((p - (j == label ? 1.0 : 0.0)) * grad_scale);
    }
  }
  *loss_sum += loss;
  *correct += right;
}

void softmax(int n, int k, const float* logits, float* probs) {
  for (int r = 0; r < n; ++r) {
    const float* row = logits + int64_t(r) * k;
    float* p = probs + int64_t(r) * k;
    const float top = *std::max_element(row, row + k);
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += std::exp(double(row[j]) - top);
    for (int j = 0; j < k; ++j) p[j] = float(std::exp(double(row[j]) - top) / sum);
  }
}

void adam(int64_t count, float* p, const float* g, float* m, float* v, const StepParams* sp) {
  const float lr_t = sp->lr_t, beta1 = sp->beta1, beta2 = sp->beta2, eps = sp->eps;
  // Keras's form (docs/design.md, Numeric conventions): ε is added to √v, after the bias
  // correction folded into lr_t.
  for (int64_t i = 0; i < count; ++i) {
    m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
    v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
    p[i] -= lr_t * m[i] / (std::sqrt(v[i]) + eps);
  }
}

void gather_batch(const uint8_t* images, const uint8_t* labels, int64_t image_size,
                  const int32_t* order, int64_t begin, int count, float* x,
                  uint8_t* batch_labels) {
  for (int i = 0; i < count; ++i) {
    const int64_t j = order ? int64_t(order[begin + i]) : begin + i;
    const uint8_t* src = images + j * image_size;
    float* dst = x + int64_t(i) * image_size;
    for (int64_t k = 0; k < image_size; ++k) dst[k] = float(src[k]) / 255.0f;
    if (labels && batch_labels) batch_labels[i] = labels[j];
  }
}

}  // namespace splitconv::cpu
