// The trainer on the CPU backend: determinism, resume, divergence, real MNIST when present.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "splitconv/backend.h"
#include "splitconv/checkpoint.h"
#include "splitconv/data.h"
#include "splitconv/error.h"
#include "splitconv/random.h"
#include "splitconv/train.h"

using namespace splitconv;

namespace {

const char* kSmall =
    "input 12x12x1\nconv 6 3x3 relu\nmaxpool 2x2\nconv 8 3x1 relu\nconv 8 1x3 relu\n"
    "flatten\ndense 16 relu\ndense 4 softmax\n";

// Four classes: a bright bar in one quadrant of a noisy 12×12 image.
ImageSet synthetic(int64_t count, uint64_t seed) {
  ImageSet s;
  s.count = count, s.h = 12, s.w = 12, s.c = 1;
  s.pixels.resize(size_t(count) * 144);
  s.labels.resize(size_t(count));
  Rng rng(seed);
  for (int64_t i = 0; i < count; ++i) {
    int label = int(rng.below(4));
    s.labels[size_t(i)] = uint8_t(label);
    uint8_t* img = s.pixels.data() + i * 144;
    for (int p = 0; p < 144; ++p) img[p] = uint8_t(rng.below(60));
    int r0 = (label / 2) * 6, c0 = (label % 2) * 6;
    for (int r = 1; r < 5; ++r) img[(r0 + r) * 12 + c0 + 2] = img[(r0 + r) * 12 + c0 + 3] = 250;
  }
  return s;
}

struct Rig {
  Model model = build_model(parse_spec(kSmall, "small.net"));
  std::unique_ptr<Backend> backend = make_backend("cpu", {});
  ImageSet train = synthetic(200, 1), test = synthetic(100, 2);
  explicit Rig(int batch = 16) {
    backend->plan(model, batch);
    backend->upload(Split::Train, train);
    backend->upload(Split::Test, test);
  }
};

TrainOptions options(int epochs) {
  TrainOptions o;
  o.epochs = epochs;
  o.batch = 16;
  o.seed = 3;
  return o;
}

}  // namespace

TEST(Trainer, LearnsASyntheticProblem) {
  Rig s;
  Trainer t(s.model, *s.backend, options(8));
  t.initialise();
  TrainReport r = t.run(s.train.count);
  ASSERT_EQ(r.epochs.size(), 8u);
  EXPECT_LT(r.epochs.back().loss, r.epochs.front().loss);
  EXPECT_GE(r.test_accuracy, 0.97);
  EXPECT_EQ(r.steps, 8 * 13);  // 200 images at batch 16: 12 full batches and one of 8
}

TEST(Trainer, SameSeedGivesBitwiseTheSameWeights) {
  Rig a, b;
  Trainer ta(a.model, *a.backend, options(2)), tb(b.model, *b.backend, options(2));
  ta.initialise();
  tb.initialise();
  ta.run(a.train.count);
  tb.run(b.train.count);
  EXPECT_EQ(ta.state().params, tb.state().params);
  Rig c;
  auto other = options(2);
  other.seed = 4;
  Trainer tc(c.model, *c.backend, other);
  tc.initialise();
  tc.run(c.train.count);
  EXPECT_NE(ta.state().params, tc.state().params);
}

