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
