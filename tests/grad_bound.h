// Judging a gradient that was summed in another order: a cancellation-aware bound.
//
// Each parameter's gradient is a sum g = Σᵢ aᵢ·bᵢ of n float32 products (a conv weight: input
// times output gradient over the images and output positions; a bias: the output gradients).
// Two correct implementations that add the terms in different orders (another thread split,
// tiles, split-K) differ by at most γₙ·A with A = Σᵢ |aᵢ·bᵢ| and γₙ ≈ n·u (u = 2⁻²⁴ ≈ 6·10⁻⁸),
// and typically by about √n·u·A, rounding errors adding like a random walk. The aᵢ and bᵢ
// themselves (activations and output gradients of the layers above) differ by their own
// rounding, relative to their own magnitudes, and that enters the same way: a few √n·u·A more
// per layer of depth. For the shapes tested (n ≤ ~10⁵: √n·u ≤ 2·10⁻⁵, five layers deep)
// kGradTolerance = 10⁻⁴ of A bounds the difference.
//
// A bound relative to the largest gradient of a tensor instead fails where terms cancel: late
// in training a weight's terms can be large and of both signs while their sum is small, so
// the same rounding is large against the sum and even against the tensor's largest entry.
// A is the right scale whatever the cancellation: cpu::CpuEngine::gradient_magnitude computes
// it (the filter gradient of |x| and |dy|).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>

#include "splitconv/model.h"

namespace splitconv::testing {

inline constexpr double kGradTolerance = 1e-4;

struct GradDiff {
  double worst = 0;    // largest |got − want| / A over the parameters
  std::string where;   // "conv2.weight[17]"
};

// Largest |got − want| / A_k over the model's parameters (slots only: padding is skipped). A
// parameter whose terms are all zero (A_k = 0) must agree exactly; it counts as infinitely
// far otherwise. got/want/magnitude are flat buffers of Model::param_floats floats.
inline GradDiff grad_diff(const Model& model, std::span<const float> got,
                          std::span<const float> want, std::span<const float> magnitude) {
  GradDiff d;
  for (const ParamSlot& s : model.slots)
    for (int64_t i = 0; i < s.size; ++i) {
      const size_t k = size_t(s.offset + i);
      const double diff = std::abs(double(got[k]) - double(want[k]));
      const double r = magnitude[k] > 0 ? diff / magnitude[k] : (diff > 0 ? INFINITY : 0.0);
      if (!(r <= d.worst)) {  // NaN counts as worst too
        d.worst = std::isnan(r) ? INFINITY : r;
        d.where = s.name + "[" + std::to_string(i) + "]";
      }
    }
  return d;
}

}  // namespace splitconv::testing
