// What train, compare and evaluate share: options, loading, one training run.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "cli.h"
#include "splitconv/backend.h"
#include "splitconv/data.h"
#include "splitconv/train.h"

namespace splitconv::cli {

struct RunOptions {
  std::string dataset = "mnist", data_dir, device = "auto", json_path;
  TrainOptions train;
  int64_t limit = 0;
  bool progress = false, quiet = false;
  BackendOptions backend;
};

void add_run_options(CLI::App* cmd, RunOptions& o, bool training);

struct RunResult {
  TrainReport report;
  std::string device, description;
  std::string engine;       // "cpu", "graph" or "fused"
  std::string engine_note;  // why the engine asked for is not the one running
  std::vector<std::string> choices;
  TrainState state;
};

// Trains `model` on `data` from a fresh start or from `start` (resume or --init).
// after_epoch, when given, sees the state after every epoch (to save a checkpoint).
RunResult train_model(const Model& model, const Dataset& data, const RunOptions& o,
                      const TrainState* start, const std::string& label,
                      const std::function<void(const TrainState&)>& after_epoch = {});

nlohmann::json epochs_json(const TrainReport& r);

}  // namespace splitconv::cli
