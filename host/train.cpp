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
  check_schedule(opts_.schedule);
}

void Trainer::initialise() {
  auto params = init_parameters(model_, opts_.seed);
  std::vector<float> zeros(params.size(), 0.0f);
  backend_.set_parameters(params);
  backend_.set_moments(zeros, zeros);
  step_ = 0;
  epoch_ = 0;
  epoch_step_ = 0;
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
    epoch_step_ = 0;
  } else {
    if (s.epoch_step < 0) throw Error("trainer: negative step within the epoch");
    backend_.set_moments(s.m, s.v);
    step_ = s.step;
    epoch_ = s.epoch;
    epoch_step_ = s.epoch_step;
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
  s.epoch_step = epoch_step_;
  return s;
}

TrainReport Trainer::run(int64_t train_count,
                         const std::function<void(const Progress&)>& progress) {
  using clock = std::chrono::steady_clock;
  TrainReport report;
  if (train_count <= 0) throw InputError("no training images");
  const int64_t steps = (train_count + opts_.batch - 1) / opts_.batch;  // last partial kept
  const int64_t run_steps = steps * opts_.epochs;  // the schedule's length, from epoch 0
  int64_t done_steps = 0;
  double train_seconds = 0;
  auto start_all = clock::now();
  auto since_start = [&] { return std::chrono::duration<double>(clock::now() - start_all).count(); };
  TargetReport& target = report.target;
  target.asked = opts_.target_accuracy > 0;
  // One test evaluation for the target; true when it is reached.
  auto reached = [&](double accuracy) {
    ++target.evaluations;
    target.accuracy = accuracy;
    target.steps = step_;
    target.seconds = since_start();
    target.reached = accuracy >= opts_.target_accuracy;
    return target.reached;
  };
  // Progress every ~2% of an epoch: enough for a live line, rare enough not to stall a GPU.
  const int64_t every = std::max<int64_t>(1, steps / 50);
  std::vector<int32_t> in_order;
  const int last_epoch =
      opts_.stop_after_epoch > 0 ? std::min(opts_.epochs, opts_.stop_after_epoch) : opts_.epochs;
  // A run resumed inside an epoch (an interrupt) starts at that epoch's next step.
  if (epoch_step_ >= steps)
    throw InputError("the resumed state is at step " + std::to_string(epoch_step_) +
                     " of an epoch that has " + std::to_string(steps) + " steps here");
  const int64_t total_steps =
      std::max<int64_t>(steps * std::max(last_epoch - epoch_, 0) - epoch_step_, 0);
  auto stop = [&] { return opts_.stop_requested && opts_.stop_requested(); };
  while (epoch_ < last_epoch && !target.reached) {
    if (stop()) {
      report.interrupted = true;
      break;
    }
    if (opts_.shuffle) {
      backend_.set_order(epoch_order(train_count, opts_.seed, epoch_));
    } else {
      if (in_order.empty()) {
        in_order.resize(size_t(train_count));
        for (int64_t i = 0; i < train_count; ++i) in_order[size_t(i)] = int32_t(i);
      }
      backend_.set_order(in_order);
    }
    backend_.reset_train_metrics();
    auto t0 = clock::now();
    double eval_seconds = 0;  // inside this epoch, for the target (not training time)
    const int64_t first = epoch_step_;
    int64_t s = first;
    epoch_step_ = 0;
    // Full steps an engine may run in one call: none of them but the last may be one after
    // which the loop below looks in (an evaluation, a progress line).
    const int per_call = std::max(backend_.steps_per_call(), 1);
    const int64_t full_steps = train_count / opts_.batch;
    auto run_of = [&](int64_t from) {
      int64_t n = std::min<int64_t>(per_call, full_steps - from);
      if (target.asked && opts_.eval_every > 0)
        n = std::min<int64_t>(n, opts_.eval_every - step_ % opts_.eval_every);
      if (progress) n = std::min<int64_t>(n, every - from % every);
      return std::max<int64_t>(n, 1);
    };
    for (; s < steps; ++s) {
      int64_t begin = s * opts_.batch;
      int count = int(std::min<int64_t>(opts_.batch, train_count - begin));
      const int64_t run = per_call > 1 && s < full_steps ? run_of(s) : 1;
      if (run == 1) {
        Hyper h = opts_.hyper;
        h.lr = float(scheduled_lr(opts_.schedule, opts_.hyper.lr, step_ + 1, run_steps));
        backend_.train_step(begin, count, ++step_, h);
      } else {
        hypers_.assign(size_t(run), opts_.hyper);
        for (int64_t i = 0; i < run; ++i)
          hypers_[size_t(i)].lr =
              float(scheduled_lr(opts_.schedule, opts_.hyper.lr, step_ + 1 + i, run_steps));
        backend_.train_steps(begin, count, step_ + 1, hypers_);
        step_ += run;
        done_steps += run - 1;
        s += run - 1;  // the checks below are for the run's last step
      }
      ++done_steps;
      if (s + 1 < steps && stop()) {
        report.interrupted = true;
        ++s;
        break;
      }
      if (target.asked && opts_.eval_every > 0 && step_ % opts_.eval_every == 0 && s + 1 < steps) {
        auto e0 = clock::now();
        const bool hit = reached(backend_.evaluate(Split::Test).accuracy());
        eval_seconds += std::chrono::duration<double>(clock::now() - e0).count();
        if (hit) {
          ++s;
          break;
        }
      }
      if (progress && ((s + 1) % every == 0) && s + 1 < steps) {
        Progress p;
        p.epoch = epoch_ + 1, p.epochs = opts_.epochs, p.step = s + 1, p.steps = steps;
        p.running = backend_.train_metrics();
        p.seconds = std::chrono::duration<double>(clock::now() - t0).count() - eval_seconds;
        double per_step = since_start() / double(done_steps);
        p.eta_seconds = per_step * double(total_steps - done_steps);
        p.images_per_second = double(p.running.count) / std::max(p.seconds, 1e-9);
        progress(p);
      }
    }
    const bool whole = s == steps;  // false: stopped inside the epoch (target or interrupt)
    Metrics m = backend_.train_metrics();  // synchronises with the device
    if (report.interrupted) {
      // The epoch resumes at step s: no report for a part of it (its metrics start afresh).
      epoch_step_ = s;
      report.images += m.count;
      report.steps += s - first;
      train_seconds += std::chrono::duration<double>(clock::now() - t0).count() - eval_seconds;
      break;
    }
    double seconds = std::chrono::duration<double>(clock::now() - t0).count() - eval_seconds;
    if (!std::isfinite(m.loss_sum))
      throw Error("training diverged: the loss is not finite in epoch " +
                  std::to_string(epoch_ + 1) + " (by step " + std::to_string(step_) + ")");
    train_seconds += seconds;
    report.images += m.count;
    report.steps += s - first;
    if (whole) ++epoch_;  // done: a state taken from here on (a checkpoint) resumes at the next
    else epoch_step_ = s;  // stopped at the target: a state resumes at the step after it
    EpochReport e;
    e.epoch = epoch_ + (whole ? 0 : 1);
    e.loss = m.loss();
    e.train_accuracy = m.accuracy();
    if (whole) {
      Metrics test = backend_.evaluate(Split::Test);
      e.test_accuracy = test.accuracy();
      e.test_loss = test.loss();
      if (target.asked) reached(e.test_accuracy);
    } else {
      e.test_accuracy = target.accuracy;  // the evaluation that stopped it
      e.test_loss = NAN;
    }
    e.seconds = seconds;
    report.epochs.push_back(e);
    if (progress) {
      Progress p;
      p.epoch = e.epoch, p.epochs = opts_.epochs, p.step = s, p.steps = steps;
      p.running = m;
      p.seconds = seconds;
      p.images_per_second = double(m.count) / std::max(seconds, 1e-9);
      double per_step = since_start() / double(std::max<int64_t>(done_steps, 1));
      p.eta_seconds = target.reached ? 0 : per_step * double(total_steps - done_steps);
      p.epoch_done = true;
      p.report = e;
      progress(p);
    }
  }
  report.train_seconds = train_seconds;
  report.images_per_second = train_seconds > 0 ? double(report.images) / train_seconds : 0;
  if (!report.epochs.empty())
    report.test_accuracy = report.epochs.back().test_accuracy;
  else  // an interrupt ends the run at once: no evaluation
    report.test_accuracy = report.interrupted ? NAN : backend_.evaluate(Split::Test).accuracy();
  return report;
}

}  // namespace splitconv
