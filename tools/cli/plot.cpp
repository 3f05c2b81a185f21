// Plots through tools/plot.py: finding a python with matplotlib, checking output paths before a
// long run, and the --plot of train and compare.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "cli.h"
#include "splitconv/files.h"
#include "splitconv/error.h"

namespace splitconv::cli {

namespace fs = std::filesystem;

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

std::string plot_script() {
  if (const char* env = std::getenv("SPLITCONV_PLOT")) return env;
#ifdef SPLITCONV_SOURCE_DIR
  return std::string(SPLITCONV_SOURCE_DIR) + "/tools/plot.py";
#else
  return "tools/plot.py";
#endif
}

std::string plot_python() {
  std::vector<std::string> pythons = {"python3", "/usr/bin/python3"};
  if (const char* env = std::getenv("SPLITCONV_PYTHON")) pythons = {env};
  for (const std::string& python : pythons) {
    const std::string probe = shell_quote(python) + " -c 'import matplotlib' >/dev/null 2>&1";
    if (std::system(probe.c_str()) == 0) return python;
  }
  return "";
}

void run_plot(const std::string& python, const std::string& input, const std::string& png,
              const std::string& title) {
  std::string cmd = shell_quote(python) + " " + shell_quote(plot_script()) + " " +
                    shell_quote(input) + " " + shell_quote(png);
  if (!title.empty()) cmd += " --title " + shell_quote(title);
  if (std::system(cmd.c_str()) != 0) throw Error("--plot: tools/plot.py failed (" + cmd + ")");
}

void check_plot_script() {
  const std::string script = plot_script();
  if (!fs::exists(script))
    throw Error("--plot: " + script + " not found (set SPLITCONV_PLOT to tools/plot.py)");
}

void check_writable(const std::string& path, const char* option) {
  if (!path.empty()) splitconv::check_writable(path, std::string(option));
}

void ReportOutput::check() {
  check_writable(json_path, "--json");
  if (plot_path.empty()) return;
  if (!plot_path.ends_with(".png"))
    throw InputError("--plot: expected a .png file, got '" + plot_path + "'");
  check_writable(plot_path, "--plot");
  check_plot_script();
  python = plot_python();
  if (python.empty()) {
    const std::string json = report_path();
    check_writable(json, "--plot");
    std::fprintf(stderr,
                 "splitconv: --plot: no python3 with matplotlib (Debian: python3-matplotlib), so "
                 "no %s; the report goes to %s (draw it later: tools/plot.py %s %s)\n",
                 plot_path.c_str(), json.c_str(), json.c_str(), plot_path.c_str());
  }
}

std::string ReportOutput::report_path() const {
  if (!json_path.empty() || plot_path.empty()) return json_path;
  if (python.empty()) return plot_path.substr(0, plot_path.size() - 4) + ".json";
  return (fs::temp_directory_path() / ("splitconv-report-" + std::to_string(getpid()) + ".json"))
      .string();
}

void ReportOutput::write(const nlohmann::json& report) const {
  const std::string path = report_path();
  if (path.empty()) return;
  write_json(path, report);
  if (plot_path.empty() || python.empty()) return;
  const bool temporary = json_path.empty();
  try {
    run_plot(python, path, plot_path);
  } catch (...) {
    if (temporary) std::remove(path.c_str());
    throw;
  }
  if (temporary) std::remove(path.c_str());
}

}  // namespace splitconv::cli
