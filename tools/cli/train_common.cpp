#include "train_common.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "splitconv/error.h"
#include "splitconv/plan.h"

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
      ->check(CLI::Range(0, 8));  // CLI11's range check: exit 2 like every bad option
  cmd->add_option("--steps-per-launch", o.backend.steps_per_launch,
                  "CUDA, fused engine: the most full-batch steps one persistent launch runs "
                  "(grid-wide barriers between a step's images and its update; the host looks "
                  "in, and an interrupt is seen, between launches); 1: a launch per step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  cmd->add_flag("--tf32", o.backend.tf32, "CUDA: allow TF32 tensor-core math (default fp32)");
  cmd->add_flag("--deterministic", o.backend.deterministic,
                "CUDA: reproducible training — the same seed gives bitwise the same weights on the "
                "same card (deterministic cuDNN algorithms only, conv implementation fixed instead "
                "of timed, fixed-order reductions; may be slower). The CPU is always "
                "reproducible for a given --threads");
  cmd->add_option("--threads", o.backend.threads,
                  "CPU threads, 1 to " + thousands(kMaxThreads) + " (default 0: all cores)");
  cmd->add_flag("--verbose", o.backend.verbose, "print the per-layer implementation choices");
  cmd->add_flag("--progress", o.progress, "progress on stderr even when it is not a terminal");
  cmd->add_option("--batch", o.train.batch,
                  "images a step, 1 to " + thousands(kMaxBatch))->capture_default_str();
  cmd->add_option("--limit", o.limit,
                  training ? "train on the first N training images only (0: all)"
                           : "evaluate the first N test images only (0: all)");
  if (!training) return;
  cmd->add_option("--epochs", o.train.epochs, "epochs (0 or more)")->capture_default_str();
  cmd->add_option("--lr", o.train.hyper.lr, "Adam learning rate (finite, positive)")
      ->capture_default_str();
  cmd->add_option("--seed", o.train.seed, "seed of the initial weights and the batch order")->capture_default_str();
  Schedule& sc = o.train.schedule;
  cmd->add_option("--lr-schedule", sc.kind,
                  "constant, onecycle (PyTorch's OneCycleLR: --lr is the peak) or warmup-cosine")
      ->capture_default_str();
  cmd->add_option("--warmup", sc.warmup,
                  "onecycle / warmup-cosine: the fraction of the run's steps spent warming up")
      ->capture_default_str();
  cmd->add_option("--anneal", sc.anneal, "onecycle: cos or linear")->capture_default_str();
  cmd->add_option("--div-factor", sc.div_factor, "onecycle: the first rate is lr / this")
      ->capture_default_str();
  cmd->add_option("--final-div-factor", sc.final_div_factor,
                  "onecycle: the last rate is lr / (div-factor · this)")
      ->capture_default_str();
  cmd->add_option("--final-fraction", sc.final_fraction,
                  "warmup-cosine: the last rate as a fraction of lr")
      ->capture_default_str();
  cmd->add_option("--beta1", o.train.hyper.beta1, "Adam's β1")->capture_default_str();
  cmd->add_option("--beta2", o.train.hyper.beta2, "Adam's β2")->capture_default_str();
  cmd->add_option("--eps", o.train.hyper.eps, "Adam's ε (Keras's form: added to √v)")
      ->capture_default_str();
  static std::string shuffle = "epoch";
  cmd->add_option("--shuffle", shuffle, "epoch (a new order every epoch) or none")
      ->capture_default_str()
      ->each([&o](const std::string& v) { o.train.shuffle = v != "none"; })
      ->check(CLI::IsMember({"epoch", "none"}));
  cmd->add_option("--target-accuracy", o.train.target_accuracy,
                  "stop as soon as the test accuracy reaches this (0 to 1); the report gives "
                  "the time and steps to it");
  cmd->add_option("--eval-every", o.train.eval_every,
                  "with --target-accuracy: evaluate the test set every N steps (0: at each "
                  "epoch's end only)")
      ->capture_default_str();
}

