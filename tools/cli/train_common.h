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

// Everything checkable is checked before work starts (docs/design.md, Errors); each throws
// InputError with one line naming the option or file and the fault.
// Option values: --device, --conv-impl, --batch, --threads, --limit, and with `training`
// --epochs and --lr (finite and positive).
void check_run_options(const RunOptions& o, bool training);
// The model against one split of the data: input H×W×C, and the classes against the
// labels' range (both shapes, both counts named).
void check_model_data(const Model& model, const std::string& label, const ImageSet& set,
                      const std::string& what);
// Each model planned at --batch fits the size limits and the device's memory, before any
// of them allocates (backend check_plan).
void check_plans(const std::vector<const Model*>& models, const RunOptions& o);

struct RunResult {
  TrainReport report;
  std::string device, description;
  std::string engine;       // "cpu", "graph" or "fused"
  std::string engine_note;  // why the engine asked for is not the one running
  std::vector<std::string> choices;
  TrainState state;
  double setup_seconds = 0;  // backend, plan (algorithm search), upload, initial state
};

// Trains `model` on `data` from a fresh start or from `start` (resume or --init).
// after_epoch, when given, sees the state after every epoch (to save a checkpoint).
RunResult train_model(const Model& model, const Dataset& data, const RunOptions& o,
                      const TrainState* start, const std::string& label,
                      const std::function<void(const TrainState&)>& after_epoch = {});

// --target-accuracy's outcome (null without it): reached, time_to_target_seconds and
// steps_to_target (null when not reached), the last evaluation's accuracy and time.
nlohmann::json target_json(const TrainOptions& t, const TrainReport& r);
// A run's configuration as a checkpoint records it (Checkpoint::train_config), and its
// restoration on --resume: options not given take the checkpoint's values; a given option that
// differs is refused, naming both (--epochs may differ only under a constant schedule, where
// it extends the run without changing its past). `cmd` tells which options were given.
nlohmann::json train_config(const RunOptions& o);
void restore_train_config(const CLI::App* cmd, RunOptions& o, const nlohmann::json& cfg,
                          const std::string& path);
// Adam's settings, the schedule and the shuffle of a run.
nlohmann::json optimizer_json(const TrainOptions& t);
nlohmann::json epochs_json(const TrainReport& r);

}  // namespace splitconv::cli
