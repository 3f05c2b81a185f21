// What the libFuzzer targets share (tests/fuzz/README.md): the entry point, a scratch file for
// the readers that take a path, and `fail`, which turns a broken promise into a finding.
//
// A target accepts every input: bad input must end in splitconv::InputError (one line, exit 2
// at the command line). Any other exception escapes the entry point and ends a fuzz run as a
// crash, as do the sanitizers' reports, a timeout and running out of memory.
//
// The same sources are compiled into the test suite with SPLITCONV_FUZZ_REPLAY
// (tests/fuzz_replay_test.cpp replays the corpus and every regression input): there each
// target is a function of its own name, and `fail` throws instead of aborting.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

#ifdef SPLITCONV_FUZZ_REPLAY
#define SPLITCONV_FUZZ_TARGET(name) int splitconv_fuzz_##name(const uint8_t* data, size_t size)
#else
#define SPLITCONV_FUZZ_TARGET(name) \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
#endif

namespace splitconv::fuzz {

// A promise the input broke.
struct Finding : std::logic_error {
  using std::logic_error::logic_error;
};

[[noreturn]] inline void fail(const std::string& what) {
#ifdef SPLITCONV_FUZZ_REPLAY
  throw Finding("fuzz finding: " + what);
#else
  std::fprintf(stderr, "fuzz finding: %s\n", what.c_str());
  std::abort();
#endif
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
