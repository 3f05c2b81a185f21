#include "train_common.h"

#include <cstdio>

namespace splitconv::cli {

void add_run_options(CLI::App* cmd, RunOptions& o, bool training) {
  cmd->add_option("--dataset", o.dataset, "mnist or fashion-mnist")->capture_default_str();
  cmd->add_option("--data-dir", o.data_dir, "data directory (default $SPLITCONV_DATA, else ./data)");
  cmd->add_option("--device", o.device, "cpu, cuda or auto")->capture_default_str();
  cmd->add_option("--json", o.json_path, "write a JSON report");
  cmd->add_option("--conv-impl", o.backend.conv_impl, "CUDA convolutions: auto, cudnn or own")
      ->capture_default_str();
  cmd->add_option("--engine", o.backend.engine,
                  "CUDA training engine: graph (cuDNN, cuBLAS and own kernels, one CUDA graph a "
                  "step), fused (own kernels, a block per image, two kernels a step; falls back "
                  "to graph, saying why, for a model it cannot run) or auto (fused where it runs)")
      ->capture_default_str();
  cmd->add_option("--fused-blocks", o.backend.fused_blocks,
                  "CUDA, fused engine: thread blocks per image — 0 chooses (a cluster on Hopper "
                  "and later when the batch leaves SMs idle), 1 one block, 2-8 a cluster")
      ->capture_default_str()
      ->check(CLI::Range(0, 8));
  cmd->add_flag("--tf32", o.backend.tf32, "CUDA: allow TF32 tensor-core math (default fp32)");
  cmd->add_flag("--deterministic", o.backend.deterministic,
                "CUDA: reproducible training — the same seed gives bitwise the same weights on the "
                "same card (deterministic cuDNN algorithms only, conv implementation fixed instead "
                "of timed, fixed-order reductions; may be slower). The CPU is always "
                "reproducible for a given --threads");
  cmd->add_option("--threads", o.backend.threads, "CPU threads (default all cores)");
  cmd->add_flag("--verbose", o.backend.verbose, "print the per-layer implementation choices");
  cmd->add_flag("--progress", o.progress, "progress on stderr even when it is not a terminal");
  cmd->add_option("--batch", o.train.batch, "batch size")->capture_default_str()->check(CLI::PositiveNumber);
  if (!training) return;
  cmd->add_option("--epochs", o.train.epochs, "epochs")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--lr", o.train.hyper.lr, "Adam learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o.train.seed, "seed of the initial weights and the batch order")->capture_default_str();
  cmd->add_option("--limit", o.limit, "train on the first N training images only")->check(CLI::NonNegativeNumber);
}

static void show_progress(const std::string& label, const Progress& p) {
  if (p.epoch_done) {
    std::fprintf(stderr, "\r%s epoch %d/%d  loss %.4f  acc %.4f  test %.4f  %.1fs  %.0f img/s%*s\n",
                 label.c_str(), p.epoch, p.epochs, p.report.loss, p.report.train_accuracy,
                 p.report.test_accuracy, p.seconds, p.images_per_second, 12, "");
    return;
  }
  std::fprintf(stderr, "\r%s epoch %d/%d  %lld/%lld  loss %.4f  acc %.4f  %.0f img/s  ETA %.0fs ",
               label.c_str(), p.epoch, p.epochs, (long long)p.step, (long long)p.steps,
               p.running.loss(), p.running.accuracy(), p.images_per_second, p.eta_seconds);
  std::fflush(stderr);
}

RunResult train_model(const Model& model, const Dataset& data, const RunOptions& o,
                      const TrainState* start, const std::string& label,
                      const std::function<void(const TrainState&)>& after_epoch) {
  auto backend = make_backend(o.device, o.backend);
  backend->plan(model, o.train.batch);
  ImageSet train = data.train.head(o.limit);
  backend->upload(Split::Train, train);
  backend->upload(Split::Test, data.test);
  Trainer trainer(model, *backend, o.train);
  if (start) trainer.load_state(*start);
  else trainer.initialise();
  RunResult r;
  r.device = backend->name();
  r.description = backend->description();
  r.choices = backend->choices();
  r.engine = backend->engine();
  r.engine_note = backend->engine_note();
  if (!r.engine_note.empty())
    std::fprintf(stderr, "%s: engine %s: %s\n", label.c_str(), r.engine.c_str(),
                 r.engine_note.c_str());
  if (o.backend.verbose)
    for (const auto& c : r.choices) std::fprintf(stderr, "%s: %s\n", label.c_str(), c.c_str());
  const bool show = progress_enabled(o.progress) && !o.quiet;
  std::function<void(const Progress&)> cb;
  if (show || after_epoch)
    cb = [&](const Progress& p) {
      if (show) show_progress(label, p);
      if (p.epoch_done && after_epoch) after_epoch(trainer.state());
    };
  r.report = trainer.run(train.count, cb);
  r.state = trainer.state();
  return r;
}

nlohmann::json epochs_json(const TrainReport& r) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& e : r.epochs)
    a.push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"train_accuracy", e.train_accuracy},
                 {"test_accuracy", e.test_accuracy}, {"test_loss", e.test_loss},
                 {"seconds", e.seconds}});
  return a;
}

}  // namespace splitconv::cli
