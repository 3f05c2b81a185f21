// splitconv train MODEL: train on a dataset, report per epoch, save a checkpoint.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <optional>

#include "splitconv/checkpoint.h"
#include "splitconv/error.h"
#include "splitconv/files.h"
#include "splitconv/spec.h"
#include "train_common.h"

namespace splitconv::cli {

namespace {

volatile std::sig_atomic_t stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
  stop_signal = sig;
  // The next one of either ends the process at once (the default action).
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

// While it lives, the first SIGINT or SIGTERM asks the run to stop between two steps
// (docs/design.md, Interrupts); the previous actions come back with its end.
class StopSignals {
 public:
  StopSignals() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    stop_signal = 0;
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~StopSignals() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  static int received() { return stop_signal; }

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

// Both signals held back from this thread for a scope (a save): one that comes meanwhile is
// delivered after it.
class SignalsHeld {
 public:
  SignalsHeld() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~SignalsHeld() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  SignalsHeld(const SignalsHeld&) = delete;
  SignalsHeld& operator=(const SignalsHeld&) = delete;

 private:
  sigset_t old_;
};

}  // namespace

void add_train(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train a model on MNIST or Fashion-MNIST");
  static RunOptions o;
  static std::string model_path, save_path, resume_path, init_path, plot_path;
  cmd->add_option("MODEL", model_path, "model spec (.net); optional with --resume or --init");
  add_run_options(cmd, o, true);
  cmd->add_option("--save", save_path, "save a checkpoint (weights and optimizer state)");
  auto* resume = cmd->add_option("--resume", resume_path, "resume training from a checkpoint");
  cmd->add_option("--init", init_path, "fine-tune from a checkpoint's weights (fresh optimizer)")
      ->excludes(resume);
  cmd->add_option("--stop-after-epoch", o.train.stop_after_epoch,
                  "stop after this many epochs of the run (the schedule keeps the run's length; "
                  "with --save, --resume continues it)");
  cmd->add_option("--plot", plot_path,
                  "draw training loss and test accuracy per epoch into this .png (tools/plot.py, "
                  "python3-matplotlib; without it, one line says so and the report is still "
                  "written: --json, else FILE.json beside FILE.png)");
  cmd->callback([cmd] {
    // A resumed run's configuration comes from its checkpoint (flags that differ are refused).
    Checkpoint resumed;
    if (!resume_path.empty()) {
      resumed = load_checkpoint(resume_path);
      if (!resumed.train_config.empty())
        restore_train_config(cmd, o, nlohmann::json::parse(resumed.train_config), resume_path);
    }
    // Everything checkable before the first step (docs/design.md, Errors).
    check_run_options(o, true);
    if (o.train.stop_after_epoch < 0)
      throw InputError("--stop-after-epoch: expected 0 (none) or more epochs");
    ReportOutput out{o.json_path, plot_path};
    out.check();
    check_writable(save_path, "--save");
    Model model;
    TrainState start;
    const TrainState* from = nullptr;
    std::string ck_path = !resume_path.empty() ? resume_path : init_path;
    if (!ck_path.empty()) {
      Checkpoint ck = !resume_path.empty() ? std::move(resumed) : load_checkpoint(ck_path);
      model = model_of(ck, ck_path);
      model.spec.source = ck_path;  // reports name the checkpoint, not "CK:spec"
      if (!model_path.empty()) {
        Model asked = build_model(load_spec(model_path));
        if (format_spec(asked.spec) != format_spec(model.spec))
          throw InputError(ck_path + ": its model spec differs from " + model_path);
        model.spec.source = model_path;
      }
      start = ck.state;
      if (!init_path.empty())
        start.m.clear(), start.v.clear(), start.step = 0, start.epoch = 0, start.epoch_step = 0;
      else if (start.m.empty())
        throw InputError(resume_path + ": holds no optimizer state to resume (use --init)");
      from = &start;
    } else {
      if (model_path.empty()) throw InputError("train: a MODEL (or --resume/--init CK) is needed");
      model = build_model(load_spec(model_path));
    }
    check_plans({&model}, o);
    Dataset data = load_dataset(o.dataset, resolve_data_dir(o.data_dir));
    check_model_data(model, model.spec.source, data.train, o.dataset + " train");
    check_model_data(model, model.spec.source, data.test, o.dataset + " test");
    const int64_t images = std::min<int64_t>(o.limit ? o.limit : data.train.count, data.train.count);
    const int64_t steps = (images + o.train.batch - 1) / o.train.batch;
    if (from && from->epoch_step >= steps)
      throw InputError(ck_path + ": stopped after step " + std::to_string(from->epoch_step) +
                       " of an epoch, which has " + std::to_string(steps) + " steps here");
    // With --save, a checkpoint after every epoch: a crash loses at most the epoch in flight.
    auto save = [&](const TrainState& state) {
      Checkpoint ck;
      ck.spec_text = format_spec(model.spec);
      ck.state = state;
      ck.dataset = o.dataset;
      ck.train_config = train_config(o).dump();
      SignalsHeld held;
      save_checkpoint(save_path, model, ck);
    };
    std::function<void(const TrainState&)> after_epoch;
    if (!save_path.empty()) after_epoch = save;
    // With --save, SIGINT and SIGTERM end the run between two steps, saved (docs/design.md,
    // Interrupts).
    std::optional<StopSignals> signals;
    if (!save_path.empty()) {
      signals.emplace();
      o.train.stop_requested = [] { return StopSignals::received() != 0; };
    }
    RunResult r = train_model(model, data, o, from, model.spec.source, after_epoch);
    o.train.stop_requested = nullptr;
    if (r.report.interrupted) {
      const int sig = StopSignals::received();
      save(r.state);
      const std::string where =
          r.state.epoch_step > 0
              ? "in epoch " + std::to_string(r.state.epoch + 1) + " after step " +
                    std::to_string(r.state.epoch_step) + " of " + std::to_string(steps)
              : "after epoch " + std::to_string(r.state.epoch);
      std::fprintf(stderr,
                   "splitconv: interrupted by %s %s; resumable checkpoint written to %s "
                   "(continue: splitconv train --resume %s)\n",
                   sig == SIGTERM ? "SIGTERM" : "SIGINT", where.c_str(), save_path.c_str(),
                   save_path.c_str());
    } else {
      std::printf("%s on %s (%s): test accuracy %.4f, %.1f s, %.0f images/s\n",
                  model.spec.source.c_str(), o.dataset.c_str(), r.description.c_str(),
                  r.report.test_accuracy, r.report.train_seconds, r.report.images_per_second);
      if (r.report.target.asked) {
        const TargetReport& tr = r.report.target;
        if (tr.reached)
          std::printf("target %.4f reached: %.4f after %lld steps, %.3f s from the first step "
                      "(%d evaluations included; set-up %.2f s before it)\n",
                      o.train.target_accuracy, tr.accuracy, (long long)tr.steps, tr.seconds,
                      tr.evaluations, r.setup_seconds);
        else
          std::printf("target %.4f not reached: %.4f at the end, %lld steps, %.3f s\n",
                      o.train.target_accuracy, tr.accuracy, (long long)tr.steps, tr.seconds);
      }
    }
    if (!save_path.empty() && r.report.epochs.empty() && !r.report.interrupted)
      save(r.state);  // --epochs 0: still save
    if (!out.report_path().empty()) {
      nlohmann::json j = {{"model", model.spec.source},
                          {"dataset", o.dataset},
                          {"device", r.device},
                          {"device_description", r.description},
                          {"engine", r.engine},
                          {"engine_note", r.engine_note},
                          {"params", model.total_params},
                          {"macs", model.total_macs},
                          {"batch", o.train.batch},
                          {"seed", o.train.seed},
                          {"deterministic", r.device == "cpu" || o.backend.deterministic},
                          {"train_images", images},
                          {"epochs", epochs_json(r.report)},
                          {"test_accuracy", r.report.test_accuracy},
                          {"train_seconds", r.report.train_seconds},
                          {"images_per_second", r.report.images_per_second},
                          {"conv_impl", r.choices},
                          {"optimizer", optimizer_json(o.train)},
                          {"setup_seconds", r.setup_seconds},
                          {"target", target_json(o.train, r.report)},
                          {"interrupted", r.report.interrupted}};
      out.write(j);
    }
    if (r.report.interrupted) throw ExitStatus{128 + StopSignals::received()};
  });
}

}  // namespace splitconv::cli
