// The fused engine on the CPU (emulate.h).
#include "fused/emulate.h"

#include <cmath>
#include <cstring>
#include <string>

#include "splitconv/error.h"

namespace splitconv::fused {

Emulator::Emulator(const Model& model, int max_batch, int threads, uint64_t shuffle_seed,
                   int copies)
    : max_batch_(max_batch), threads_(threads), copies_(copies), shuffle_(shuffle_seed) {
  if (threads < 1) throw Error("fused emulator: threads must be at least 1");
  if (copies < 1 || copies > kMaxCopies)
    throw Error("fused emulator: copies must be 1 to " + std::to_string(kMaxCopies));
  std::string why;
  auto prog = make_program(model, make_plan(model, max_batch), &why);
  if (!prog) throw Error("fused emulator: " + why);
  prog_ = std::move(*prog);
  stride_ = prog_.arena_floats + kGuard;
  arena_.assign(size_t(kGuard + int64_t(max_batch) * copies * stride_), std::nanf(""));
  iarena_.assign(size_t(int64_t(max_batch) * copies * prog_.arena_ints), 0);
  // Padding between parameter slots is never written: it stays 0 in every partial.
  partial_.assign(size_t(int64_t(max_batch) * prog_.param_floats), 0.0f);
  loss_.assign(size_t(max_batch), 0.0);
  correct_.assign(size_t(max_batch), 0);
  params.assign(size_t(prog_.param_floats), 0.0f);
  m.assign(params.size(), 0.0f);
  v.assign(params.size(), 0.0f);
  gradient.assign(params.size(), 0.0f);
  order_.resize(size_t(threads) * size_t(copies));
}

void Emulator::run_image(int b, const std::vector<FusedOp>& ops, const ImageIo& io) {
  float* fc[kMaxCopies];
  int32_t* ic[kMaxCopies];
  for (int r = 0; r < copies_; ++r) fc[r] = arena(b, r), ic[r] = iarena(b, r);
  const int total = threads_ * copies_;
  uint64_t state = shuffle_ * 0x9E3779B97F4A7C15ull + uint64_t(b);
  for (const FusedOp& op : ops) {
    for (int t = 0; t < total; ++t) order_[size_t(t)] = t;
    if (shuffle_) {  // Fisher–Yates with a splitmix step: a fixed order per seed, image, phase
      for (int t = total - 1; t > 0; --t) {
        state += 0x9E3779B97F4A7C15ull;
        uint64_t z = state;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        std::swap(order_[size_t(t)], order_[size_t(z % uint64_t(t + 1))]);
      }
    }
    for (int t : order_) {
      if (copies_ == 1) {
        run_phase(op, t, total, LocalArena{fc[0], ic[0]}, params.data(), io);
      } else {  // thread t belongs to block t / threads and reads that block's copy
        const int r = t / threads_;
        run_phase(op, t, total, CopiesArena{fc[r], ic[r], fc, ic, copies_}, params.data(), io);
      }
    }
  }
}

void Emulator::train_step(const uint8_t* images, const uint8_t* labels, const int32_t* order,
                          int64_t begin, int count, const StepParams& sp, Metrics* metrics) {
  if (count < 1 || count > max_batch_)
    throw Error("fused emulator: a step of " + std::to_string(count) + " images, planned for 1 to " +
                std::to_string(max_batch_));
  const float scale = 1.0f / float(count);
  for (int b = 0; b < count; ++b) {
    const int64_t j = order ? int64_t(order[begin + b]) : begin + b;
    ImageIo io;
    io.pixels = images + j * prog_.image_size;
    io.label = labels[j];
    io.grad_scale = scale;
    io.loss = &loss_[size_t(b)];
    io.correct = &correct_[size_t(b)];
    io.partial = partial_.data() + int64_t(b) * prog_.param_floats;
    run_image(b, prog_.forward, io);
    run_image(b, prog_.backward, io);
  }
  for (int64_t k = 0; k < prog_.param_floats; ++k)
    reduce_adam(k, count, prog_.param_floats, partial_.data(), params.data(), m.data(), v.data(),
                sp, gradient.data());
  if (metrics) {
    for (int b = 0; b < count; ++b) {
      metrics->loss_sum += loss_[size_t(b)];
      metrics->correct += correct_[size_t(b)];
    }
    metrics->count += count;
  }
}

Metrics Emulator::evaluate(const uint8_t* images, const uint8_t* labels, int64_t count) {
  Metrics out;
  for (int64_t j = 0; j < count; ++j) {
    ImageIo io;
    io.pixels = images + j * prog_.image_size;
    io.label = labels[j];
    io.loss = &loss_[0];
    io.correct = &correct_[0];
    run_image(0, prog_.forward, io);
    out.loss_sum += loss_[0];
    out.correct += correct_[0];
    ++out.count;
  }
  return out;
}

bool Emulator::copies_identical() const {
  for (int b = 0; b < max_batch_; ++b)
    for (int r = 1; r < copies_; ++r) {
      const float* a = arena_.data() + kGuard + int64_t(b * copies_) * stride_;
      const float* c = arena_.data() + kGuard + int64_t(b * copies_ + r) * stride_;
      if (std::memcmp(a, c, size_t(prog_.arena_floats) * sizeof(float)) != 0) return false;
      const int32_t* ia = iarena_.data() + int64_t(b * copies_) * prog_.arena_ints;
      const int32_t* ic = iarena_.data() + int64_t(b * copies_ + r) * prog_.arena_ints;
      if (std::memcmp(ia, ic, size_t(prog_.arena_ints) * sizeof(int32_t)) != 0) return false;
    }
  return true;
}

bool Emulator::guards_intact() const {
  for (int b = 0; b <= max_batch_ * copies_; ++b) {
    const float* g = arena_.data() + int64_t(b) * stride_;
    for (int64_t i = 0; i < kGuard; ++i)
      if (!std::isnan(g[i])) return false;
  }
  return true;
}

}  // namespace splitconv::fused
