// Runs the splitconv binary from a test, capturing its stdout, stderr and exit code.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace splitconv::testing {

struct CliResult {
  int code = -1;
  std::string out, err;
};

// `args` are shell words after the binary's name; stderr goes through a file in a fresh
// directory of this process.
inline CliResult run_cli(const std::string& args) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("splitconv-run-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string err_file = (dir / "stderr").string();
  const std::string cmd = std::string(SPLITCONV_BINARY) + " " + args + " 2>" + err_file;
  CliResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream e(err_file);
  r.err.assign(std::istreambuf_iterator<char>(e), {});
  return r;
}

}  // namespace splitconv::testing
