// Statistics of repeated training runs: mean, sample standard deviation, Student t intervals,
// and the paired comparison of two models trained on the same seeds.
#pragma once
#include <limits>
#include <span>
#include <string>

namespace splitconv::stats {

double mean(std::span<const double> x);  // NaN when empty
// The sample standard deviation, n − 1 in the denominator; 0 for fewer than two values.
double sample_std(std::span<const double> x);

// The regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 ≤ x ≤ 1.
double incomplete_beta(double a, double b, double x);
// P(T ≤ t) for Student's t with df > 0 degrees of freedom (df need not be a whole number).
double student_t_cdf(double t, double df);
// The p-quantile of Student's t, 0 < p < 1: the t with student_t_cdf(t, df) = p.
double student_t_quantile(double p, double df);
// The two-sided critical value: the t with P(|T| ≤ t) = confidence (12.706 for df 1 at 95%).
double t_critical(double df, double confidence = 0.95);

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A sample and the Student t interval of its mean: mean ± half_width with
// half_width = t_critical(n − 1)·std/√n. No interval (NaN) from fewer than two values.
struct Summary {
  int n = 0;
  double mean = kNaN, std = 0;
  double half_width = kNaN, low = kNaN, high = kNaN;
  double confidence = 0.95;
  bool has_interval() const { return n >= 2; }
};
Summary summarize(std::span<const double> x, double confidence = 0.95);

// b − a, paired by index (by seed: b[i] and a[i] were trained from the same seed): the
// summary of the differences, the paired t statistic with n − 1 degrees of freedom and its
// two-sided p-value. `significant` when the interval excludes 0 (p < 1 − confidence). With
// fewer than two pairs there is no test: t, p_value NaN, significant false.
struct PairedDifference {
  Summary diff;
  double t = kNaN, p_value = kNaN;
  int df = 0;
  bool significant = false;
};
// InputError when the sizes differ.
PairedDifference paired_difference(std::span<const double> a, std::span<const double> b,
                                   double confidence = 0.95);

// One sentence on an accuracy difference (d from paired_difference of accuracies as
// fractions; the sentence speaks in percentage points), e.g. "seed-v1 is 0.05 ± 0.09 points
// less accurate than seed-v0: no significant difference at 95% (paired t, 10 seeds, p = 0.27)".
std::string accuracy_verdict(const std::string& a, const std::string& b, const PairedDifference& d);

}  // namespace splitconv::stats
