#include "splitconv/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "splitconv/error.h"

namespace splitconv::stats {

double mean(std::span<const double> x) {
  if (x.empty()) return kNaN;
  double s = 0;
  for (double v : x) s += v;
  return s / double(x.size());
}

double sample_std(std::span<const double> x) {
  if (x.size() < 2) return 0;
  const double m = mean(x);
  double s = 0;
  for (double v : x) s += (v - m) * (v - m);
  return std::sqrt(s / double(x.size() - 1));
}

namespace {

// The continued fraction of I_x(a, b) (Abramowitz and Stegun 26.5.8), evaluated from the
// front by the modified Lentz method; converges fast for x < (a + 1)/(a + b + 2).
double beta_fraction(double a, double b, double x) {
  constexpr double tiny = 1e-300, eps = 1e-16;
  auto guard = [](double v) { return std::fabs(v) < tiny ? tiny : v; };
  double c = 1, d = 1 / guard(1 - (a + b) * x / (a + 1)), h = d;
  for (int m = 1; m <= 10000; ++m) {
    // The even step d_2m, then the odd step d_2m+1.
    double num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
    d = 1 / guard(1 + num * d);
    c = guard(1 + num / c);
    h *= d * c;
    num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
    d = 1 / guard(1 + num * d);
    c = guard(1 + num / c);
    const double step = d * c;
    h *= step;
    if (std::fabs(step - 1) < eps) break;
  }
  return h;
}

// P(T > t) for t ≥ 0, computed from the tail itself so that small p-values keep their digits.
double upper_tail(double t, double df) {
  if (std::isinf(t)) return 0;
  return 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t));
}

}  // namespace

double incomplete_beta(double a, double b, double x) {
  if (!(a > 0) || !(b > 0) || !(x >= 0 && x <= 1))
    throw std::invalid_argument("incomplete_beta: needs a, b > 0 and 0 <= x <= 1");
  if (x == 0 || x == 1) return x;
  const double log_front =
      std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x);
  if (x < (a + 1) / (a + b + 2)) return std::exp(log_front) * beta_fraction(a, b, x) / a;
  return 1 - std::exp(log_front) * beta_fraction(b, a, 1 - x) / b;
}

double student_t_cdf(double t, double df) {
  if (!(df > 0)) throw std::invalid_argument("student_t_cdf: needs df > 0");
  if (std::isnan(t)) return kNaN;
  const double tail = upper_tail(std::fabs(t), df);
  return t >= 0 ? 1 - tail : tail;
}

double student_t_quantile(double p, double df) {
  if (!(p > 0 && p < 1)) throw std::invalid_argument("student_t_quantile: needs 0 < p < 1");
  if (!(df > 0)) throw std::invalid_argument("student_t_quantile: needs df > 0");
  if (p == 0.5) return 0;
  if (p < 0.5) return -student_t_quantile(1 - p, df);
  // Bracket the root of P(T > t) = 1 − p, then bisect: the tail falls monotonically in t.
  const double q = 1 - p;
  double lo = 0, hi = 1;
  while (upper_tail(hi, df) > q) lo = hi, hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; ++i) {
    const double mid = 0.5 * (lo + hi);
    (upper_tail(mid, df) > q ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

double t_critical(double df, double confidence) {
  if (!(confidence > 0 && confidence < 1))
    throw std::invalid_argument("t_critical: needs 0 < confidence < 1");
  return student_t_quantile(0.5 + confidence / 2, df);
}

Summary summarize(std::span<const double> x, double confidence) {
  Summary s;
  s.n = int(x.size());
  s.confidence = confidence;
  s.mean = mean(x);
  s.std = sample_std(x);
  if (s.has_interval()) {
    s.half_width = t_critical(s.n - 1, confidence) * s.std / std::sqrt(double(s.n));
    s.low = s.mean - s.half_width;
    s.high = s.mean + s.half_width;
  }
  return s;
}

PairedDifference paired_difference(std::span<const double> a, std::span<const double> b,
                                   double confidence) {
  if (a.size() != b.size())
    throw InputError("paired difference: " + std::to_string(a.size()) + " and " +
                     std::to_string(b.size()) + " values do not pair");
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = b[i] - a[i];
  PairedDifference r;
  r.diff = summarize(d, confidence);
  if (!r.diff.has_interval()) return r;
  r.df = r.diff.n - 1;
  if (r.diff.std == 0) {  // every pair differs by the same amount
    r.t = r.diff.mean == 0 ? 0 : std::copysign(INFINITY, r.diff.mean);
  } else {
    r.t = r.diff.mean / (r.diff.std / std::sqrt(double(r.diff.n)));
  }
  r.p_value = std::min(1.0, 2 * upper_tail(std::fabs(r.t), r.df));
  r.significant = r.diff.low > 0 || r.diff.high < 0;
  return r;
}

std::string accuracy_verdict(const std::string& a, const std::string& b,
                             const PairedDifference& d) {
  char buf[512];
  const double points = 100 * d.diff.mean;
  const char* direction = points < 0 ? "less" : "more";
  if (!d.diff.has_interval()) {
    std::snprintf(buf, sizeof buf,
                  "%s is %.2f points %s accurate than %s on %d seed: one seed gives no interval",
                  b.c_str(), std::fabs(points), direction, a.c_str(), d.diff.n);
    return buf;
  }
  const int pct = int(std::lround(100 * d.diff.confidence));
  char p[32];
  if (d.p_value < 0.001)
    std::snprintf(p, sizeof p, "p < 0.001");
  else
    std::snprintf(p, sizeof p, "p = %.3f", d.p_value);
  std::snprintf(buf, sizeof buf,
                "%s is %.2f ± %.2f points %s accurate than %s: %s at %d%% "
                "(paired t, %d seeds, %s)",
                b.c_str(), std::fabs(points), 100 * d.diff.half_width, direction, a.c_str(),
                d.significant ? "a significant difference" : "no significant difference", pct,
                d.diff.n, p);
  return buf;
}

}  // namespace splitconv::stats
