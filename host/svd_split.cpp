// The closed-form split of a trained conv (svd_split.h): SVD of the reshaped kernel, in double.
#include "splitconv/svd_split.h"

// GCC 12 warns falsely (-Wmaybe-uninitialized) inside Eigen's AVX-512 double kernels
// (_mm512_extractf64x4_pd); the warning fires where they are inlined, so it is off file-wide.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <Eigen/Dense>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "splitconv/analysis.h"
#include "splitconv/error.h"

namespace splitconv {
namespace {

const ParamSlot& slot_named(const Model& model, const std::string& name) {
  for (const auto& s : model.slots)
    if (s.name == name) return s;
  throw Error("svd_split: the model has no tensor " + name);  // a bug, not bad input
}

// M[(ci,i),(j,mo)] = W[mo,ci,i,j]: rows c·n1, columns n2·m.
Eigen::MatrixXd kernel_matrix(const float* w, int m, int c, int n1, int n2) {
  Eigen::MatrixXd M(int64_t(c) * n1, int64_t(n2) * m);
  for (int mo = 0; mo < m; ++mo)
    for (int ci = 0; ci < c; ++ci)
      for (int i = 0; i < n1; ++i)
        for (int j = 0; j < n2; ++j)
          M(int64_t(ci) * n1 + i, int64_t(j) * m + mo) =
              w[((int64_t(mo) * c + ci) * n1 + i) * n2 + j];
  return M;
}

// One layer's decomposition, before K is known.
struct Decomposed {
  const Layer* layer = nullptr;
  Eigen::MatrixXd M, U, V;
  Eigen::VectorXd sigma;
  double norm = 0;  // ‖W‖_F
  int max_rank = 0;
};

Decomposed decompose(const Model& model, const Layer& l, std::span<const float> params) {
  Decomposed d;
  d.layer = &l;
  const ParamSlot& ws = model.slots[size_t(l.weight)];
  const int m = l.out.c, c = l.in.c, n1 = l.spec.kh, n2 = l.spec.kw;
  d.M = kernel_matrix(params.data() + ws.offset, m, c, n1, n2);
  d.norm = d.M.norm();
  Eigen::BDCSVD<Eigen::MatrixXd> svd(d.M, Eigen::ComputeThinU | Eigen::ComputeThinV);
  d.U = svd.matrixU();
  d.V = svd.matrixV();
  d.sigma = svd.singularValues();
  d.max_rank = int(std::min(d.M.rows(), d.M.cols()));
  return d;
}

// Smallest K whose first K squared singular values hold `fraction` of their sum.
int rank_for_energy(const Eigen::VectorXd& sigma, double fraction) {
  double total = sigma.squaredNorm();
  if (!(total > 0)) return 1;
  double want = fraction * total * (1 - 1e-12), cum = 0;  // rounding must not cost a rank
  for (int k = 0; k < sigma.size(); ++k) {
    cum += sigma[k] * sigma[k];
    if (cum >= want) return k + 1;
  }
  return int(sigma.size());
}

std::string range_text(const Decomposed& d) {
  const Layer& l = *d.layer;
  return "1.." + std::to_string(d.max_rank) + " (min(c·n1, n2·m) = min(" + std::to_string(l.in.c) +
         "·" + std::to_string(l.spec.kh) + ", " + std::to_string(l.spec.kw) + "·" +
         std::to_string(l.out.c) + "))";
}

}  // namespace

SvdSplitResult svd_split(const Model& model, std::span<const float> params,
                         const SvdSplitOptions& opts) {
  const std::string& src = model.spec.source;
  if (params.size() != size_t(model.param_floats))
    throw InputError(src + ": " + std::to_string(params.size()) + " parameters for a model of " +
                     std::to_string(model.param_floats));
  if (opts.rank > 0 && opts.energy != 0)
    throw InputError("factorize: give a rank or an energy fraction, not both");
  if (opts.energy != 0 && !(opts.energy > 0 && opts.energy <= 1))
    throw InputError("factorize: energy fraction must be in (0, 1], got " + std::to_string(opts.energy));

  // The layers to consider: the named ones (each must exist and be splittable), else every
  // splittable conv.
  std::set<std::string> named(opts.layers.begin(), opts.layers.end());
  for (const auto& name : named) {
    auto it = std::find_if(model.layers.begin(), model.layers.end(),
                           [&](const Layer& l) { return l.name() == name; });
    if (it == model.layers.end()) throw InputError(src + ": no layer named '" + name + "'");
    auto a = analyze_split(*it);
    if (!a.splittable) throw InputError(src + ": layer " + name + " cannot be split: " + a.why_not);
  }
  std::set<std::string> taken;  // names the pair must not collide with
  for (const auto& l : model.layers) taken.insert(l.name());

  std::vector<Decomposed> chosen;
  std::vector<int> ranks;
  for (const auto& l : model.layers) {
    bool candidate = named.empty() ? analyze_split(l).splittable : named.count(l.name()) > 0;
    if (!candidate) continue;
    Decomposed d = decompose(model, l, params);
    int K = opts.energy > 0 ? rank_for_energy(d.sigma, opts.energy)
            : opts.rank > 0 ? opts.rank
                            : std::min(l.out.c, d.max_rank);
    if (named.empty()) {
      // The rule at the K this layer would get; a K above the matrix rank is never picked
      // (the exact rule never would: P1 > P0 there).
      if (K > d.max_rank || !rule_picks(analyze_split(l, K), opts.rule)) continue;
    } else if (K < 1 || K > d.max_rank) {
      throw InputError(src + ": layer " + l.name() + ": rank " + std::to_string(K) +
                       " is out of range " + range_text(d));
    }
    for (const char* suffix : {"_v", "_h"})
      if (taken.count(l.name() + suffix))
        throw InputError(src + ": cannot split " + l.name() + ": a layer named " + l.name() + suffix +
                         " already exists");
    ranks.push_back(K);
    chosen.push_back(std::move(d));
  }

  SvdSplitResult r;
  if (chosen.empty()) {
    r.spec = model.spec;
  } else {
    FactorizeOptions fo;
    fo.mid_relu = opts.mid_relu;
    for (size_t i = 0; i < chosen.size(); ++i) {
      fo.layers.push_back(chosen[i].layer->name());
      fo.layer_rank[chosen[i].layer->name()] = ranks[i];
    }
    r.spec = factorize_spec(model, fo).spec;
  }
  r.model = build_model(r.spec);
  r.params.assign(size_t(r.model.param_floats), 0.0f);

  // Every tensor the split model shares with the original is copied by name.
  std::map<std::string, const ParamSlot*> old_slots;
  for (const auto& s : model.slots) old_slots[s.name] = &s;
  for (const auto& s : r.model.slots) {
    auto it = old_slots.find(s.name);
    if (it == old_slots.end()) continue;  // a pair's tensor, filled below
    if (it->second->shape != s.shape) throw Error("svd_split: tensor " + s.name + " changed shape");
    std::copy_n(params.data() + it->second->offset, s.size, r.params.data() + s.offset);
  }

  for (size_t li = 0; li < chosen.size(); ++li) {
    const Decomposed& d = chosen[li];
    const Layer& l = *d.layer;
    const int K = ranks[li];
    const int m = l.out.c, c = l.in.c, n1 = l.spec.kh, n2 = l.spec.kw;
    // Copies: GCC 14 takes a reference returned from a call with a temporary argument for a
    // dangling one (-Wdangling-reference).
    const ParamSlot vw = slot_named(r.model, l.name() + "_v.weight");
    const ParamSlot vb = slot_named(r.model, l.name() + "_v.bias");
    const ParamSlot hw = slot_named(r.model, l.name() + "_h.weight");
    const ParamSlot hb = slot_named(r.model, l.name() + "_h.bias");
    const ParamSlot& ob = model.slots[size_t(l.bias)];
    float* wv = r.params.data() + vw.offset;  // K×c×n1×1
    float* wh = r.params.data() + hw.offset;  // m×K×1×n2
    for (int k = 0; k < K; ++k) {
      const double s = std::sqrt(d.sigma[k]);
      for (int ci = 0; ci < c; ++ci)
        for (int i = 0; i < n1; ++i)
          wv[(int64_t(k) * c + ci) * n1 + i] = float(s * d.U(int64_t(ci) * n1 + i, k));
      for (int mo = 0; mo < m; ++mo)
        for (int j = 0; j < n2; ++j)
          wh[(int64_t(mo) * K + k) * n2 + j] = float(s * d.V(int64_t(j) * m + mo, k));
    }
    std::fill_n(r.params.data() + vb.offset, vb.size, 0.0f);
    std::copy_n(params.data() + ob.offset, ob.size, r.params.data() + hb.offset);

    // The reconstruction from the filters as written (floats), in the matrix layout.
    Eigen::MatrixXd A(int64_t(c) * n1, K), B(int64_t(n2) * m, K);
    for (int k = 0; k < K; ++k) {
      for (int ci = 0; ci < c; ++ci)
        for (int i = 0; i < n1; ++i) A(int64_t(ci) * n1 + i, k) = wv[(int64_t(k) * c + ci) * n1 + i];
      for (int mo = 0; mo < m; ++mo)
        for (int j = 0; j < n2; ++j) B(int64_t(j) * m + mo, k) = wh[(int64_t(mo) * K + k) * n2 + j];
    }
    SvdLayerReport rep;
    rep.layer = l.name();
    rep.kh = n1, rep.kw = n2, rep.c = c, rep.m = m;
    rep.rank = K;
    rep.max_rank = d.max_rank;
    auto a = analyze_split(l, K);
    rep.params_before = a.params_before;
    rep.params_after = a.params_after;
    const double total = d.sigma.squaredNorm();
    const double kept = d.sigma.head(K).squaredNorm();
    const double dropped = d.sigma.tail(d.sigma.size() - K).squaredNorm();
    rep.energy = total > 0 ? kept / total : 1.0;
    if (d.norm > 0) {
      rep.error = (d.M - A * B.transpose()).norm() / d.norm;
      rep.error_sigma = std::sqrt(dropped) / d.norm;
    }
    rep.singular_values.assign(d.sigma.data(), d.sigma.data() + d.sigma.size());
    r.layers.push_back(std::move(rep));
  }
  return r;
}

}  // namespace splitconv
