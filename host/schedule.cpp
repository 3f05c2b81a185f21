// Learning-rate schedules (splitconv/schedule.h).
#include "splitconv/schedule.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "splitconv/error.h"

namespace splitconv {
namespace {

double anneal(const std::string& how, double start, double end, double pct) {
  if (how == "linear") return (end - start) * pct + start;
  return end + (start - end) / 2.0 * (std::cos(M_PI * pct) + 1.0);  // cos
}

}  // namespace

void check_schedule(const Schedule& s) {
  if (s.kind != "constant" && s.kind != "onecycle" && s.kind != "warmup-cosine")
    throw InputError("--lr-schedule: expected constant, onecycle or warmup-cosine, got '" +
                     s.kind + "'");
  if (!(s.warmup >= 0.0 && s.warmup < 1.0))
    throw InputError("--warmup " + std::to_string(s.warmup) +
                     ": expected a fraction of the steps, 0 or more and below 1");
  if (s.anneal != "cos" && s.anneal != "linear")
    throw InputError("--anneal: expected cos or linear, got '" + s.anneal + "'");
  if (!(s.div_factor >= 1.0 && std::isfinite(s.div_factor)))
    throw InputError("--div-factor: expected a finite number, 1 or more");
  if (!(s.final_div_factor >= 1.0 && std::isfinite(s.final_div_factor)))
    throw InputError("--final-div-factor: expected a finite number, 1 or more");
  if (!(s.final_fraction >= 0.0 && s.final_fraction <= 1.0))
    throw InputError("--final-fraction: expected 0 to 1");
}

double scheduled_lr(const Schedule& s, double lr, int64_t t, int64_t total) {
  if (s.kind == "constant" || total < 1) return lr;
  // PyTorch's scheduler counts from 0: Adam step t uses the rate of step_num = t − 1.
  const int64_t last = total - 1;
  const double k = double(std::clamp<int64_t>(t - 1, 0, std::max<int64_t>(last, 0)));
  if (s.kind == "onecycle") {
    // OneCycleLR, three_phase=False: phase 1 ends at step float(pct_start·total) − 1, phase 2
    // at total − 1; within a phase pct = (k − start) / (end − start).
    const double initial = lr / s.div_factor, floor = initial / s.final_div_factor;
    const double end1 = s.warmup * double(total) - 1.0;
    if (k <= end1) {
      const double pct = end1 > 0 ? k / end1 : 1.0;
      return anneal(s.anneal, initial, lr, pct);
    }
    const double span = double(last) - end1;
    const double pct = span > 0 ? (k - end1) / span : 1.0;
    return anneal(s.anneal, lr, floor, std::min(pct, 1.0));
  }
  // warmup-cosine
  const int64_t w = int64_t(std::llround(s.warmup * double(total)));
  if (int64_t(k) < w) return lr * (k + 1.0) / double(w);
  const double span = double(last - w);
  const double pct = span > 0 ? (k - double(w)) / span : 1.0;
  const double low = lr * s.final_fraction;
  return low + (lr - low) * (std::cos(M_PI * std::min(pct, 1.0)) + 1.0) / 2.0;
}

std::string describe(const Schedule& s) {
  char buf[160];
  if (s.kind == "onecycle")
    std::snprintf(buf, sizeof buf, "onecycle (warmup %g, %s, div %g, final div %g)", s.warmup,
                  s.anneal.c_str(), s.div_factor, s.final_div_factor);
  else if (s.kind == "warmup-cosine")
    std::snprintf(buf, sizeof buf, "warmup-cosine (warmup %g, final fraction %g)", s.warmup,
                  s.final_fraction);
  else
    std::snprintf(buf, sizeof buf, "constant");
  return buf;
}

}  // namespace splitconv
