// What the libFuzzer targets share (tests/fuzz/README.md): a scratch file for the readers that
// take a path, and `fail`, which turns a broken promise into a finding.
//
// A target accepts every input: bad input must end in splitconv::InputError (one line, exit 2
// at the command line). Any other exception escapes LLVMFuzzerTestOneInput and ends the run
// as a crash, as do the sanitizers' reports, a timeout and running out of memory.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace splitconv::fuzz {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what.c_str());
  std::abort();
}

// A directory of this process's own under $TMPDIR (else /tmp), removed at exit.
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/splitconv-fuzz.XXXXXX";
    if (!::mkdtemp(pattern.data())) fail("cannot make a scratch directory under " + pattern);
    static std::string remove_me;
    remove_me = pattern;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(remove_me, ec);
    });
    return pattern;
  }();
  return dir;
}

// Writes the bytes to scratch_dir()/name (replacing what an earlier input left) and returns
// the path.
inline std::string scratch_file(const std::string& name, const uint8_t* data, size_t size) {
  std::string path = scratch_dir() + "/" + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) fail("cannot write " + path);
  if (size && std::fwrite(data, 1, size, f) != size) fail("cannot write " + path);
  if (std::fclose(f) != 0) fail("cannot write " + path);
  return path;
}

}  // namespace splitconv::fuzz
