// The splitconv command line: one file per command, shared helpers here.
#pragma once
#include <CLI/CLI.hpp>
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

using splitconv::thousands;  // "93,322"
std::string hwc(const Shape& s);
// Writes a whole file through a temporary file and a rename (splitconv/files.h): never a
// partial output file.
void write_file_atomic(const std::string& path, const std::string& text);
void write_json(const std::string& path, const nlohmann::json& j);
// Progress lines go to stderr only on a terminal, or when forced.
bool progress_enabled(bool forced);

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
