// Statistics of repeated runs against values computed by hand and the standard t table.
#include "splitconv/stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "splitconv/error.h"

using namespace splitconv::stats;

namespace {

// Five seeds of two models: test accuracies, the same seed in the same position.
const std::vector<double> kA = {0.9890, 0.9902, 0.9885, 0.9897, 0.9876};
const std::vector<double> kB = {0.9899, 0.9906, 0.9893, 0.9895, 0.9889};
// t(0.975, 4) from the table.
constexpr double kT4 = 2.776445105;

}  // namespace

TEST(Stats, MeanAndSampleStdOfASmallTable) {
  // Sum 4.9450 over 5; deviations 0, 12, −5, 7, −14 (×1e-4), squares summing to 414e-8,
  // over n − 1 = 4: 103.5e-8.
  EXPECT_NEAR(mean(kA), 0.9890, 1e-15);
  EXPECT_NEAR(sample_std(kA), std::sqrt(103.5e-8), 1e-15);
  EXPECT_NEAR(sample_std(kA), 0.001017349497, 1e-12);
  EXPECT_NEAR(mean(kB), 4.9482 / 5, 1e-15);
  EXPECT_EQ(sample_std(std::vector<double>{0.5}), 0.0);
  EXPECT_TRUE(std::isnan(mean(std::vector<double>{})));
}

TEST(Stats, StudentIntervalOfTheMean) {
  Summary s = summarize(kA);
  EXPECT_EQ(s.n, 5);
  EXPECT_TRUE(s.has_interval());
  // half = t(0.975, 4) · std / √5 = 2.776445105 · 0.0010173495 / 2.2360680 = 0.0012632062
  EXPECT_NEAR(s.half_width, kT4 * std::sqrt(103.5e-8) / std::sqrt(5.0), 1e-11);
  EXPECT_NEAR(s.half_width, 0.0012632062, 1e-10);
  EXPECT_NEAR(s.low, 0.9890 - 0.0012632062, 1e-10);
  EXPECT_NEAR(s.high, 0.9890 + 0.0012632062, 1e-10);

  Summary one = summarize(std::vector<double>{0.99});
  EXPECT_EQ(one.n, 1);
  EXPECT_DOUBLE_EQ(one.mean, 0.99);
  EXPECT_FALSE(one.has_interval());
  EXPECT_TRUE(std::isnan(one.half_width));
  EXPECT_TRUE(std::isnan(one.low));
}

TEST(Stats, PairedDifferenceBySeed) {
  PairedDifference d = paired_difference(kA, kB);
  // b − a per seed: 9, 4, 8, −2, 13 (×1e-4); mean 32/5 = 6.4e-4; deviations 2.6, −2.4, 1.6,
  // −8.4, 6.6 (×1e-4), squares 129.2e-8 in all, over 4: 32.3e-8.
  const double sd = std::sqrt(32.3e-8);
  EXPECT_EQ(d.diff.n, 5);
  EXPECT_NEAR(d.diff.mean, 6.4e-4, 1e-15);
  EXPECT_NEAR(d.diff.std, sd, 1e-15);
  EXPECT_NEAR(d.diff.half_width, kT4 * sd / std::sqrt(5.0), 1e-12);
  EXPECT_EQ(d.df, 4);
  // t = 6.4e-4 / (5.6833e-4 / √5) = 2.518046
  EXPECT_NEAR(d.t, 6.4e-4 / (sd / std::sqrt(5.0)), 1e-9);
  EXPECT_NEAR(d.t, 2.518046, 1e-6);
  // df 4 has a closed form: F(t) = 1/2 + (3/8)·u·(1 − u²/12), u = t/√(1 + t²/4); p = 2(1 − F).
  const double u = d.t / std::sqrt(1 + d.t * d.t / 4);
  EXPECT_NEAR(d.p_value, 2 * (0.5 - 0.375 * u * (1 - u * u / 12)), 1e-12);
  EXPECT_NEAR(d.p_value, 0.0654930, 1e-7);
  // The interval [−0.66e-4, 13.5e-4] holds 0: not significant at 95%.
  EXPECT_LT(d.diff.low, 0);
  EXPECT_GT(d.diff.high, 0);
  EXPECT_FALSE(d.significant);
  // The same numbers the other way round: mirrored.
  PairedDifference r = paired_difference(kB, kA);
  EXPECT_NEAR(r.diff.mean, -6.4e-4, 1e-15);
  EXPECT_NEAR(r.t, -d.t, 1e-12);
  EXPECT_NEAR(r.p_value, d.p_value, 1e-15);
}

