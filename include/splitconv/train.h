// The trainer: epochs of shuffled batches on a backend, Keras's defaults (docs/design.md,
// Numeric conventions).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "splitconv/backend.h"
#include "splitconv/model.h"
#include "splitconv/schedule.h"

namespace splitconv {

struct TrainOptions {
  int epochs = 5;
  int batch = 32;
  Hyper hyper;                // hyper.lr is the base (peak) rate of the schedule
  Schedule schedule;
  bool shuffle = true;        // a new order every epoch (false: the data's own order)
  uint64_t seed = 0;
  // Stop as soon as the test accuracy reaches this (0: train every epoch), evaluating the test
  // set every eval_every steps (0: at the end of each epoch only) and at every epoch's end.
  double target_accuracy = 0;
  int64_t eval_every = 0;
  // Stop after this many epochs of the run (0: run them all); the schedule keeps the whole
  // run's length, so a checkpoint saved here resumes the same run.
  int stop_after_epoch = 0;
  // Asked after every step and before every epoch: true ends the run there, between two steps
  // (an interrupt; TrainReport::interrupted), so that the state taken after it resumes it.
  // An engine that runs several steps per call (Backend::steps_per_call) is asked after each
  // call's last step.
  std::function<bool()> stop_requested;
};

// Time to a target accuracy: from the first step until the evaluation that reached it was
// known, evaluations included.
struct TargetReport {
  bool asked = false, reached = false;
  int64_t steps = 0;        // Adam steps when it was reached (or run, when not)
  double seconds = 0;       // wall time from the first step, evaluations included
  double accuracy = 0;      // at that evaluation (or the last one)
  int evaluations = 0;
};

struct EpochReport {
  int epoch = 0;  // 1-based
  double loss = 0, train_accuracy = 0, test_accuracy = 0, test_loss = 0, seconds = 0;
};

struct TrainReport {
  std::vector<EpochReport> epochs;
  double test_accuracy = 0, train_seconds = 0, images_per_second = 0;
  int64_t steps = 0, images = 0;
  TargetReport target;
  bool interrupted = false;  // ended by stop_requested, not by its epochs or target
};

// Optimizer state that a resumable checkpoint carries.
struct TrainState {
  std::vector<float> params, m, v;  // Model::param_floats each (m, v empty: fresh optimizer)
  int64_t step = 0;                 // Adam steps taken
  int epoch = 0;                    // epochs completed
  int64_t epoch_step = 0;           // steps done in the next epoch (an interrupted one)
};

struct Progress {
  int epoch = 0, epochs = 0;
  int64_t step = 0, steps = 0;      // within the epoch
  Metrics running;
  double seconds = 0, eta_seconds = 0, images_per_second = 0;
  bool epoch_done = false;
  EpochReport report;               // valid when epoch_done
};

class Trainer {
 public:
  // The backend must be planned for the model; the trainer uploads nothing itself.
  Trainer(const Model& model, Backend& backend, TrainOptions opts);
  // Fresh Glorot weights from the seed, or a state to resume or fine-tune from.
  void initialise();
  void load_state(const TrainState& state);
  TrainState state();
  // Runs the remaining epochs (opts.epochs counts from epoch 0). `train_count` is the number
  // of uploaded training images. The callback sees progress every few steps and each epoch.
  TrainReport run(int64_t train_count, const std::function<void(const Progress&)>& progress = {});

 private:
  const Model& model_;
  Backend& backend_;
  TrainOptions opts_;
  int64_t step_ = 0;
  int epoch_ = 0;
  int64_t epoch_step_ = 0;
  std::vector<Hyper> hypers_;  // a run of steps' hyper-parameters (Backend::train_steps)
};

}  // namespace splitconv
