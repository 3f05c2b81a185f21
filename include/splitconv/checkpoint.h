// Checkpoints as safetensors: NAME.weight / NAME.bias in PyTorch layouts, the spec and the
// format version in __metadata__, Adam state for resuming (docs/design.md, Formats).
#pragma once
#include <string>

#include "splitconv/model.h"
#include "splitconv/train.h"

namespace splitconv {

inline constexpr const char* kCheckpointFormat = "splitconv-1";

struct Checkpoint {
  std::string spec_text;   // the model spec, canonical text
  TrainState state;        // params always; m, v and step when saved for resuming
  std::string dataset;     // what it was trained on, when known
  // The training run's configuration as JSON text (dataset, seed, batch, epochs, limit, Adam's
  // settings, schedule, shuffle): what --resume restores. Empty when unknown (older files).
  std::string train_config;
};

// Writes through a temporary file of a unique name and a rename (splitconv/files.h), so a
// crash never leaves half a file and a failed save leaves the previous checkpoint intact.
void save_checkpoint(const std::string& path, const Model& model, const Checkpoint& ck);
// Reads and checks every offset, dtype and shape against the spec in the file; a file that
// lies throws InputError naming the file and the fault.
Checkpoint load_checkpoint(const std::string& path);
// Checks that a checkpoint's tensors fit `model` (names, shapes); throws InputError if not.
Model model_of(const Checkpoint& ck, const std::string& path);

}  // namespace splitconv
