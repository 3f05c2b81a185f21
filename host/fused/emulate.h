// The fused engine run on the CPU: every phase of block_ops.h executed by T emulated threads,
// one after another, in an order that can be shuffled. It is the CPU twin of the GPU kernels
// (cuda/fused_engine.cu) — the same op code, the same arena layout, the same fixed-order sums —
// so tests check the program, the index arithmetic and the barrier contract here: a phase whose
// threads raced (read what another thread of the same phase writes, or wrote the same place)
// would give different bits under a different thread order. Each image's arena is fenced by
// NaN guards, which a stray write changes and a stray read carries into the result.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "fused/program.h"
#include "splitconv/backend.h"

namespace splitconv::fused {

class Emulator {
 public:
  // threads: emulated threads per block; copies: blocks per image (a cluster: each block keeps
  // its own copy of the arena and reads it, every write goes to all copies), so a phase runs
  // threads × copies threads. shuffle_seed 0 runs them in order, any other value in a fixed
  // pseudo-random order per phase.
  Emulator(const Model& model, int max_batch, int threads, uint64_t shuffle_seed = 0,
           int copies = 1);

  const FusedProgram& program() const { return prog_; }

  // One training step on images[order[begin + i]], i < count: per image forward, loss and
  // backward into its partial gradient, then the gradient summed over images in image order
  // and Adam. Metrics (when not null) gain the step's loss and hits.
  void train_step(const uint8_t* images, const uint8_t* labels, const int32_t* order,
                  int64_t begin, int count, const StepParams& sp, Metrics* metrics);
  // Loss and accuracy of images [0, count) (no order).
  Metrics evaluate(const uint8_t* images, const uint8_t* labels, int64_t count);

  // Whether every guard between arenas still holds its NaN pattern.
  bool guards_intact() const;
  // Whether every image's copies of the arena hold the same bits (they must: each write goes
  // to all of them).
  bool copies_identical() const;

  std::vector<float> params, m, v;
  std::vector<float> gradient;  // the last step's summed gradient

 private:
  void run_image(int b, const std::vector<FusedOp>& ops, const ImageIo& io);
  float* arena(int b, int r) { return arena_.data() + kGuard + int64_t(b * copies_ + r) * stride_; }
  int32_t* iarena(int b, int r) {
    return iarena_.data() + int64_t(b * copies_ + r) * prog_.arena_ints;
  }

  static constexpr int64_t kGuard = 64;
  FusedProgram prog_;
  int max_batch_ = 0;
  int threads_ = 1;
  int copies_ = 1;
  uint64_t shuffle_ = 0;
  int64_t stride_ = 0;            // arena floats + guard
  std::vector<float> arena_;      // guard, image 0 copy 0, guard, image 0 copy 1, guard, …
  std::vector<int32_t> iarena_;
  std::vector<float> partial_;    // max_batch × param_floats
  std::vector<double> loss_;
  std::vector<int32_t> correct_;
  std::vector<int> order_;        // thread order of the current phase
};

}  // namespace splitconv::fused
