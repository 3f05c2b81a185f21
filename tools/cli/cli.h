// The splitconv command line: one file per command, shared helpers here.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "splitconv/analysis.h"
#include "splitconv/format.h"
#include "splitconv/backend.h"
#include "splitconv/bench.h"
#include "splitconv/files.h"
#include "splitconv/model.h"
#include "splitconv/plan.h"

namespace splitconv::cli {

// The whole command line: every command, its options and its callback (app.cpp). Parsing
// runs the command named; bad usage throws CLI::ParseError, bad input InputError.
std::unique_ptr<CLI::App> make_app();

// Ends the command with this exit status after its output is complete (an interrupted run:
// 128 + the signal's number, docs/design.md, Interrupts).
struct ExitStatus {
  int code;
};

void add_analyze(CLI::App& app);
void add_factorize(CLI::App& app);
void add_data(CLI::App& app);
void add_devices(CLI::App& app);
void add_bench(CLI::App& app);
void add_bench_sweep(CLI::App* bench);   // bench sweep (cmd_bench_sweep.cpp)
void add_bench_layers(CLI::App* bench);  // bench layers (cmd_bench_sweep.cpp)
void add_train(CLI::App& app);
void add_compare(CLI::App& app);
void add_evaluate(CLI::App& app);
void add_import(CLI::App& app);  // import, export (cmd_import.cpp)

// --- ONNX graphs for analysis (cmd_analyze_graph.cpp) ---
// Whether `path` names an ONNX file (by its extension, .onnx in any case).
bool is_onnx_path(const std::string& path);
// Prints the analysis of any ONNX CNN graph (every conv, params and MACs per layer and in
// total, the split rules per conv and their verdicts) and returns its JSON report. With
// `pick` (factorize's rule), the report ends with the convs that rule splits.
// With `measure.device` (analyze --rule measured), each splittable conv the benchmark runs
// (stride 1, one group, no dilation, pads valid or same) is timed with its pair, forward +
// backward at the batch, each shape once; the others are listed as not timed, with why.
struct GraphMeasure {
  std::string device;  // empty: no timing
  int batch = 32, runs = 0;
};
nlohmann::json analyze_graph_report(const std::string& path, int rank, const std::string& pick,
                                    const GraphMeasure& measure = {});

using splitconv::thousands;  // "93,322"
std::string hwc(const Shape& s);
// Writes a whole file through a temporary file and a rename (splitconv/files.h): never a
// partial output file.
void write_file_atomic(const std::string& path, const std::string& text);
void write_json(const std::string& path, const nlohmann::json& j);
// Progress lines go to stderr only on a terminal, or when forced.
bool progress_enabled(bool forced);
// "12.3 MiB (parameters, gradients and Adam state …, activations …, workspace …)", and the
// same as {parameters, activations, workspace, total} in bytes.
std::string memory_text(const MemoryEstimate& m);
nlohmann::json memory_json(const MemoryEstimate& m);

// --- plots and output paths (plot.cpp) ---
std::string shell_quote(const std::string& s);
// tools/plot.py of this source tree, or $SPLITCONV_PLOT.
std::string plot_script();
// Error when plot_script() is not there.
void check_plot_script();
// $SPLITCONV_PYTHON, else the first of python3 and Debian's /usr/bin/python3
// (python3-matplotlib) that imports matplotlib; empty when none does.
std::string plot_python();
// tools/plot.py INPUT PNG [--title TITLE] (INPUT: a sweep CSV, a train or compare JSON report);
// Error when it fails.
void run_plot(const std::string& python, const std::string& input, const std::string& png,
              const std::string& title = "");
// InputError naming the option unless PATH can be written (its directory exists and takes
// new files, PATH is no directory and not read-only); nothing for an empty PATH.
void check_writable(const std::string& path, const char* option);

// The --json and --plot FILE.png of train and compare. check() before training: InputError for
// a path that cannot be written; without matplotlib, one line saying so and where the report
// goes instead (--json, else FILE.json beside FILE.png). write() after: the report, then the
// plot drawn from it (through a temporary file when there is no --json).
struct ReportOutput {
  std::string json_path, plot_path;
  std::string python;  // set by check(): the python with matplotlib, empty when none
  void check();
  std::string report_path() const;
  void write(const nlohmann::json& report) const;
};

// --- the benchmarks and the measured rule (measured.cpp) ---
// "28x28" → h, w; InputError naming the option otherwise.
void parse_size(const std::string& text, const char* option, int* h, int* w);
Padding parse_padding(const std::string& text);
// cpu | cuda, or auto: cuda when a device is present, else cpu. InputError for another name.
std::string bench_device(const std::string& device);
// The timing of the measured rule: quicker than bench conv's default (up to 5 samples within
// 0.3 s each), `runs` overriding the sample count when positive.
bench::TimingOptions rule_timing(const std::string& device, int runs);
// Per conv layer: the parameter rule, the MAC rule and the measured decision with the times.
std::string measured_table(const std::vector<SplitAnalysis>& splits,
                           const std::vector<bench::MeasuredDecision>& decisions,
                           const bench::TimingTable& table, int batch);
// Adds measured_rule, nxn_ms, pair_ms, pair_impl to each entry of an analyze report's "split".
void add_measured_json(nlohmann::json& report, const std::vector<bench::MeasuredDecision>& d,
                       const bench::TimingTable& table, int batch);

}  // namespace splitconv::cli