TEST(Stats, PairedDifferenceSignificanceAndDegenerateCases) {
  // Every seed 0.1 point better, give or take 0.01: the interval excludes 0.
  PairedDifference d = paired_difference(std::vector<double>{0.98, 0.97, 0.99, 0.96},
                                         std::vector<double>{0.9811, 0.9709, 0.9910, 0.9610});
  EXPECT_TRUE(d.significant);
  EXPECT_GT(d.diff.low, 0);
  EXPECT_LT(d.p_value, 0.05);
  // Identical runs (the CPU is deterministic): no difference at all, p = 1.
  PairedDifference same = paired_difference(kA, kA);
  EXPECT_EQ(same.diff.mean, 0);
  EXPECT_EQ(same.diff.half_width, 0);
  EXPECT_EQ(same.t, 0);
  EXPECT_EQ(same.p_value, 1);
  EXPECT_FALSE(same.significant);
  // One seed: a difference, no test.
  PairedDifference one = paired_difference(std::vector<double>{0.98}, std::vector<double>{0.99});
  EXPECT_NEAR(one.diff.mean, 0.01, 1e-15);
  EXPECT_TRUE(std::isnan(one.p_value));
  EXPECT_FALSE(one.significant);
  EXPECT_THROW(paired_difference(kA, std::vector<double>{0.9}), splitconv::InputError);
}

TEST(Stats, TCriticalMatchesTheTable) {
  // Two-sided 95% (the 0.975 quantile) from the t table, to 9 decimals.
  const std::pair<int, double> table[] = {
      {1, 12.706204736}, {2, 4.302652730},   {3, 3.182446305},
      {4, 2.776445105},  {5, 2.570581836},   {9, 2.262157163},
      {30, 2.042272456}, {100, 1.983971519}, {1000, 1.962339081}};
  for (auto [df, t] : table) EXPECT_NEAR(t_critical(df), t, 6e-10) << "df " << df;
  // Two-sided 99% at df 9.
  EXPECT_NEAR(t_critical(9, 0.99), 3.249835542, 6e-10);
}

TEST(Stats, StudentCdfMatchesClosedForms) {
  const double pi = std::acos(-1.0);
  for (double t : {-30.0, -2.0, -0.3, 0.0, 0.7, 1.0, 4.0, 100.0}) {
    // df 1 is Cauchy: 1/2 + atan(t)/π. df 2: 1/2 + t / (2√(2 + t²)).
    EXPECT_NEAR(student_t_cdf(t, 1), 0.5 + std::atan(t) / pi, 1e-14) << t;
    EXPECT_NEAR(student_t_cdf(t, 2), 0.5 + t / (2 * std::sqrt(2 + t * t)), 1e-14) << t;
  }
  // The quantile inverts the CDF, whole or fractional df, either tail.
  for (double df : {1.0, 2.5, 7.0, 60.0})
    for (double p : {0.001, 0.2, 0.5, 0.9, 0.9999})
      EXPECT_NEAR(student_t_cdf(student_t_quantile(p, df), df), p, 1e-12) << df << " " << p;
  EXPECT_THROW(student_t_quantile(1.0, 3), std::invalid_argument);
  EXPECT_THROW(student_t_cdf(1.0, 0), std::invalid_argument);
}

TEST(Stats, IncompleteBetaSpecialCases) {
  // I_x(a, 1) = x^a, I_x(1, b) = 1 − (1 − x)^b, I_½(a, a) = ½.
  for (double x : {0.0, 0.05, 0.3, 0.5, 0.8, 0.99, 1.0}) {
    EXPECT_NEAR(incomplete_beta(3.5, 1, x), std::pow(x, 3.5), 1e-14) << x;
    EXPECT_NEAR(incomplete_beta(1, 6, x), 1 - std::pow(1 - x, 6), 1e-14) << x;
  }
  for (double a : {0.5, 2.0, 45.0}) EXPECT_NEAR(incomplete_beta(a, a, 0.5), 0.5, 1e-14) << a;
}

TEST(Stats, VerdictSaysWhichModelByHowMuchAndWhetherItCounts) {
  PairedDifference d = paired_difference(kA, kB);
  EXPECT_EQ(accuracy_verdict("seed-v0", "seed-v1", d),
            "seed-v1 is 0.06 ± 0.07 points more accurate than seed-v0: no significant "
            "difference at 95% (paired t, 5 seeds, p = 0.065)");
  EXPECT_EQ(accuracy_verdict("seed-v1", "seed-v0", paired_difference(kB, kA)),
            "seed-v0 is 0.06 ± 0.07 points less accurate than seed-v1: no significant "
            "difference at 95% (paired t, 5 seeds, p = 0.065)");
  PairedDifference big = paired_difference(std::vector<double>{0.98, 0.97, 0.99, 0.96},
                                           std::vector<double>{0.99, 0.98, 1.0, 0.9701});
  EXPECT_EQ(accuracy_verdict("a", "b", big),
            "b is 1.00 ± 0.01 points more accurate than a: a significant difference at 95% "
            "(paired t, 4 seeds, p < 0.001)");
  EXPECT_EQ(
      accuracy_verdict("a", "b",
                       paired_difference(std::vector<double>{0.9874}, std::vector<double>{0.9899})),
      "b is 0.25 points more accurate than a on 1 seed: one seed gives no interval");
}