void check_run_options(const RunOptions& o, bool training) {
  if (o.device != "cpu" && o.device != "cuda" && o.device != "auto")
    throw InputError("--device: expected cpu, cuda or auto, got '" + o.device + "'");
  const std::string& impl = o.backend.conv_impl;
  if (impl != "auto" && impl != "cudnn" && impl != "own")
    throw InputError("--conv-impl: expected auto, cudnn or own, got '" + impl + "'");
  const std::string& engine = o.backend.engine;
  if (engine != "graph" && engine != "fused" && engine != "auto")
    throw InputError("--engine: expected graph, fused or auto, got '" + engine + "'");
  if (o.train.batch < 1 || o.train.batch > kMaxBatch)
    throw InputError("--batch " + std::to_string(o.train.batch) + ": expected 1 to " +
                     thousands(kMaxBatch) + " images a step");
  if (o.backend.threads < 0 || o.backend.threads > kMaxThreads)
    throw InputError("--threads " + std::to_string(o.backend.threads) + ": expected 1 to " +
                     thousands(kMaxThreads) + " (0: all cores)");
  if (o.limit < 0)
    throw InputError("--limit " + std::to_string(o.limit) +
                     ": expected a number of images, 0 or more (0: all)");
  if (!training) return;
  check_schedule(o.train.schedule);
  const Hyper& h = o.train.hyper;
  if (!(h.beta1 >= 0 && h.beta1 < 1)) throw InputError("--beta1: expected 0 or more and below 1");
  if (!(h.beta2 >= 0 && h.beta2 < 1)) throw InputError("--beta2: expected 0 or more and below 1");
  if (!(h.eps > 0 && std::isfinite(h.eps))) throw InputError("--eps: expected a finite, positive ε");
  if (!(o.train.target_accuracy >= 0 && o.train.target_accuracy <= 1))
    throw InputError("--target-accuracy: expected an accuracy from 0 to 1 (0: none)");
  if (o.train.eval_every < 0) throw InputError("--eval-every: expected 0 or more steps");
  if (o.train.epochs < 0)
    throw InputError("--epochs " + std::to_string(o.train.epochs) + ": expected 0 or more");
  const float lr = o.train.hyper.lr;
  if (!std::isfinite(lr) || lr <= 0) {
    char text[64];
    std::snprintf(text, sizeof text, "%g", double(lr));
    throw InputError(std::string("--lr ") + text + ": expected a finite, positive learning rate");
  }
}

void check_model_data(const Model& model, const std::string& label, const ImageSet& set,
                      const std::string& what) {
  const Shape images{set.h, set.w, set.c};
  if (!(images == model.input))
    throw InputError(label + ": the model takes " + hwc(model.input) + " images but the " + what +
                     " images are " + hwc(images));
  int top = -1;
  for (uint8_t l : set.labels) top = std::max(top, int(l));
  if (top >= model.classes)
    throw InputError(label + ": the model has " + std::to_string(model.classes) +
                     " classes (0 to " + std::to_string(model.classes - 1) + ") but the " + what +
                     " labels run to " + std::to_string(top) + " (" + std::to_string(top + 1) +
                     " classes)");
}

void check_plans(const std::vector<const Model*>& models, const RunOptions& o) {
  auto backend = make_backend(o.device, o.backend);
  for (const Model* m : models) backend->check_plan(*m, o.train.batch);
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
  const auto setup_start = std::chrono::steady_clock::now();
  auto backend = make_backend(o.device, o.backend);
  backend->plan(model, o.train.batch);
  const ImageSet train = data.train.head(o.limit);
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
  if (o.backend.verbose) {
    for (const auto& c : r.choices) std::fprintf(stderr, "%s: %s\n", label.c_str(), c.c_str());
    if (auto need = backend->memory_estimate(model, o.train.batch))
      std::fprintf(stderr, "%s: memory at batch %d: %s\n", label.c_str(), o.train.batch,
                   memory_text(*need).c_str());
  }
  const bool show = progress_enabled(o.progress) && !o.quiet;
  std::function<void(const Progress&)> cb;
  if (show || after_epoch)
    cb = [&](const Progress& p) {
      if (show) show_progress(label, p);
      if (p.epoch_done && after_epoch) after_epoch(trainer.state());
    };
  r.setup_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - setup_start).count();
  r.report = trainer.run(train.count, cb);
  r.state = trainer.state();
  return r;
}

