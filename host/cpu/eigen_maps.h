// Eigen views of the CPU backend's float buffers: row-major matrices and vectors over memory
// the backend owns (no copies), and row-major matrices with a leading dimension.
#pragma once
#include <Eigen/Core>

namespace splitconv::cpu {

using MatR = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapR = Eigen::Map<MatR>;
using CMapR = Eigen::Map<const MatR>;
using CVec = Eigen::Map<const Eigen::VectorXf>;
using Vec = Eigen::Map<Eigen::VectorXf>;
using Strided = Eigen::OuterStride<>;
using StridedMapR = Eigen::Map<MatR, Eigen::Unaligned, Strided>;
using CStridedMapR = Eigen::Map<const MatR, Eigen::Unaligned, Strided>;

}  // namespace splitconv::cpu
