// Errors: one type for runtime failures, one for bad input (exit code 2).
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>

namespace splitconv {

// A runtime failure (a CUDA call, an allocation, a NaN loss). The command line exits 1.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad input from a person or a file: a malformed spec, a truncated data file, a lying
// checkpoint. The message names the file and the fault; the command line exits 2.
class InputError : public Error {
 public:
  using Error::Error;
};

// An allocation the machine refused: the model or batch does not fit. The message gives the
// bytes asked; the command line exits 2, as for a plan refused before it allocates.
class OutOfMemory : public InputError {
 public:
  explicit OutOfMemory(size_t bytes)
      : InputError("out of memory: an allocation of " + std::to_string(bytes) +
                   " bytes failed (the model, batch or data is too large for this machine)"),
        bytes_(bytes) {}
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_ = 0;
};

}  // namespace splitconv