nlohmann::json train_config(const RunOptions& o) {
  const TrainOptions& t = o.train;
  const Schedule& s = t.schedule;
  return {{"dataset", o.dataset},       {"seed", t.seed},
          {"batch", t.batch},           {"epochs", t.epochs},
          {"limit", o.limit},           {"lr", t.hyper.lr},
          {"beta1", t.hyper.beta1},     {"beta2", t.hyper.beta2},
          {"eps", t.hyper.eps},         {"lr_schedule", s.kind},
          {"warmup", s.warmup},         {"anneal", s.anneal},
          {"div_factor", s.div_factor}, {"final_div_factor", s.final_div_factor},
          {"final_fraction", s.final_fraction},
          {"shuffle", t.shuffle ? "epoch" : "none"}};
}

namespace {

std::string shown(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v.get<double>());
    return buf;
  }
  return v.dump();
}

// One option: taken from the checkpoint when not given; refused when given and different.
template <class T>
void restore(const CLI::App* cmd, const nlohmann::json& cfg, const std::string& path,
             const char* key, const char* option, T& value, bool may_differ = false) {
  if (!cfg.contains(key)) return;
  T saved;
  try {
    saved = cfg.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw InputError(path + ": train_config \"" + key + "\" has the wrong type");
  }
  const bool given = cmd->get_option(option)->count() > 0;
  if (!given) {
    value = saved;
  } else if (!(value == saved) && !may_differ) {
    throw InputError(std::string(option) + " " + shown(nlohmann::json(value)) + " differs from " +
                     path + "'s " + shown(nlohmann::json(saved)) +
                     ": a resumed run keeps its configuration");
  }
}

}  // namespace

void restore_train_config(const CLI::App* cmd, RunOptions& o, const nlohmann::json& cfg,
                          const std::string& path) {
  TrainOptions& t = o.train;
  Schedule& s = t.schedule;
  restore(cmd, cfg, path, "dataset", "--dataset", o.dataset);
  restore(cmd, cfg, path, "seed", "--seed", t.seed);
  restore(cmd, cfg, path, "batch", "--batch", t.batch);
  restore(cmd, cfg, path, "limit", "--limit", o.limit);
  restore(cmd, cfg, path, "lr", "--lr", t.hyper.lr);
  restore(cmd, cfg, path, "beta1", "--beta1", t.hyper.beta1);
  restore(cmd, cfg, path, "beta2", "--beta2", t.hyper.beta2);
  restore(cmd, cfg, path, "eps", "--eps", t.hyper.eps);
  restore(cmd, cfg, path, "lr_schedule", "--lr-schedule", s.kind);
  restore(cmd, cfg, path, "warmup", "--warmup", s.warmup);
  restore(cmd, cfg, path, "anneal", "--anneal", s.anneal);
  restore(cmd, cfg, path, "div_factor", "--div-factor", s.div_factor);
  restore(cmd, cfg, path, "final_div_factor", "--final-div-factor", s.final_div_factor);
  restore(cmd, cfg, path, "final_fraction", "--final-fraction", s.final_fraction);
  std::string shuffle = t.shuffle ? "epoch" : "none";
  restore(cmd, cfg, path, "shuffle", "--shuffle", shuffle);
  t.shuffle = shuffle != "none";
  // The schedule spans the whole run: its length may change only when the rate is constant.
  restore(cmd, cfg, path, "epochs", "--epochs", t.epochs, s.kind == "constant");
}

nlohmann::json target_json(const TrainOptions& t, const TrainReport& r) {
  if (!r.target.asked) return nullptr;
  return {{"accuracy", t.target_accuracy},
          {"reached", r.target.reached},
          {"time_to_target_seconds", r.target.reached ? nlohmann::json(r.target.seconds) : nullptr},
          {"steps_to_target", r.target.reached ? nlohmann::json(r.target.steps) : nullptr},
          {"seconds", r.target.seconds},
          {"steps", r.target.steps},
          {"test_accuracy", r.target.accuracy},
          {"evaluations", r.target.evaluations},
          {"eval_every", t.eval_every}};
}

nlohmann::json optimizer_json(const TrainOptions& t) {
  const Schedule& s = t.schedule;
  return {{"lr", t.hyper.lr},
          {"beta1", t.hyper.beta1},
          {"beta2", t.hyper.beta2},
          {"eps", t.hyper.eps},
          {"schedule", {{"kind", s.kind}, {"warmup", s.warmup}, {"anneal", s.anneal},
                        {"div_factor", s.div_factor}, {"final_div_factor", s.final_div_factor},
                        {"final_fraction", s.final_fraction}, {"text", describe(s)}}},
          {"shuffle", t.shuffle ? "epoch" : "none"}};
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
