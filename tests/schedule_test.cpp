// Learning-rate schedules against reference values: onecycle against PyTorch's OneCycleLR
// (values printed by torch.optim.lr_scheduler.OneCycleLR, PyTorch 1.13, max_lr 0.01,
// total_steps 10, pct_start 0.3, cycle_momentum False: the rate each optimizer step used),
// warmup-cosine against the formula by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "splitconv/error.h"
#include "splitconv/schedule.h"

namespace splitconv {
namespace {

TEST(Schedule, ConstantIsTheBaseRate) {
  Schedule s;
  for (int64_t t : {1, 2, 50, 1000}) EXPECT_EQ(scheduled_lr(s, 0.003, t, 100), 0.003);
}

TEST(Schedule, OneCycleCosineMatchesPyTorch) {
  const std::vector<double> torch = {0.00039999999999999931, 0.0051999999999999998, 0.01,
                                     0.0095048463201347373,  0.0081174565394976309, 0.0061126202193628925,
                                     0.0038874197806371079,  0.0018825834605023699, 0.00049519367986526283,
                                     4.0000000000000001e-08};
  Schedule s;
  s.kind = "onecycle";
  for (int64_t t = 1; t <= 10; ++t)
    EXPECT_NEAR(scheduled_lr(s, 0.01, t, 10), torch[size_t(t - 1)], 1e-15) << "step " << t;
  EXPECT_NEAR(scheduled_lr(s, 0.01, 11, 10), torch.back(), 1e-15) << "past the end: the last";
}

TEST(Schedule, OneCycleLinearMatchesPyTorch) {
  const std::vector<double> torch = {0.00040000000000000002, 0.0052000000000000006, 0.01,
                                     0.0085714342857142866,  0.0071428685714285713, 0.0057143028571428577,
                                     0.0042857371428571432,  0.0028571714285714287, 0.0014286057142857151,
                                     3.9999999999762448e-08};
  Schedule s;
  s.kind = "onecycle";
  s.anneal = "linear";
  for (int64_t t = 1; t <= 10; ++t)
    EXPECT_NEAR(scheduled_lr(s, 0.01, t, 10), torch[size_t(t - 1)], 1e-15) << "step " << t;
}

TEST(Schedule, WarmupCosineByHand) {
  Schedule s;
  s.kind = "warmup-cosine";
  s.warmup = 0.2;  // 2 of 10 steps
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 1.0, 1, 10), 0.5);   // warm-up edge: (0+1)/2
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 1.0, 2, 10), 1.0);   // last warm-up step
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 1.0, 3, 10), 1.0);   // the cosine starts at the peak
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 1.0, 6, 10), (std::cos(M_PI * 3.0 / 7.0) + 1.0) / 2.0);
  EXPECT_NEAR(scheduled_lr(s, 1.0, 10, 10), 0.0, 1e-16);  // the last step
  s.final_fraction = 0.1;
  EXPECT_NEAR(scheduled_lr(s, 1.0, 10, 10), 0.1, 1e-16);
}

TEST(Schedule, RefusesWhatIsOutOfRange) {
  Schedule s;
  s.kind = "triangle";
  EXPECT_THROW(check_schedule(s), InputError);
  s = {};
  s.warmup = 1.0;
  EXPECT_THROW(check_schedule(s), InputError);
  s = {};
  s.anneal = "step";
  EXPECT_THROW(check_schedule(s), InputError);
  s = {};
  s.div_factor = 0.5;
  EXPECT_THROW(check_schedule(s), InputError);
  s = {};
  s.kind = "onecycle";
  EXPECT_NO_THROW(check_schedule(s));
}

}  // namespace
}  // namespace splitconv
