// Runs the splitconv binary from a test, capturing its stdout, stderr and exit code.
#pragma once
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

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

// A refusal of bad input as the project promises it: exit 2, one line on stderr that starts
// "splitconv: FILE: " and holds each of `says`, and none of `never_written` created.
inline void expect_refusal(const CliResult& r, const std::string& file,
                           const std::vector<std::string>& says,
                           const std::vector<std::string>& never_written) {
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.err.rfind("splitconv: " + file + ": ", 0), 0u) << r.err;
  for (const auto& s : says) EXPECT_NE(r.err.find(s), std::string::npos) << r.err;
  for (const auto& f : never_written) EXPECT_FALSE(std::filesystem::exists(f)) << f;
}

}  // namespace splitconv::testing
