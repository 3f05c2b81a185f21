// Fuzz target: the checkpoint reader (safetensors with the model spec in its metadata):
// load_checkpoint, then model_of, as `train --resume/--init`, `evaluate`, `predict` and
// `factorize --checkpoint` do.
//
// Promises checked: a bad file is an InputError; a checkpoint that loads fits the model its
// spec builds (parameters, and optimizer state when present, of the model's length).
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "splitconv/checkpoint.h"
#include "splitconv/error.h"
#include "splitconv/model.h"

using namespace splitconv;

SPLITCONV_FUZZ_TARGET(checkpoint) {
  const std::string path = fuzz::scratch_file("input.safetensors", data, size);
  Checkpoint ck;
  try {
    ck = load_checkpoint(path);
  } catch (const InputError&) {
    return 0;
  }
  Model model;
  try {
    model = model_of(ck, path);
  } catch (const InputError& e) {
    fuzz::fail(std::string("a checkpoint that loads does not fit its own spec: ") + e.what());
  }
  const auto want = size_t(model.param_floats);
  if (ck.state.params.size() != want)
    fuzz::fail("parameters: " + std::to_string(ck.state.params.size()) + " floats, the model has " +
               std::to_string(want));
  if (!ck.state.m.empty() && (ck.state.m.size() != want || ck.state.v.size() != want))
    fuzz::fail("optimizer state of the wrong length");
  return 0;
}
