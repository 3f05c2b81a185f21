// The trainer: the same loop for every backend. No layer math here (docs/design.md, Data flow).
#include "splitconv/train.h"

#include <chrono>
#include <cmath>

#include "splitconv/error.h"
#include "splitconv/random.h"

namespace splitconv {

Trainer::Trainer(const Model& model, Backend& backend, TrainOptions opts)
    : model_(model), backend_(backend), opts_(opts) {
  if (opts_.batch <= 0) throw InputError("--batch must be positive");
  if (opts_.epochs < 0) throw InputError("--epochs must not be negative");
}

void Trainer::initialise() {
  auto params = init_parameters(model_, opts_.seed);
  std::vector<float> zeros(params.size(), 0.0f);
  backend_.set_parameters(params);
  backend_.set_moments(zeros, zeros);
  step_ = 0;
  epoch_ = 0;
}

void Trainer::load_state(const TrainState& s) {
  if (int64_t(s.params.size()) != model_.param_floats)
    throw Error("trainer: parameter buffer of the wrong size");
  backend_.set_parameters(s.params);
  if (s.m.empty()) {
    std::vector<float> zeros(s.params.size(), 0.0f);
    backend_.set_moments(zeros, zeros);
    step_ = 0;
    epoch_ = 0;
  } else {
    backend_.set_moments(s.m, s.v);
    step_ = s.step;
    epoch_ = s.epoch;
  }
}

TrainState Trainer::state() {
  TrainState s;
  s.params.resize(size_t(model_.param_floats));
  s.m.resize(s.params.size());
  s.v.resize(s.params.size());
  backend_.get_parameters(s.params);
  backend_.get_moments(s.m, s.v);
  s.step = step_;
  s.epoch = epoch_;
  return s;
}

TrainReport Trainer::run(int64_t train_count,
                         const std::function<void(const Progress&)>& progress) {
  using clock = std::chrono::steady_clock;
  TrainReport report;
  if (train_count <= 0) throw InputError("no training images");
  const int64_t steps = (train_count + opts_.batch - 1) / opts_.batch;  // last partial kept
  const int64_t total_steps = steps * (opts_.epochs - epoch_);
  int64_t done_steps = 0;
  double train_seconds = 0;
  auto start_all = clock::now();
  // Progress every ~2% of an epoch: enough for a live line, rare enough not to stall a GPU.
  const int64_t every = std::max<int64_t>(1, steps / 50);
  while (epoch_ < opts_.epochs) {
    auto order = epoch_order(train_count, opts_.seed, epoch_);
    backend_.set_order(order);
    backend_.reset_train_metrics();
    auto t0 = clock::now();
    for (int64_t s = 0; s < steps; ++s) {
      int64_t begin = s * opts_.batch;
      int count = int(std::min<int64_t>(opts_.batch, train_count - begin));
      backend_.train_step(begin, count, ++step_, opts_.hyper);
      ++done_steps;
      if (progress && ((s + 1) % every == 0) && s + 1 < steps) {
        Progress p;
        p.epoch = epoch_ + 1, p.epochs = opts_.epochs, p.step = s + 1, p.steps = steps;
        p.running = backend_.train_metrics();
        p.seconds = std::chrono::duration<double>(clock::now() - t0).count();
        double per_step = std::chrono::duration<double>(clock::now() - start_all).count() /
                          double(done_steps);
        p.eta_seconds = per_step * double(total_steps - done_steps);
        p.images_per_second = double(p.running.count) / std::max(p.seconds, 1e-9);
        progress(p);
      }
    }
    Metrics m = backend_.train_metrics();  // synchronises with the device
    double seconds = std::chrono::duration<double>(clock::now() - t0).count();
    if (!std::isfinite(m.loss_sum))
      throw Error("training diverged: the loss is not finite in epoch " +
                  std::to_string(epoch_ + 1) + " (by step " + std::to_string(step_) + ")");
    train_seconds += seconds;
    report.images += train_count;
    report.steps += steps;
    ++epoch_;  // done: a state taken from here on (a checkpoint) resumes at the next epoch
    Metrics test = backend_.evaluate(Split::Test);
    EpochReport e;
    e.epoch = epoch_;
    e.loss = m.loss();
    e.train_accuracy = m.accuracy();
    e.test_accuracy = test.accuracy();
    e.test_loss = test.loss();
    e.seconds = seconds;
    report.epochs.push_back(e);
    if (progress) {
      Progress p;
      p.epoch = epoch_, p.epochs = opts_.epochs, p.step = steps, p.steps = steps;
      p.running = m;
      p.seconds = seconds;
      p.images_per_second = double(train_count) / std::max(seconds, 1e-9);
      double per_step = std::chrono::duration<double>(clock::now() - start_all).count() /
                        double(std::max<int64_t>(done_steps, 1));
      p.eta_seconds = per_step * double(total_steps - done_steps);
      p.epoch_done = true;
      p.report = e;
      progress(p);
    }
  }
  report.train_seconds = train_seconds;
  report.images_per_second = train_seconds > 0 ? double(report.images) / train_seconds : 0;
  report.test_accuracy = report.epochs.empty() ? backend_.evaluate(Split::Test).accuracy()
                                               : report.epochs.back().test_accuracy;
  return report;
}

}  // namespace splitconv
