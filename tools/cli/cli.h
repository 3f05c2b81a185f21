// The splitconv command line: one file per command, shared helpers here.
#pragma once
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>

#include "splitconv/analysis.h"
#include "splitconv/model.h"

namespace splitconv::cli {

void add_analyze(CLI::App& app);
void add_factorize(CLI::App& app);
void add_data(CLI::App& app);
void add_devices(CLI::App& app);
void add_bench(CLI::App& app);
void add_train(CLI::App& app);
void add_compare(CLI::App& app);
void add_evaluate(CLI::App& app);

// "93,322"
std::string thousands(int64_t v);
std::string hwc(const Shape& s);
// Writes a whole file through PATH.tmp and a rename: never a partial output file.
void write_file_atomic(const std::string& path, const std::string& text);
void write_json(const std::string& path, const nlohmann::json& j);
// Progress lines go to stderr only on a terminal, or when forced.
bool progress_enabled(bool forced);

}  // namespace splitconv::cli
