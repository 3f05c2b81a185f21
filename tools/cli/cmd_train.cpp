// splitconv train MODEL: train on a dataset, report per epoch, save a checkpoint.
#include <cstdio>

#include "splitconv/checkpoint.h"
#include "splitconv/error.h"
#include "splitconv/files.h"
#include "splitconv/spec.h"
#include "train_common.h"

namespace splitconv::cli {

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
      if (!init_path.empty()) start.m.clear(), start.v.clear(), start.step = 0, start.epoch = 0;
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
    // With --save, a checkpoint after every epoch: a crash loses at most the epoch in flight.
    auto save = [&](const TrainState& state) {
      Checkpoint ck;
      ck.spec_text = format_spec(model.spec);
      ck.state = state;
      ck.dataset = o.dataset;
      ck.train_config = train_config(o).dump();
      save_checkpoint(save_path, model, ck);
    };
    std::function<void(const TrainState&)> after_epoch;
    if (!save_path.empty()) after_epoch = save;
    RunResult r = train_model(model, data, o, from, model.spec.source, after_epoch);
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
    if (!save_path.empty() && r.report.epochs.empty()) save(r.state);  // --epochs 0: still save
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
                          {"train_images", std::min<int64_t>(o.limit ? o.limit : data.train.count, data.train.count)},
                          {"epochs", epochs_json(r.report)},
                          {"test_accuracy", r.report.test_accuracy},
                          {"train_seconds", r.report.train_seconds},
                          {"images_per_second", r.report.images_per_second},
                          {"conv_impl", r.choices},
                          {"optimizer", optimizer_json(o.train)},
                          {"setup_seconds", r.setup_seconds},
                          {"target", target_json(o.train, r.report)}};
      out.write(j);
    }
  });
}

}  // namespace splitconv::cli
