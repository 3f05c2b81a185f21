// Learning-rate schedules: the learning rate of every Adam step, computed on the host from the
// step number and the run's length (docs/design.md, Numeric conventions).
#pragma once
#include <cstdint>
#include <string>

namespace splitconv {

struct Schedule {
  // constant: the base rate every step. onecycle: PyTorch's OneCycleLR (two phases, no
  // momentum cycling): from lr/div_factor up to lr over the first `warmup` fraction of the
  // steps, then down to lr/(div_factor·final_div_factor), annealed by `anneal`. warmup-cosine:
  // linear warm-up from lr/warmup_steps to lr over the `warmup` fraction, then a cosine to
  // lr·final_fraction.
  std::string kind = "constant";
  double warmup = 0.3;            // fraction of the run's steps (onecycle: PyTorch's pct_start)
  std::string anneal = "cos";     // onecycle: cos or linear
  double div_factor = 25.0;       // onecycle
  double final_div_factor = 1e4;  // onecycle
  double final_fraction = 0.0;    // warmup-cosine: the last rate as a fraction of lr
};

// Throws InputError naming the option when a field is out of range.
void check_schedule(const Schedule& s);

// The learning rate of Adam step t (1-based) of a run of `total` steps with base (peak) rate lr.
// Steps past `total` keep the last rate.
double scheduled_lr(const Schedule& s, double lr, int64_t t, int64_t total);

// One line for people and reports, e.g. "onecycle (warmup 0.3, cos, div 25, final div 1e+04)".
std::string describe(const Schedule& s);

}  // namespace splitconv