TEST(Trainer, TwoEpochsEqualOneSavedResumedAndOneMore) {
  Rig a;
  Trainer ta(a.model, *a.backend, options(2));
  ta.initialise();
  ta.run(a.train.count);

  Rig b;
  Trainer tb(b.model, *b.backend, options(1));
  tb.initialise();
  tb.run(b.train.count);
  // A directory of this test's own: parallel test runs must not share the file.
  std::string dir = (std::filesystem::temp_directory_path() / "splitconv-resume-XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  auto path = dir + "/resume.safetensors";
  Checkpoint ck;
  ck.spec_text = format_spec(b.model.spec);
  ck.state = tb.state();
  save_checkpoint(path, b.model, ck);

  Checkpoint back = load_checkpoint(path);
  std::filesystem::remove_all(dir);
  Model model = model_of(back, path);
  Rig c;
  Trainer tc(model, *c.backend, options(2));
  tc.load_state(back.state);
  TrainReport r = tc.run(c.train.count);
  EXPECT_EQ(r.epochs.size(), 1u);
  EXPECT_EQ(r.epochs[0].epoch, 2);
  EXPECT_EQ(tc.state().params, ta.state().params);
  EXPECT_EQ(tc.state().m, ta.state().m);
  EXPECT_EQ(tc.state().step, ta.state().step);
}

TEST(Trainer, ADivergingLossStopsWithAClearError) {
  Rig s;
  auto o = options(1);
  o.hyper.lr = 1e30f;  // steps so large that the logits overflow
  Trainer t(s.model, *s.backend, o);
  t.initialise();
  try {
    t.run(s.train.count);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not finite"), std::string::npos) << e.what();
  }
}

TEST(Trainer, EpochOrderIsAPermutationFixedBySeedAndEpoch) {
  auto a = epoch_order(1000, 5, 0), b = epoch_order(1000, 5, 0), c = epoch_order(1000, 5, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(sorted[size_t(i)], i);
}

TEST(TrainerMnist, LossDecreasesOnAFewHundredRealImages) {
  const char* env = std::getenv("SPLITCONV_DATA");
  std::string dir = env ? env : std::string(SPLITCONV_SOURCE_DIR) + "/data";
  Dataset d;
  try {
    d = load_dataset("mnist", dir);
  } catch (const InputError& e) {
    GTEST_SKIP() << "MNIST not present (" << e.what() << "); tools/fetch-data.sh fetches it";
  }
  Model m = build_model(load_spec(SPLITCONV_SOURCE_DIR "/models/seed-v1.net"));
  auto backend = make_backend("cpu", {});
  backend->plan(m, 32);
  ImageSet train = d.train.head(640);
  backend->upload(Split::Train, train);
  backend->upload(Split::Test, d.test.head(500));
  TrainOptions o;
  o.epochs = 3;
  Trainer t(m, *backend, o);
  t.initialise();
  TrainReport r = t.run(train.count);
  EXPECT_LT(r.epochs.back().loss, 0.6 * r.epochs.front().loss);
  EXPECT_GT(r.test_accuracy, 0.7);
}

TEST(Trainer, StateTakenAtTheEndOfAnEpochResumesAtTheNext) {
  Rig s;
  Trainer t(s.model, *s.backend, options(2));
  t.initialise();
  std::vector<int> seen;
  std::vector<int64_t> steps;
  t.run(s.train.count, [&](const Progress& p) {
    if (!p.epoch_done) return;
    TrainState st = t.state();  // what `train --save` writes after every epoch
    seen.push_back(st.epoch);
    steps.push_back(st.step);
  });
  EXPECT_EQ(seen, (std::vector<int>{1, 2}));
  EXPECT_EQ(steps, (std::vector<int64_t>{13, 26}));
}

// An interrupt (stop_requested) inside an epoch ends the run after that step; the state taken
// there, through a checkpoint, resumes inside the epoch and ends where the straight run ends,
// bit for bit. 200 images at batch 16: 13 steps an epoch. stop_requested is asked before each
// epoch and after each step but an epoch's last: 1 + 12 in epoch 1, then 1 before epoch 2 and
// one after each of its steps, so its 18th answer (true) comes after step 4 of epoch 2.
TEST(Trainer, InterruptedInsideAnEpochResumesToTheStraightRun) {
  Rig a;
  Trainer ta(a.model, *a.backend, options(3));
  ta.initialise();
  ta.run(a.train.count);

  Rig b;
  TrainOptions ob = options(3);
  int64_t asked = 0;
  ob.stop_requested = [&] { return ++asked > 17; };
  Trainer tb(b.model, *b.backend, ob);
  tb.initialise();
  TrainReport rb = tb.run(b.train.count);
  EXPECT_TRUE(rb.interrupted);
  ASSERT_EQ(rb.epochs.size(), 1u);  // epoch 1 whole; no report for the part of epoch 2
  EXPECT_TRUE(std::isfinite(rb.test_accuracy));
  TrainState st = tb.state();
  EXPECT_EQ(st.epoch, 1);
  EXPECT_EQ(st.epoch_step, 4);
  EXPECT_EQ(st.step, 17);

  std::string dir = (std::filesystem::temp_directory_path() / "splitconv-stop-XXXXXX").string();
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  auto path = dir + "/stopped.safetensors";
  Checkpoint ck;
  ck.spec_text = format_spec(b.model.spec);
  ck.state = st;
  save_checkpoint(path, b.model, ck);
  Checkpoint back = load_checkpoint(path);
  std::filesystem::remove_all(dir);
  EXPECT_EQ(back.state.epoch_step, 4);

  Rig c;
  Trainer tc(a.model, *c.backend, options(3));
  tc.load_state(back.state);
  TrainReport rc = tc.run(c.train.count);
  EXPECT_FALSE(rc.interrupted);
  ASSERT_EQ(rc.epochs.size(), 2u);
  EXPECT_EQ(rc.epochs[0].epoch, 2);
  EXPECT_EQ(rc.steps, 9 + 13);
  EXPECT_EQ(tc.state().params, ta.state().params);
  EXPECT_EQ(tc.state().m, ta.state().m);
  EXPECT_EQ(tc.state().v, ta.state().v);
  EXPECT_EQ(tc.state().step, ta.state().step);
  EXPECT_EQ(tc.state().epoch_step, 0);
}

// A CPU backend that reports it runs up to `per_call` steps a call (as the fused CUDA engine
// does) and records the runs it is given; the steps themselves are the CPU backend's.
class RunsBackend final : public Backend {
 public:
  explicit RunsBackend(int per_call) : per_call_(per_call) {}
  std::string name() const override { return "cpu"; }
  std::string description() const override { return cpu_->description(); }
  void plan(const Model& model, int max_batch) override { cpu_->plan(model, max_batch); }
  void upload(Split split, const ImageSet& set) override { cpu_->upload(split, set); }
  void set_parameters(std::span<const float> p) override { cpu_->set_parameters(p); }
  void get_parameters(std::span<float> p) override { cpu_->get_parameters(p); }
  void set_moments(std::span<const float> m, std::span<const float> v) override {
    cpu_->set_moments(m, v);
  }
  void get_moments(std::span<float> m, std::span<float> v) override { cpu_->get_moments(m, v); }
  void set_order(std::span<const int32_t> order) override { cpu_->set_order(order); }
  void train_step(int64_t begin, int count, int64_t t, const Hyper& h) override {
    runs.push_back({t, 1, count});
    cpu_->train_step(begin, count, t, h);
  }
  void train_steps(int64_t begin, int count, int64_t t, std::span<const Hyper> hypers) override {
    runs.push_back({t, int64_t(hypers.size()), count});
    for (size_t i = 0; i < hypers.size(); ++i)
      cpu_->train_step(begin + int64_t(i) * count, count, t + int64_t(i), hypers[i]);
  }
  int steps_per_call() const override { return per_call_; }
  Metrics train_metrics() override { return cpu_->train_metrics(); }
  void reset_train_metrics() override { cpu_->reset_train_metrics(); }
  Metrics evaluate(Split split, int64_t limit) override {
    evaluated_after.push_back(runs.empty() ? 0 : runs.back().first + runs.back().steps - 1);
    return cpu_->evaluate(split, limit);
  }
  void predict(const ImageSet& images, std::span<float> probabilities) override {
    cpu_->predict(images, probabilities);
  }

  struct Run {
    int64_t first, steps;  // Adam steps first .. first + steps − 1
    int count;
  };
  std::vector<Run> runs;
  std::vector<int64_t> evaluated_after;  // the Adam step each evaluation followed

 private:
  int per_call_;
  std::unique_ptr<Backend> cpu_ = make_backend("cpu", {});
};

// Runs of steps (an engine's many steps per launch) give the bits of one step at a time, and
// every evaluation and progress line the same place: a run ends at each, and a partial last
// batch is a step of its own. 602 images at batch 4: 150 full steps and one of 2 an epoch;
// progress every 3 steps, a test evaluation every 7.
TEST(Trainer, RunsOfStepsMatchOneStepAtATime) {
  const Model model = build_model(parse_spec(kSmall, "small.net"));
  const ImageSet train = synthetic(602, 1), test = synthetic(100, 2);
  TrainOptions o = options(2);
  o.batch = 4;
  o.target_accuracy = 1.0;  // evaluations every 7 steps; stops only at 100%
  o.eval_every = 7;
  for (const bool with_progress : {true, false}) {
    SCOPED_TRACE(with_progress ? "with progress" : "without progress");
    TrainState states[2];
    TrainReport reports[2];
    std::vector<int64_t> progress_at[2], evaluated_after[2];
    for (const int per_call : {1, 5}) {
      RunsBackend backend(per_call);
      backend.plan(model, o.batch);
      backend.upload(Split::Train, train);
      backend.upload(Split::Test, test);
      Trainer t(model, backend, o);
      t.initialise();
      const int k = per_call == 1 ? 0 : 1;
      std::function<void(const Progress&)> on_progress;
      if (with_progress)
        on_progress = [&](const Progress& p) { progress_at[k].push_back(p.step); };
      reports[k] = t.run(train.count, on_progress);
      states[k] = t.state();
      evaluated_after[k] = backend.evaluated_after;
      int64_t longest = 0, next = 1;
      for (const RunsBackend::Run& r : backend.runs) {
        EXPECT_EQ(r.first, next);  // every step once, in order
        next += r.steps;
        EXPECT_LE(r.steps, per_call);
        if (r.steps > 1) EXPECT_EQ(r.count, o.batch);  // a partial batch runs alone
        for (int64_t s = r.first; s < r.first + r.steps - 1; ++s)
          EXPECT_NE(s % o.eval_every, 0) << "an evaluation inside the run at step " << r.first;
        longest = std::max(longest, r.steps);
      }
      EXPECT_EQ(longest, per_call == 1 ? 1 : with_progress ? 3 : 5);
    }
    EXPECT_EQ(states[1].params, states[0].params);
    EXPECT_EQ(states[1].m, states[0].m);
    EXPECT_EQ(states[1].v, states[0].v);
    EXPECT_EQ(states[1].step, states[0].step);
    EXPECT_EQ(progress_at[1], progress_at[0]);
    EXPECT_EQ(evaluated_after[1], evaluated_after[0]);
    EXPECT_EQ(reports[1].target.evaluations, reports[0].target.evaluations);
    EXPECT_EQ(reports[1].target.steps, reports[0].target.steps);
    EXPECT_EQ(reports[1].test_accuracy, reports[0].test_accuracy);
    EXPECT_GT(reports[0].target.evaluations, 2);
  }
}

// An interrupt before the first step ends the run with no step taken and no evaluation.
TEST(Trainer, InterruptedBeforeTheFirstStepTakesNone) {
  Rig s;
  TrainOptions o = options(2);
  o.stop_requested = [] { return true; };
  Trainer t(s.model, *s.backend, o);
  t.initialise();
  TrainReport r = t.run(s.train.count);
  EXPECT_TRUE(r.interrupted);
  EXPECT_TRUE(r.epochs.empty());
  EXPECT_EQ(r.steps, 0);
  EXPECT_TRUE(std::isnan(r.test_accuracy));
  EXPECT_EQ(t.state().step, 0);
  EXPECT_EQ(t.state().epoch_step, 0);
}
