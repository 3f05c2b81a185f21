// Output files: written whole or not at all, and checked before work starts
// (docs/design.md, Output files).
#pragma once
#include <cstddef>
#include <initializer_list>
#include <string>

namespace splitconv {

struct Bytes {
  const void* data = nullptr;
  size_t size = 0;
};

// Writes the parts, in order, to a temporary file of a unique name beside `path`
// (PATH.tmp.PID.N), flushes and fsyncs it, renames it over `path` and fsyncs the directory.
// On any failure the temporary file is removed and `path` is left as it was (the previous
// file, or none); throws Error "PATH: cannot write WHAT: fault".
void write_file_atomic(const std::string& path, std::initializer_list<Bytes> parts,
                       const std::string& what = "file");

// Throws InputError "OPTION PATH: fault" when `path` cannot be written: it is empty or a
// directory, or its directory does not exist or takes no new file (tried by creating and
// removing a probe file of a unique name there).
void check_writable(const std::string& path, const std::string& option);

}  // namespace splitconv
