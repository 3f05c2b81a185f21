// The trainer's control of a run, against a recording backend: the learning rate of every step
// follows the schedule over the whole run (resumed or not), --shuffle none keeps the data's
// order, and --target-accuracy stops at the first evaluation at or above the target, or
// reports that it was not reached.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "splitconv/backend.h"
#include "splitconv/spec.h"
#include "splitconv/train.h"

namespace splitconv {
namespace {

// Records what the trainer asks; evaluate() answers the accuracies given, in turn (the last
// one again when they run out).
class Recorder : public Backend {
 public:
  explicit Recorder(std::vector<double> accuracies) : acc_(std::move(accuracies)) {}
  std::string name() const override { return "recorder"; }
  std::string description() const override { return "recorder"; }
  void plan(const Model&, int) override {}
  void upload(Split, const ImageSet&) override {}
  void set_parameters(std::span<const float>) override {}
  void get_parameters(std::span<float>) override {}
  void set_moments(std::span<const float>, std::span<const float>) override {}
  void get_moments(std::span<float>, std::span<float>) override {}
  void set_order(std::span<const int32_t> order) override {
    orders.emplace_back(order.begin(), order.end());
  }
  void train_step(int64_t, int count, int64_t t, const Hyper& h) override {
    lrs.push_back(h.lr);
    ts.push_back(t);
    images_ += count;
  }
  Metrics train_metrics() override { return {0.5 * double(images_), images_ / 2, images_}; }
  void reset_train_metrics() override { images_ = 0; }
  Metrics evaluate(Split, int64_t) override {
    const double a = acc_[std::min(next_++, acc_.size() - 1)];
    evaluations.push_back(ts.empty() ? 0 : ts.back());
    return {1.0, int64_t(a * 1000 + 0.5), 1000};
  }
  void predict(const ImageSet&, std::span<float>) override {}

  std::vector<float> lrs;
  std::vector<int64_t> ts, evaluations;  // the step each evaluation came after
  std::vector<std::vector<int32_t>> orders;

