// The CPU ops against first principles: a direct convolution written here, central finite
// differences of every backward op, and hand computations of the loss and of Adam.
#include "cpu/cpu_ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "splitconv/random.h"

namespace splitconv {
namespace {

using Floats = std::vector<float>;
const float kNaN = std::numeric_limits<float>::quiet_NaN();

Floats random_floats(Rng& rng, int64_t n, float lo = -1.0f, float hi = 1.0f) {
  Floats v(n);
  for (auto& x : v) x = rng.uniform(lo, hi);
  return v;
}

// Weights for a loss L = Σ r·y, exact in float so that dy = r carries no rounding.
std::vector<double> random_doubles(Rng& rng, int64_t n) {
  std::vector<double> v(n);
  for (auto& x : v) x = rng.uniform(-1.0f, 1.0f);
  return v;
}

// L = Σ r·y in double: a scalar whose gradient with respect to y is r.
double weighted_sum(const std::vector<double>& r, const Floats& y) {
  double sum = 0;
  for (size_t i = 0; i < y.size(); ++i) sum += r[i] * y[i];
  return sum;
}

// Central differences of loss() in every element of v, compared with `grad`. The step actually
// taken (float(v+h) − float(v−h)) is the denominator, so representability costs nothing.
void expect_gradient(Floats& v, const Floats& grad, float h, const std::function<double()>& loss,
                     double tol, const std::string& what) {
  ASSERT_EQ(v.size(), grad.size());
  for (size_t i = 0; i < v.size(); ++i) {
    const float saved = v[i];
    v[i] = saved + h;
    const double up = loss(), step_up = v[i];
    v[i] = saved - h;
    const double down = loss(), step_down = v[i];
    v[i] = saved;
    const double numeric = (up - down) / (step_up - step_down);
    ASSERT_NEAR(grad[i], numeric, tol * std::max(1.0, std::abs(numeric)))
        << what << "[" << i << "]";
  }
}

// A conv geometry from explicit padding on all four sides (bottom/right are implied by oh/ow).
ConvGeom conv(int n, int c, int h, int w, int m, int kh, int kw, int stride, int pt, int pb, int pl,
              int pr) {
  const int oh = (h + pt + pb - kh) / stride + 1, ow = (w + pl + pr - kw) / stride + 1;
  return {n, c, h, w, m, kh, kw, stride, pt, pl, oh, ow};
}

struct ConvCase {
  const char* name;
  ConvGeom g;
};

std::vector<ConvCase> conv_cases() {
  return {
      {"3x1 valid", conv(2, 3, 7, 6, 4, 3, 1, 1, 0, 0, 0, 0)},
      {"1x3 valid", conv(2, 2, 5, 7, 3, 1, 3, 1, 0, 0, 0, 0)},
      {"5x3 valid", conv(2, 2, 8, 6, 3, 5, 3, 1, 0, 0, 0, 0)},
      {"4x4 same (pad 1 top/left, 2 bottom/right)", conv(2, 2, 7, 6, 3, 4, 4, 1, 1, 2, 1, 2)},
      {"3x3 stride 2 same (pad 0/1 on the right)", conv(2, 2, 7, 8, 3, 3, 3, 2, 1, 1, 0, 1)},
      {"3x3 stride 2 valid, remainder dropped", conv(3, 2, 8, 7, 2, 3, 3, 2, 0, 0, 0, 0)},
      {"2x5 stride 3 same (pad 2 left and right)", conv(1, 3, 9, 10, 2, 2, 5, 3, 0, 0, 2, 2)},
      {"1x1", conv(2, 4, 3, 5, 3, 1, 1, 1, 0, 0, 0, 0)},
  };
}

// The definition, in double: y[n,m,oy,ox] = b[m] + Σ w[m,c,i,j]·x[n,c,oy·s+i−pt, ox·s+j−pl].
// Also returns Σ|terms| per output, which bounds the float error of any summation order.
void direct_conv(const ConvGeom& g, const Floats& x, const Floats& w, const Floats& b,
                 std::vector<double>* y, std::vector<double>* magnitude) {
  y->assign(g.y_size(), 0.0);
  magnitude->assign(g.y_size(), 0.0);
  for (int n = 0; n < g.n; ++n)
    for (int m = 0; m < g.m; ++m)
      for (int oy = 0; oy < g.oh; ++oy)
        for (int ox = 0; ox < g.ow; ++ox) {
          double sum = b[m], mag = std::abs(b[m]);
          for (int c = 0; c < g.c; ++c)
            for (int i = 0; i < g.kh; ++i)
              for (int j = 0; j < g.kw; ++j) {
                const int iy = oy * g.stride + i - g.pad_top, ix = ox * g.stride + j - g.pad_left;
                if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) continue;
                const double t = double(w[((m * g.c + c) * g.kh + i) * g.kw + j]) *
                                 x[((n * g.c + c) * g.h + iy) * g.w + ix];
                sum += t;
                mag += std::abs(t);
              }
          const int64_t o = ((int64_t(n) * g.m + m) * g.oh + oy) * g.ow + ox;
          (*y)[o] = sum;
          (*magnitude)[o] = mag;
        }
}

TEST(CpuConv, ForwardMatchesDirectConvolution) {
  Rng rng(101);
  for (const auto& [name, g] : conv_cases()) {
    SCOPED_TRACE(name);
    const Floats x = random_floats(rng, g.x_size()), w = random_floats(rng, g.w_size()),
                 b = random_floats(rng, g.m);
    // A guard past the workspace: the ops must stay inside what conv_workspace asked for.
    const int64_t room = cpu::conv_workspace(g), guard = 64;
    Floats y(g.y_size(), kNaN), ws(room + guard, 1234.5f), dx(g.x_size()), dw(g.w_size()), db(g.m);
    cpu::conv_forward(g, x.data(), w.data(), b.data(), y.data(), ws.data());
    cpu::conv_backward_data(g, y.data(), w.data(), dx.data(), ws.data());
    cpu::conv_backward_filter(g, x.data(), y.data(), dw.data(), db.data(), ws.data());
    EXPECT_TRUE(std::all_of(ws.begin() + room, ws.end(), [](float v) { return v == 1234.5f; }));
    std::vector<double> ref, mag;
    direct_conv(g, x, w, b, &ref, &mag);
    const int terms = g.c * g.kh * g.kw + 1;
    for (int64_t i = 0; i < g.y_size(); ++i) {
      // Any float summation of `terms` products is within terms·ε·Σ|terms| of the exact sum.
      ASSERT_NEAR(y[i], ref[i], terms * FLT_EPSILON * mag[i] + 1e-7) << "output " << i;
    }
  }
}

// The conv is linear in x, w and b, so central differences are exact but for the float
// rounding of the outputs the perturbed element reaches (unaffected outputs are bitwise
// unchanged). Each rounds by ~ε·Σ|terms| ≈ 1e-6 with values in [−1, 1]; tens of them add up,
// divided by 2h = 1, to a few 1e-6 (2e-5 at most over these cases): 1e-4 leaves a margin.
TEST(CpuConv, BackwardMatchesFiniteDifferences) {
  Rng rng(202);
  for (const auto& [name, g] : conv_cases()) {
    SCOPED_TRACE(name);
    Floats x = random_floats(rng, g.x_size()), w = random_floats(rng, g.w_size()),
           b = random_floats(rng, g.m);
    const std::vector<double> r = random_doubles(rng, g.y_size());
    Floats y(g.y_size()), ws(cpu::conv_workspace(g), kNaN);
    auto loss = [&] {
      cpu::conv_forward(g, x.data(), w.data(), b.data(), y.data(), ws.data());
      return weighted_sum(r, y);
    };
    const Floats dy(r.begin(), r.end());
    // Garbage in the outputs: both ops must overwrite, not accumulate.
    Floats dx(g.x_size(), kNaN), dw(g.w_size(), kNaN), db(g.m, kNaN);
    cpu::conv_backward_data(g, dy.data(), w.data(), dx.data(), ws.data());
    cpu::conv_backward_filter(g, x.data(), dy.data(), dw.data(), db.data(), ws.data());
    expect_gradient(x, dx, 0.5f, loss, 1e-4, "dx");
    expect_gradient(w, dw, 0.5f, loss, 1e-4, "dw");
    expect_gradient(b, db, 0.5f, loss, 1e-4, "db");
  }
}

TEST(CpuRelu, ForwardAndBackward) {
  Rng rng(303);
  // Values on a 1/32 grid away from 0 and steps of 1/128: no difference crosses the kink,
  // and every value is exact, so the differences are exact.
  Floats x(200);
  for (auto& v : x) v = float(int(rng.below(64)) - 32 + 0.5) / 32.0f;
  const std::vector<double> r = random_doubles(rng, x.size());
  Floats y;
  auto loss = [&] {
    y = x;
    cpu::relu_forward(int64_t(y.size()), y.data());
    return weighted_sum(r, y);
  };
  loss();
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(y[i], std::max(x[i], 0.0f));
  Floats dy(r.begin(), r.end());
  cpu::relu_backward(int64_t(dy.size()), y.data(), dy.data());
  expect_gradient(x, dy, 1.0f / 128, loss, 1e-12, "dx");
}

struct PoolCase {
  const char* name;
  PoolGeom g;
};

PoolGeom pool(int n, int c, int h, int w, int ph, int pw, int stride) {
  return {n, c, h, w, ph, pw, stride, (h - ph) / stride + 1, (w - pw) / stride + 1};
}

std::vector<PoolCase> pool_cases() {
  return {
      {"2x2 on 7x7, remainder dropped", pool(2, 3, 7, 7, 2, 2, 2)},
      {"3x3 stride 2 on 7x7, overlapping", pool(2, 2, 7, 7, 3, 3, 2)},
      {"2x3 stride 1 on 5x6", pool(1, 2, 5, 6, 2, 3, 1)},
  };
}

// Distinct values on a 1/64 grid: every window has a unique maximum.
Floats distinct_values(Rng& rng, int64_t n) {
  Floats v(n);
  std::iota(v.begin(), v.end(), 0.0f);
  for (int64_t i = n - 1; i > 0; --i) std::swap(v[i], v[rng.below(i + 1)]);
  for (auto& x : v) x = x / 64.0f - 1.0f;
  return v;
}

TEST(CpuMaxPool, ForwardPicksFirstMaximumInsideTheMap) {
  Rng rng(404);
  for (const auto& [name, g] : pool_cases()) {
    SCOPED_TRACE(name);
    const Floats x = random_floats(rng, g.x_size());
    Floats y(g.y_size(), kNaN);
    std::vector<int32_t> arg(g.y_size(), -1);
    cpu::maxpool_forward(g, x.data(), y.data(), arg.data());
    for (int64_t plane = 0; plane < int64_t(g.n) * g.c; ++plane)
      for (int oy = 0; oy < g.oh; ++oy)
        for (int ox = 0; ox < g.ow; ++ox) {
          float best = -INFINITY;
          for (int i = 0; i < g.ph; ++i)
            for (int j = 0; j < g.pw; ++j)
              best = std::max(best, x[(plane * g.h + oy * g.stride + i) * g.w + ox * g.stride + j]);
          const int64_t o = (plane * g.oh + oy) * g.ow + ox;
          ASSERT_EQ(y[o], best);
          ASSERT_EQ(x[plane * g.h * g.w + arg[o]], best);  // index within the channel plane
        }
    // Ties: a constant map picks each window's top-left element.
    const Floats flat(g.x_size(), 0.25f);
    cpu::maxpool_forward(g, flat.data(), y.data(), arg.data());
    for (int oy = 0; oy < g.oh; ++oy)
      for (int ox = 0; ox < g.ow; ++ox)
        ASSERT_EQ(arg[oy * g.ow + ox], oy * g.stride * g.w + ox * g.stride);
  }
}

TEST(CpuMaxPool, BackwardMatchesFiniteDifferences) {
  Rng rng(505);
  for (const auto& [name, g] : pool_cases()) {
    SCOPED_TRACE(name);
    Floats x = distinct_values(rng, g.x_size());
    const std::vector<double> r = random_doubles(rng, g.y_size());
    Floats y(g.y_size());
    std::vector<int32_t> arg(g.y_size());
    auto loss = [&] {
      cpu::maxpool_forward(g, x.data(), y.data(), arg.data());
      return weighted_sum(r, y);
    };
    loss();
    const Floats dy(r.begin(), r.end());
    Floats dx(g.x_size(), kNaN);
    cpu::maxpool_backward(g, dy.data(), arg.data(), dx.data());
    // Steps of 1/256 never reorder values 1/64 apart, and pooling copies values exactly, so
    // the differences are exact; overlapping windows add up to 4 values of dy in float in dx,
    // each sum rounding by at most a few 6e-8.
    expect_gradient(x, dx, 1.0f / 256, loss, 2e-7, "dx");
  }
}

TEST(CpuBias, ForwardAddsPerChannelAndBackwardSumsPerChannel) {
  Rng rng(515);
  const int n = 3, c = 4;
  const int64_t plane = 5;
  const Floats y0 = random_floats(rng, n * c * plane), b = random_floats(rng, c);
  for (bool relu : {false, true}) {
    Floats y = y0, db(c, kNaN);
    cpu::bias_act_forward(n, c, plane, b.data(), relu, y.data());
    cpu::bias_backward(n, c, plane, y.data(), db.data());
    for (int ch = 0; ch < c; ++ch) {
      double sum = 0;
      for (int i = 0; i < n; ++i)
        for (int64_t p = 0; p < plane; ++p) {
          const size_t at = size_t((i * c + ch) * plane + p);
          const float want = relu ? std::max(y0[at] + b[ch], 0.0f) : y0[at] + b[ch];
          ASSERT_EQ(y[at], want) << at;
          sum += y[at];
        }
      EXPECT_NEAR(db[ch], sum, 1e-6) << ch;
    }
  }
}

TEST(CpuDense, ForwardAndBackward) {
  Rng rng(606);
  const DenseGeom g{3, 7, 5};
  Floats x = random_floats(rng, g.n * g.in), w = random_floats(rng, g.out * g.in),
         b = random_floats(rng, g.out);
  Floats y(g.n * g.out, kNaN);
  cpu::dense_forward(g, x.data(), w.data(), b.data(), false, y.data());
  for (int n = 0; n < g.n; ++n)
    for (int o = 0; o < g.out; ++o) {
      double sum = b[o];
      for (int i = 0; i < g.in; ++i) sum += double(x[n * g.in + i]) * w[o * g.in + i];
      ASSERT_NEAR(y[n * g.out + o], sum, (g.in + 1) * FLT_EPSILON * 8);  // Σ|terms| ≤ 8
    }
  const std::vector<double> r = random_doubles(rng, y.size());
  auto loss = [&] {
    cpu::dense_forward(g, x.data(), w.data(), b.data(), false, y.data());
    return weighted_sum(r, y);
  };
  // With relu: the same values, negatives clamped.
  Floats y_relu(y.size(), kNaN);
  cpu::dense_forward(g, x.data(), w.data(), b.data(), true, y_relu.data());
  cpu::dense_forward(g, x.data(), w.data(), b.data(), false, y.data());
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y_relu[i], std::max(y[i], 0.0f)) << i;
  const Floats dy(r.begin(), r.end());
  Floats dx(x.size(), kNaN), dw(w.size(), kNaN), db(b.size(), kNaN);
  cpu::dense_backward(g, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
  // Linear, as for the conv; a perturbation reaches at most 5 outputs of 8 terms: ~1e-6.
  expect_gradient(x, dx, 0.5f, loss, 1e-5, "dx");
  expect_gradient(w, dw, 0.5f, loss, 1e-5, "dw");
  expect_gradient(b, db, 0.5f, loss, 1e-5, "db");
  // Without dx (the first layer) the parameter gradients are the same, bit for bit.
  Floats dw2(w.size(), kNaN), db2(b.size(), kNaN);
  cpu::dense_backward(g, x.data(), w.data(), dy.data(), nullptr, dw2.data(), db2.data());
  EXPECT_EQ(dw, dw2);
  EXPECT_EQ(db, db2);
}

// The definition in double: loss = log Σ exp(l) − l[label], p = softmax(l).
TEST(CpuSoftmaxXent, MatchesDirectComputation) {
  Rng rng(707);
  const int n = 6, k = 5;
  Floats logits = random_floats(rng, n * k, -5.0f, 5.0f);
  std::vector<uint8_t> labels(n);
  for (auto& l : labels) l = uint8_t(rng.below(k));
  for (int j = 0; j < k; ++j) logits[0 * k + j] = j == 1 || j == 3 ? 2.0f : -1.0f;  // a tie
  labels[0] = 3;  // the tie goes to the first maximum, 1: counted wrong
  labels[1] = uint8_t(std::max_element(&logits[k], &logits[2 * k]) - &logits[k]);  // right
  for (int j = 0; j < k; ++j) logits[2 * k + j] = 3000.0f * float(j) - 5000.0f;    // exp overflows
  double loss_sum = 1.5;  // accumulates onto what is there
  int64_t correct = 2;
  const float scale = 0.25f;
  Floats d(n * k, kNaN);
  cpu::softmax_xent(n, k, logits.data(), labels.data(), d.data(), scale, &loss_sum, &correct);
  double want_loss = 1.5;
  int64_t want_correct = 2;
  for (int r = 0; r < n; ++r) {
    const float* row = &logits[r * k];
    const double top = *std::max_element(row, row + k);
    double sum = 0;
    for (int j = 0; j < k; ++j) sum += std::exp(row[j] - top);
    want_loss += top + std::log(sum) - row[labels[r]];
    want_correct += int(std::max_element(row, row + k) - row) == labels[r];
    for (int j = 0; j < k; ++j) {
      const double p = std::exp(row[j] - top) / sum;
      // dlogits is stored as float: one rounding of a value below 1 in magnitude.
      ASSERT_NEAR(d[r * k + j], (p - (j == labels[r])) * scale, 1e-7) << r << "," << j;
    }
  }
  EXPECT_NEAR(loss_sum, want_loss, 1e-9 * want_loss);  // both summed in double
  EXPECT_EQ(correct, want_correct);
  double tie_loss = 0;
  int64_t tie_correct = 0;
  cpu::softmax_xent(1, k, logits.data(), labels.data(), nullptr, 1.0f, &tie_loss, &tie_correct);
  EXPECT_EQ(tie_correct, 0);
  EXPECT_NEAR(tie_loss, std::log(2 + 3 * std::exp(-3.0)), 1e-12);
}

TEST(CpuSoftmaxXent, GradientMatchesFiniteDifferences) {
  Rng rng(808);
  const int n = 4, k = 7;
  Floats logits = random_floats(rng, n * k, -3.0f, 3.0f);
  std::vector<uint8_t> labels(n);
  for (auto& l : labels) l = uint8_t(rng.below(k));
  Floats d(n * k);
  double unused = 0;
  int64_t right = 0;
  cpu::softmax_xent(n, k, logits.data(), labels.data(), d.data(), 1.0f, &unused, &right);
  auto loss = [&] {
    double sum = 0;
    int64_t c = 0;
    cpu::softmax_xent(n, k, logits.data(), labels.data(), nullptr, 1.0f, &sum, &c);
    return sum;
  };
  // The loss is summed in double, so the only errors are the O(h²) truncation (third
  // derivative below 1, h = 1e-3: ~1e-7) and the float rounding of dlogits (~6e-8).
  expect_gradient(logits, d, 1e-3f, loss, 1e-5, "dlogits");
}

TEST(CpuSoftmax, RowsAreProbabilities) {
  Rng rng(909);
  const int n = 5, k = 10;
  Floats logits = random_floats(rng, n * k, -8.0f, 8.0f);
  logits[0] = 1e4f;  // stability: the shift by the maximum keeps exp finite
  Floats p(n * k, kNaN);
  cpu::softmax(n, k, logits.data(), p.data());
  for (int r = 0; r < n; ++r) {
    const float* row = &logits[r * k];
    const double top = *std::max_element(row, row + k);
    double sum = 0, total = 0;
    for (int j = 0; j < k; ++j) sum += std::exp(row[j] - top);
    for (int j = 0; j < k; ++j) {
      ASSERT_NEAR(p[r * k + j], std::exp(row[j] - top) / sum, 1e-7);  // one float rounding
      total += p[r * k + j];
    }
    EXPECT_NEAR(total, 1.0, 1e-6);  // k roundings of at most 6e-8 each
  }
}

TEST(CpuAdam, TwoStepsMatchHandComputation) {
  Rng rng(1010);
  const int count = 9;
  const float b1 = 0.9f, b2 = 0.999f, eps = 1e-7f;
  Floats p = random_floats(rng, count), m(count, 0.0f), v(count, 0.0f);
  std::vector<double> hp(p.begin(), p.end()), hm(count, 0.0), hv(count, 0.0);
  for (int t = 1; t <= 2; ++t) {
    Floats g = random_floats(rng, count);
    g[0] = 0.0f;  // zero gradient: ε keeps the step finite (and zero)
    const double lr_t = adam_step_size(1e-3, b1, b2, t);
    StepParams sp;
    sp.lr_t = float(lr_t), sp.beta1 = b1, sp.beta2 = b2, sp.eps = eps;
    cpu::adam(count, p.data(), g.data(), m.data(), v.data(), &sp);
    for (int i = 0; i < count; ++i) {
      hm[i] = b1 * hm[i] + (1 - double(b1)) * g[i];
      hv[i] = b2 * hv[i] + (1 - double(b2)) * g[i] * g[i];
      hp[i] -= lr_t * hm[i] / (std::sqrt(hv[i]) + eps);
    }
    for (int i = 0; i < count; ++i) {
      // Float roundings: of p itself (|p| ≤ 1: 6e-8 each step) and of an update ≤ 1e-3 in
      // size computed from m and v with a few 1e-7 relative error each.
      ASSERT_NEAR(p[i], hp[i], 2e-7) << "step " << t << ", " << i;
      ASSERT_NEAR(m[i], hm[i], 1e-7);
      ASSERT_NEAR(v[i], hv[i], 1e-9);
    }
  }
}

TEST(CpuAdam, StepSizeIsKerasBiasCorrection) {
  EXPECT_NEAR(adam_step_size(1e-3, 0.9, 0.999, 1), 1e-3 * std::sqrt(0.001) / 0.1, 1e-15);
  EXPECT_NEAR(adam_step_size(1e-3, 0.9, 0.999, 2), 1e-3 * std::sqrt(1 - 0.999 * 0.999) / 0.19,
              1e-15);
  EXPECT_NEAR(adam_step_size(1e-3, 0.9, 0.999, 100000), 1e-3, 1e-12);  // corrections fade
}

TEST(CpuGatherBatch, NormalisesInOrder) {
  const int64_t size = 6;
  std::vector<uint8_t> images(4 * size);
  for (size_t i = 0; i < images.size(); ++i) images[i] = uint8_t(i * 11);
  const std::vector<uint8_t> labels = {7, 8, 9, 6};
  const std::vector<int32_t> order = {1, 3, 0, 3};
  Floats x(3 * size, kNaN);
  std::vector<uint8_t> batch_labels(3, 255);
  cpu::gather_batch(images.data(), labels.data(), size, order.data(), 1, 3, x.data(),
                    batch_labels.data());
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < size; ++j)
      ASSERT_EQ(x[i * size + j], float(images[order[1 + i] * size + j]) / 255.0f);
    EXPECT_EQ(batch_labels[size_t(i)], labels[size_t(order[size_t(1 + i)])]);
  }
  // No order: consecutive images from `begin`; no labels asked for.
  cpu::gather_batch(images.data(), nullptr, size, nullptr, 2, 2, x.data(), nullptr);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < size; ++j) ASSERT_EQ(x[i * size + j], float(images[(2 + i) * size + j]) / 255.0f);
}

}  // namespace
}  // namespace splitconv
