// The fused engine's program: a step plan (splitconv/plan.h) turned into the phases one image
// runs (block_ops.h) and the layout of that image's arena. Built on the host, run by the GPU
// kernel (cuda/fused_engine.cu) and by the CPU emulator (emulate.h) alike.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fused/block_ops.h"
#include "splitconv/model.h"
#include "splitconv/plan.h"

namespace splitconv::fused {

struct FusedProgram {
  std::vector<FusedOp> forward;   // Gather, the layers' forward ops, Loss
  std::vector<FusedOp> backward;  // the layers' backward ops that do work, last layer first
  int64_t arena_floats = 0;       // per image
  int64_t arena_ints = 0;         // per image (arg-max slots)
  int64_t image_size = 0;         // input pixels per image
  int classes = 0;
  int64_t param_floats = 0;       // the flat parameter buffer (and each image's partial)
  int64_t logits = 0;             // arena offset of the logits
  int64_t macs = 0;               // forward and backward multiply-accumulates per image

  int64_t arena_bytes() const { return arena_floats * 4 + arena_ints * 4; }
  // Phases of one training image (each is followed by a barrier on the GPU).
  int phases() const { return int(forward.size() + backward.size()); }
};

// The program of `plan`, or nullopt with the reason in *why (one line naming the layer) when
// the fused engine cannot run it.
std::optional<FusedProgram> make_program(const Model& model, const StepPlan& plan,
                                         std::string* why);

}  // namespace splitconv::fused