 private:
  std::vector<double> acc_;
  size_t next_ = 0;
  int64_t images_ = 0;
};

Model tiny() {
  return build_model(parse_spec("input 4x4x1\nflatten\ndense 3 softmax\n", "tiny.net"));
}

TEST(Trainer, EveryStepTakesTheScheduledRate) {
  const Model model = tiny();
  Recorder rec({0.1});
  TrainOptions o;
  o.epochs = 2;
  o.batch = 10;
  o.hyper.lr = 0.01f;
  o.schedule.kind = "onecycle";
  Trainer tr(model, rec, o);
  tr.initialise();
  tr.run(45);  // 5 steps an epoch (the last of 5 images), 10 in all
  ASSERT_EQ(rec.lrs.size(), 10u);
  for (size_t i = 0; i < 10; ++i)
    EXPECT_EQ(rec.lrs[i], float(scheduled_lr(o.schedule, double(o.hyper.lr), int64_t(i + 1), 10)))
        << "step " << i + 1;
  EXPECT_FLOAT_EQ(rec.lrs[2], 0.01f) << "the peak at 30% of the run";
}

TEST(Trainer, AResumedRunContinuesTheSchedule) {
  const Model model = tiny();
  TrainOptions o;
  o.epochs = 3;
  o.batch = 10;
  o.schedule.kind = "warmup-cosine";
  o.schedule.warmup = 0.2;
  Recorder whole({0.1}), second({0.1});
  Trainer a(model, whole, o);
  a.initialise();
  a.run(30);
  TrainState mid;
  mid.params.assign(size_t(model.param_floats), 0.0f);
  mid.m = mid.v = mid.params;
  mid.step = 6;  // after two of three epochs
  mid.epoch = 2;
  Trainer b(model, second, o);
  b.load_state(mid);
  b.run(30);
  ASSERT_EQ(second.lrs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(second.lrs[i], whole.lrs[6 + i]);
    EXPECT_EQ(second.ts[i], int64_t(7 + i));
  }
}

TEST(Trainer, ShuffleNoneKeepsTheDataOrder) {
  const Model model = tiny();
  Recorder rec({0.1});
  TrainOptions o;
  o.epochs = 2;
  o.batch = 4;
  o.shuffle = false;
  Trainer tr(model, rec, o);
  tr.initialise();
  tr.run(9);
  std::vector<int32_t> in_order(9);
  std::iota(in_order.begin(), in_order.end(), 0);
  ASSERT_EQ(rec.orders.size(), 2u);
  EXPECT_EQ(rec.orders[0], in_order);
  EXPECT_EQ(rec.orders[1], in_order);
  Recorder shuffled({0.1});
  o.shuffle = true;
  Trainer ts(model, shuffled, o);
  ts.initialise();
  ts.run(9);
  EXPECT_NE(shuffled.orders[0], in_order);
}

TEST(Trainer, TargetStopsAtTheFirstEvaluationThatReachesIt) {
  const Model model = tiny();
  // Evaluations every 3 steps: after steps 3, 6 (0.991 ≥ 0.99: stop there).
  Recorder rec({0.90, 0.991, 0.999});
  TrainOptions o;
  o.epochs = 3;
  o.batch = 10;
  o.target_accuracy = 0.99;
  o.eval_every = 3;
  Trainer tr(model, rec, o);
  tr.initialise();
  const TrainReport r = tr.run(100);  // 10 steps an epoch
  EXPECT_TRUE(r.target.reached);
  EXPECT_EQ(r.target.steps, 6);
  EXPECT_EQ(rec.ts.size(), 6u) << "no step after the target";
  EXPECT_EQ(r.target.evaluations, 2);
  EXPECT_DOUBLE_EQ(r.target.accuracy, 0.991);
  EXPECT_GT(r.target.seconds, 0.0);
  ASSERT_EQ(r.epochs.size(), 1u) << "the partial epoch is reported";
  EXPECT_EQ(r.epochs[0].epoch, 1);
  EXPECT_DOUBLE_EQ(r.test_accuracy, 0.991);
}

TEST(Trainer, TargetAtAnEpochsEndAndNotReached) {
  const Model model = tiny();
  // No mid-epoch evaluations: only each epoch's end (steps 5 and 10); the second reaches it.
  Recorder at_end({0.5, 0.995});
  TrainOptions o;
  o.epochs = 4;
  o.batch = 10;
  o.target_accuracy = 0.99;
  Trainer a(model, at_end, o);
  a.initialise();
  TrainReport r = a.run(50);
  EXPECT_TRUE(r.target.reached);
  EXPECT_EQ(r.target.steps, 10);
  EXPECT_EQ(r.epochs.size(), 2u);
  // Never reached: the run ends, reached false, the last evaluation reported.
  Recorder never({0.5, 0.6, 0.7});
  o.epochs = 2;
  o.eval_every = 2;
  Trainer b(model, never, o);
  b.initialise();
  r = b.run(50);
  EXPECT_FALSE(r.target.reached);
  EXPECT_EQ(r.target.steps, 10);
  EXPECT_EQ(never.ts.size(), 10u);
  EXPECT_DOUBLE_EQ(r.target.accuracy, 0.7);
  EXPECT_EQ(r.epochs.size(), 2u);
}

TEST(Trainer, NoTargetMeansNoExtraEvaluations) {
  const Model model = tiny();
  Recorder rec({0.5});
  TrainOptions o;
  o.epochs = 2;
  o.batch = 10;
  o.eval_every = 1;  // ignored without a target
  Trainer tr(model, rec, o);
  tr.initialise();
  const TrainReport r = tr.run(30);
  EXPECT_FALSE(r.target.asked);
  EXPECT_EQ(rec.evaluations.size(), 2u) << "one evaluation per epoch";
}

}  // namespace
}  // namespace splitconv
