// Errors: one type for runtime failures, one for bad input (exit code 2).
#pragma once
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

}  // namespace splitconv
