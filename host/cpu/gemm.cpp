// Allocation-free GEMMs (gemm.h): what Eigen's dense product does for a row-major result —
// small products coefficient by coefficient, a single row or column as a matrix-vector product,
// the rest through general_matrix_matrix_product with the blocking Eigen computes — except that
// the packing blocks come from the caller.
#include "cpu/gemm.h"

#include "cpu/aligned.h"

#include "cpu/eigen_maps.h"

#include <Eigen/Core>
#include <stdexcept>
#include <string>

namespace splitconv::cpu {
namespace {

using Index = Eigen::Index;
using CMap = CStridedMapR;
using Map = StridedMapR;

// Eigen's blocking for a row-major m×n result: it computes the transposed product (n×m, column
// major), so its "rows" are n and its "columns" m.
struct Blocking {
  Index kc, mc, nc;
  Blocking(int64_t m, int64_t n, int64_t k) : kc(k), mc(n), nc(m) {
    Eigen::internal::computeProductBlockingSizes<float, float, 1>(kc, mc, nc, Index(1));
  }
  int64_t floats() const { return round16(int64_t(kc) * mc) + round16(int64_t(kc) * nc); }
};

// The packing blocks of one product, in the caller's space.
class Packing : public Eigen::internal::level3_blocking<float, float> {
 public:
  Packing(const Blocking& b, float* space) {
    m_kc = b.kc;
    m_mc = b.mc;
    m_nc = b.nc;
    m_blockA = space;
    m_blockB = space + round16(int64_t(b.kc) * b.mc);
  }
};

// C = / += A·B as an Eigen expression: used where Eigen would not run its GEMM kernels (no
// packing, so no allocation either).
template <class A, class B>
void expression(const A& a, const B& b, Map& c, bool accumulate) {
  if (accumulate) {
    c.noalias() += a * b;
  } else {
    c.noalias() = a * b;
  }
}

template <int LhsOrder, int RhsOrder>
void kernels(int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b, float* c, int64_t ldc,
             Packing& packing) {
  using Product = Eigen::internal::general_matrix_matrix_product<Index, float, LhsOrder, false, float,
                                                                 RhsOrder, false, Eigen::RowMajor, 1>;
  Product::run(m, n, k, a.p, a.ld, b.p, b.ld, c, 1, ldc, 1.0f, packing);
}

}  // namespace

int64_t gemm_space(int64_t m, int64_t n, int64_t k) {
  if (m < 1 || n < 1 || k < 1) return 0;
  return Blocking(m, n, k).floats();
}

void gemm(int64_t m, int64_t n, int64_t k, GemmOperand a, GemmOperand b, float* c, int64_t ldc,
          bool accumulate, float* space) {
  if (m < 1 || n < 1) return;
  Map cm(c, m, n, Strided(ldc));
  if (k < 1) {
    if (!accumulate) cm.setZero();
    return;
  }
  const CMap as = a.transposed ? CMap(a.p, k, m, Strided(a.ld)) : CMap(a.p, m, k, Strided(a.ld));
  const CMap bs = b.transposed ? CMap(b.p, n, k, Strided(b.ld)) : CMap(b.p, k, n, Strided(b.ld));
  // Eigen's own choice (generic_product_impl<…, GemmProduct>): tiny products coefficient-based,
  // a single row or column a matrix-vector product, which neither packs.
  if (k + m + n < EIGEN_GEMM_TO_COEFFBASED_THRESHOLD || m == 1 || n == 1) {
    if (a.transposed && b.transposed) return expression(as.transpose(), bs.transpose(), cm, accumulate);
    if (a.transposed) return expression(as.transpose(), bs, cm, accumulate);
    if (b.transposed) return expression(as, bs.transpose(), cm, accumulate);
    return expression(as, bs, cm, accumulate);
  }
  const Blocking blocking(m, n, k);
  if (reinterpret_cast<uintptr_t>(space) % 64 != 0)
    throw std::logic_error("gemm: the packing space is not 64-byte aligned");
  Packing packing(blocking, space);
  if (!accumulate) cm.setZero();  // Eigen's kernels add to C
  constexpr int R = Eigen::RowMajor, C = Eigen::ColMajor;
  // A stored transposed is A read column-major with the same leading dimension.
  if (a.transposed && b.transposed) return kernels<C, C>(m, n, k, a, b, c, ldc, packing);
  if (a.transposed) return kernels<C, R>(m, n, k, a, b, c, ldc, packing);
  if (b.transposed) return kernels<R, C>(m, n, k, a, b, c, ldc, packing);
  kernels<R, R>(m, n, k, a, b, c, ldc, packing);
}

}  // namespace splitconv::cpu
