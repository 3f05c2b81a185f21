// A CPU training step allocates nothing: after the first step (which may touch lazily set-up
// state), every further step of the CPU backend, and an evaluation, makes no call to malloc,
// calloc, realloc or the aligned allocators — on any thread. This executable replaces glibc's
// allocator entry points with counting ones that forward to glibc's own (__libc_*), so it is
// built without the sanitizers, which replace them too.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "splitconv/backend.h"
#include "splitconv/model.h"
#include "splitconv/random.h"
#include "splitconv/spec.h"

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<int64_t> g_calls{0};
void count() {
  if (g_counting.load(std::memory_order_relaxed)) g_calls.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(size_t n) {
  count();
  return __libc_malloc(n);
}
void* calloc(size_t k, size_t n) {
  count();
  return __libc_calloc(k, n);
}
void* realloc(void* p, size_t n) {
  count();
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
void* memalign(size_t align, size_t n) {
  count();
  return __libc_memalign(align, n);
}
void* aligned_alloc(size_t align, size_t n) {
  count();
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, size_t align, size_t n) {
  count();
  void* p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
}

namespace splitconv {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

ImageSet random_images(int64_t count, int h, int w, int classes, uint64_t seed) {
  Rng rng(seed);
  ImageSet set;
  set.count = count, set.h = h, set.w = w, set.c = 1;
  set.pixels.resize(size_t(count * h * w));
  set.labels.resize(size_t(count));
  for (auto& p : set.pixels) p = uint8_t(rng.below(256));
  for (auto& l : set.labels) l = uint8_t(rng.below(uint64_t(classes)));
  return set;
}

// Allocator calls during `steps` steps after a first one, and during an evaluation after a
// first one.
struct Calls {
  int64_t steps = 0, evaluation = 0;
};

Calls calls_of(const Model& model, int batch, int threads) {
  BackendOptions opts;
  opts.threads = threads;
  auto b = make_backend("cpu", opts);
  const int count = 3 * batch + 5;  // the epoch ends with a partial step
  b->plan(model, batch);
  b->upload(Split::Train, random_images(count, model.input.h, model.input.w, 10, 1));
  b->upload(Split::Test, random_images(50, model.input.h, model.input.w, 10, 2));
  b->set_parameters(init_parameters(model, 3));
  b->set_order(epoch_order(count, 5, 0));
  Hyper hyper;
  int64_t t = 0;
  b->train_step(0, batch, ++t, hyper);  // the first step and evaluation may set things up
  b->evaluate(Split::Test);
  Calls calls;
  g_calls = 0;
  g_counting = true;
  for (int64_t at = batch; at < count; at += batch)
    b->train_step(at, int(std::min<int64_t>(batch, count - at)), ++t, hyper);
  g_counting = false;
  calls.steps = g_calls.exchange(0);
  g_counting = true;
  b->evaluate(Split::Test);
  g_counting = false;
  calls.evaluation = g_calls.exchange(0);
  return calls;
}

// The counter sees the test's own allocations, so it does count.
TEST(StepAllocations, TheCounterCounts) {
  g_calls = 0;
  g_counting = true;
  std::string* s = new std::string(100, 'x');
  g_counting = false;
  delete s;
  EXPECT_GE(g_calls.exchange(0), 1);
}

TEST(StepAllocations, NoneInATrainingStepOrAnEvaluation) {
  const std::string dir = std::string(SPLITCONV_SOURCE_DIR) + "/models/";
  // Both seed models, the time-to-accuracy model, and one with same padding, strides and a
  // split pair.
  const char* odd = R"(input 28x28x1
conv 8 3x3 relu padding=same
conv 12 3x3 relu stride=2
conv 12 3x1 relu padding=same
conv 12 1x3 relu padding=same
maxpool 2x2
flatten
dense 20 relu
dense 10 softmax
)";
  struct Case {
    std::string name, spec;
  };
  const Case cases[] = {{"seed-v0", read_file(dir + "seed-v0.net")},
                        {"seed-v1", read_file(dir + "seed-v1.net")},
                        {"fast-mnist", read_file(dir + "fast-mnist.net")},
                        {"odd", odd}};
  for (const Case& c : cases) {
    ASSERT_FALSE(c.spec.empty()) << c.name;
    const Model model = build_model(parse_spec(c.spec, c.name + ".net"));
    for (int threads : {1, 2}) {
      for (int batch : {32, 37}) {
        const Calls calls = calls_of(model, batch, threads);
        EXPECT_EQ(calls.steps, 0) << c.name << ", " << threads << " threads, batch " << batch
                                  << ": allocator calls in the training steps";
        EXPECT_EQ(calls.evaluation, 0) << c.name << ", " << threads << " threads, batch " << batch
                                       << ": allocator calls in an evaluation";
      }
    }
  }
}

}  // namespace
}  // namespace splitconv
