// Splits a trained model: each chosen n1×n2 convolution becomes the closed-form best pair of
// rank K (Tai et al., ICLR 2016): K vertical n1×1 filters, then m horizontal 1×n2 filters,
// taken from the SVD of the kernel reshaped to a (c·n1)×(n2·m) matrix.
//
//   M[(ci,i),(j,mo)] = W[mo,ci,i,j] = Σ_k σ_k U[(ci,i),k] V[(j,mo),k]
//   NAME_v.weight[k,ci,i,0]  = √σ_k · U[(ci,i),k]      (K×c×n1×1), NAME_v.bias = 0
//   NAME_h.weight[mo,k,0,j]  = √σ_k · V[(j,mo),k]      (m×K×1×n2), NAME_h.bias = NAME.bias
//
// With K ≥ rank(M) and no activation between the two, the pair computes the original
// convolution (the padding of each direction stays with the layer that convolves along it).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "splitconv/factorize.h"
#include "splitconv/model.h"

namespace splitconv {

struct SvdSplitOptions {
  // Layers to split; empty: those `rule` picks (by default the exact rule, P1 < P0) at the K
  // each would get.
  std::vector<std::string> layers;
  SplitRule rule = SplitRule::Exact;
  // K for every split layer; <= 0 (and no energy): m, or the matrix rank min(c·n1, n2·m)
  // when that is smaller. A K outside 1..min(c·n1, n2·m) for a named layer is an InputError.
  int rank = 0;
  // Per layer the smallest K whose singular values keep this fraction of Σσ²: in (0, 1],
  // 0 when not used (anything else is an InputError). Excludes rank.
  double energy = 0;
  bool mid_relu = true;  // ReLU between the pair (as the original's activation) or none
};

struct SvdLayerReport {
  std::string layer;
  int kh = 0, kw = 0, c = 0, m = 0;
  int rank = 0;                        // K
  int max_rank = 0;                    // min(c·n1, n2·m)
  int64_t params_before = 0, params_after = 0;
  double error = 0;                    // ‖W − W_K‖/‖W‖ from the pair's float filters
  double error_sigma = 0;              // √(Σ_{k≥K} σ_k²)/‖W‖
  double energy = 0;                   // Σ_{k<K} σ_k² / Σ σ_k²
  std::vector<double> singular_values; // all of them, descending
};

struct SvdSplitResult {
  Spec spec;                           // the split spec
  Model model;                         // build_model(spec)
  std::vector<float> params;           // flat, model.param_floats floats
  std::vector<SvdLayerReport> layers;  // one per split layer, in model order
};

// `params` is the flat buffer of `model` (Checkpoint::state.params). Throws InputError for a
// buffer of the wrong size, an unknown or unsplittable layer, a rank out of range, bad options.
SvdSplitResult svd_split(const Model& model, std::span<const float> params,
                         const SvdSplitOptions& opts);

}  // namespace splitconv
