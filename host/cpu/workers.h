// A pool of worker threads for the CPU backend and the CPU benchmarks: started once, woken for
// each parallel section, so a step loop starts no threads.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace splitconv::cpu {

// Worker threads started once and woken for each parallel section. The calling thread does
// part 0.
class Workers {
 public:
  explicit Workers(int threads) : errors_(threads) {
    for (int i = 1; i < threads; ++i) threads_.emplace_back([this, i] { loop(i); });
  }
  ~Workers() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
      start_.notify_all();
    }
    for (auto& t : threads_) t.join();
  }
  int threads() const { return int(errors_.size()); }
  // Calls f(i) for every i in [0, parts), parts ≤ threads, and waits; rethrows the first error.
  template <class F>
  void run(int parts, F& f) {
    if (parts <= 1) return f(0);
    {
      std::lock_guard lock(mu_);
      call_ = [](void* ctx, int i) { (*static_cast<F*>(ctx))(i); };
      ctx_ = &f;
      parts_ = parts;
      pending_ = parts - 1;
      ++generation_;
      start_.notify_all();
    }
    std::exception_ptr error;
    try {
      f(0);
    } catch (...) {
      error = std::current_exception();
    }
    std::unique_lock lock(mu_);
    done_.wait(lock, [this] { return pending_ == 0; });  // f must outlive every worker's call
    for (int i = 1; i < parts; ++i) {
      if (!error) error = errors_[i];
      errors_[i] = nullptr;
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  void loop(int index) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock lock(mu_);
        start_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        if (index >= parts_) continue;
      }
      try {
        call_(ctx_, index);
      } catch (...) {
        errors_[index] = std::current_exception();
      }
      std::lock_guard lock(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> threads_;
  std::vector<std::exception_ptr> errors_;  // per worker, read after the section ends
  std::mutex mu_;
  std::condition_variable start_, done_;
  uint64_t generation_ = 0;
  int parts_ = 0, pending_ = 0;
  bool stop_ = false;
  void (*call_)(void*, int) = nullptr;
  void* ctx_ = nullptr;
};

// Runs f(lo, n, part) on one contiguous slice of [0, count) per thread: how the CPU backend
// splits a batch (each thread runs the single-threaded ops on its slice).
template <class F>
void for_slices(Workers& workers, int count, F f) {
  if (count < 1) return;
  const int parts = count < workers.threads() ? count : workers.threads();
  auto part = [&](int i) {
    const int lo = int(int64_t(count) * i / parts), hi = int(int64_t(count) * (i + 1) / parts);
    f(lo, hi - lo, i);
  };
  workers.run(parts, part);
}

}  // namespace splitconv::cpu
