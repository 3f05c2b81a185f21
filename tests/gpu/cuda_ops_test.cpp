// Every CUDA op against its CPU twin (host/cpu/cpu_ops.h) on fresh random inputs, at several
// shapes: odd sizes, 3×1, 1×3, 5×5, stride 2, same padding; forward and backward.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

#include "conv.h"
#include "cpu/cpu_ops.h"
#include "gpu_test_util.h"
#include "ops.h"
#include "splitconv/error.h"
#include "splitconv/model.h"
#include "splitconv/tensor.h"

namespace splitconv::gpu::testing {
namespace {

// A stream and library handles of the test's own, like the backend's.
class GpuOps : public ::testing::Test {
 protected:
  void SetUp() override {
    SPLITCONV_REQUIRE_GPU();
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDNN_CHECK(cudnnCreate(&cudnn_));
    CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
    CUBLAS_CHECK(cublasCreate(&cublas_));
    CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  }
  void TearDown() override {
    if (stream_) (void)cudaStreamSynchronize(stream_);
    if (cublas_) (void)cublasDestroy(cublas_);
    if (cudnn_) (void)cudnnDestroy(cudnn_);
    if (stream_) (void)cudaStreamDestroy(stream_);
  }
  void sync() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  uint64_t seed(uint64_t salt) const { return test_seed() * 1000003u + salt; }

  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
};

// A pageable cudaMemcpy may return before the data lands; the test stream must see it.
void write_params(DeviceBuffer<StepParams>& d, const StepParams& sp) {
  CUDA_CHECK(cudaMemcpy(d.get(), &sp, sizeof sp, cudaMemcpyHostToDevice));
  CUDA_CHECK(cudaDeviceSynchronize());
}

#define TRACE_SEED() SCOPED_TRACE("SPLITCONV_TEST_SEED=" + std::to_string(test_seed()))

// --- convolutions (through the dispatch point, as the backend calls them) ---

struct ConvCase {
  const char* name;
  int n, c, h, w, m, kh, kw, stride;
  Padding pad;
};

// Names the case in test listings (gtest would print the struct's bytes).
void PrintTo(const ConvCase& k, std::ostream* os) { *os << k.name; }

Layer conv_layer(const ConvCase& k, Activation act) {
  Layer l;
  l.spec.kind = LayerKind::Conv;
  l.spec.name = std::string("conv_") + k.name;
  l.spec.units = k.m;
  l.spec.kh = k.kh, l.spec.kw = k.kw, l.spec.stride = k.stride;
  l.spec.padding = k.pad;
  l.spec.activation = act;
  l.stride = k.stride;
  l.in = {k.h, k.w, k.c};
  const int oh = conv_out_size(k.h, k.kh, k.stride, k.pad);
  const int ow = conv_out_size(k.w, k.kw, k.stride, k.pad);
  if (k.pad == Padding::Same) {  // as build_model: the odd pixel, if any, at the bottom/right
    const int ph = std::max((oh - 1) * k.stride + k.kh - k.h, 0);
    const int pw = std::max((ow - 1) * k.stride + k.kw - k.w, 0);
    l.pad_top = ph / 2, l.pad_bottom = ph - ph / 2;
    l.pad_left = pw / 2, l.pad_right = pw - pw / 2;
  }
  l.out = {oh, ow, k.m};
  return l;
}

class ConvOps : public GpuOps, public ::testing::WithParamInterface<ConvCase> {
 protected:
  // Plans the layer for max_batch, runs a batch of n on the GPU and on the CPU, compares.
  // Every implementation that takes the layer: cuDNN always, the own kernels for n×1 / 1×n.
  void check(const ConvCase& k, Activation act, int max_batch, int n) {
    const Layer l = conv_layer(k, act);
    check_impl(k, act, max_batch, n, "cudnn");
    if (own_conv_supports(l, max_batch)) check_impl(k, act, max_batch, n, "own");
  }

  void check_impl(const ConvCase& k, Activation act, int max_batch, int n, const char* impl) {
    TRACE_SEED();
    SCOPED_TRACE(impl);
    const Layer l = conv_layer(k, act);
    ConvContext ctx;
    ctx.cudnn = cudnn_, ctx.stream = stream_, ctx.tf32 = false;
    auto conv = make_conv_impl(l, max_batch, /*need_dx=*/true, impl, ctx);
    DeviceBuffer<uint8_t> ws(conv->workspace_bytes(), "the test workspace");
    ctx.workspace = ws.get(), ctx.workspace_bytes = ws.bytes();

    const ConvGeom g = conv_geom(l, n);
    const auto x = random_floats(size_t(g.x_size()), seed(1));
    const auto w = random_floats(size_t(g.w_size()), seed(2), -0.5f, 0.5f);
    const auto b = random_floats(size_t(g.m), seed(3));
    const auto dy = random_floats(size_t(g.y_size()), seed(4));
    auto dx_d = to_device(x), dw_d = to_device(w), db_d = to_device(b), ddy = to_device(dy);
    DeviceBuffer<float> y_d(size_t(g.y_size()), "y"), gx(size_t(g.x_size()), "dx"),
        gw(size_t(g.w_size()), "dw"), gb(size_t(g.m), "db");
    conv->forward(n, dx_d.get(), dw_d.get(), db_d.get(), y_d.get());
    conv->backward(n, dx_d.get(), y_d.get(), ddy.get(), dw_d.get(), gx.get(), gw.get(), gb.get());
    sync();
    const auto y = to_host(y_d);

    std::vector<float> ws_cpu(size_t(cpu::conv_workspace(g)));
    std::vector<float> y_ref(size_t(g.y_size())), dx_ref(size_t(g.x_size())),
        dw_ref(size_t(g.w_size())), db_ref(size_t(g.m));
    cpu::conv_forward(g, x.data(), w.data(), b.data(), y_ref.data(), ws_cpu.data());
    std::vector<float> dy_ref = dy;
    if (act == Activation::Relu) {
      cpu::relu_forward(int64_t(y_ref.size()), y_ref.data());
      // The GPU's own output decides the mask: values within rounding of 0 could flip it.
      cpu::relu_backward(int64_t(dy_ref.size()), y.data(), dy_ref.data());
    }
    cpu::conv_backward_data(g, dy_ref.data(), w.data(), dx_ref.data(), ws_cpu.data());
    cpu::conv_backward_filter(g, x.data(), dy_ref.data(), dw_ref.data(), db_ref.data(),
                              ws_cpu.data());
    SCOPED_TRACE(conv->describe());
    EXPECT_LE(rel_error(y, y_ref), kOpTolerance) << "forward";
    EXPECT_LE(rel_error(to_host(gx), dx_ref), kOpTolerance) << "backward data";
    EXPECT_LE(rel_error(to_host(gw), dw_ref), kOpTolerance) << "backward filter";
    EXPECT_LE(rel_error(to_host(gb), db_ref), kOpTolerance) << "bias gradient";
  }
};

TEST_P(ConvOps, MatchesCpu) { check(GetParam(), Activation::None, GetParam().n, GetParam().n); }

TEST_P(ConvOps, MatchesCpuWithRelu) {
  check(GetParam(), Activation::Relu, GetParam().n, GetParam().n);
}

// A batch smaller than planned (the last partial batch): descriptors made at first use.
TEST_P(ConvOps, MatchesCpuOnPartialBatch) {
  check(GetParam(), Activation::Relu, GetParam().n + 3, GetParam().n);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvOps,
    ::testing::Values(ConvCase{"first3x3", 3, 1, 28, 28, 8, 3, 3, 1, Padding::Valid},
                      ConvCase{"odd3x3", 2, 5, 11, 13, 7, 3, 3, 1, Padding::Valid},
                      ConvCase{"k3x1", 2, 6, 11, 9, 7, 3, 1, 1, Padding::Valid},
                      ConvCase{"k1x3", 2, 6, 9, 11, 7, 1, 3, 1, Padding::Valid},
                      ConvCase{"k3x1same", 2, 4, 10, 7, 6, 3, 1, 1, Padding::Same},
                      ConvCase{"k5x5", 2, 3, 12, 10, 4, 5, 5, 1, Padding::Valid},
                      ConvCase{"k5x5same", 2, 3, 12, 9, 4, 5, 5, 1, Padding::Same},
                      ConvCase{"stride2", 3, 4, 15, 15, 6, 3, 3, 2, Padding::Valid},
                      ConvCase{"stride2same", 2, 4, 9, 9, 5, 3, 3, 2, Padding::Same},
                      ConvCase{"seed3x3", 4, 64, 5, 5, 64, 3, 3, 1, Padding::Valid}),
    [](const ::testing::TestParamInfo<ConvCase>& info) { return std::string(info.param.name); });

TEST_F(GpuOps, ConvRefusesUnevenSamePadding) {
  const Layer l = conv_layer({"even", 2, 3, 8, 8, 4, 2, 2, 1, Padding::Same}, Activation::Relu);
  ASSERT_NE(l.pad_top, l.pad_bottom);
  ConvContext ctx;
  ctx.cudnn = cudnn_, ctx.stream = stream_;
  try {
    make_conv_impl(l, 2, true, "cudnn", ctx);
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("conv_even"), std::string::npos) << e.what();
  }
}

// --- the elementwise ops ---

TEST_F(GpuOps, ReluMatchesCpu) {
  TRACE_SEED();
  const size_t n = 1000 + 37;
  const auto y = random_floats(n, seed(10)), dy = random_floats(n, seed(11));
  auto yd = to_device(y), dyd = to_device(dy);
  relu_forward(stream_, int64_t(n), yd.get());
  relu_backward(stream_, int64_t(n), yd.get(), dyd.get());
  std::vector<float> y_ref = y, dy_ref = dy;
  cpu::relu_forward(int64_t(n), y_ref.data());
  cpu::relu_backward(int64_t(n), y_ref.data(), dy_ref.data());
  EXPECT_EQ(to_host(yd), y_ref);
  EXPECT_EQ(to_host(dyd), dy_ref);
}

// The bias ops against their CPU twins (host/cpu/cpu_ops.h), batch 1, 3 and 33, odd planes,
// dense (plane 1): the forward is one add and a max, exact; the sum differs in order only.
TEST_F(GpuOps, BiasForwardAndBackwardMatchCpuTwins) {
  TRACE_SEED();
  struct Case { int n, c; int64_t plane; };
  for (const Case k : {Case{1, 5, 63}, Case{3, 7, 1}, Case{33, 4, 13 * 11}}) {
    const size_t size = size_t(k.n * k.c * k.plane);
    const auto y = random_floats(size, seed(12)), b = random_floats(size_t(k.c), seed(13));
    for (bool relu : {false, true}) {
      auto yd = to_device(y), bd = to_device(b);
      bias_act_forward(stream_, k.n, k.c, k.plane, bd.get(), relu, yd.get());
      DeviceBuffer<float> db(size_t(k.c), "db");
      bias_backward(stream_, k.n, k.c, k.plane, yd.get(), db.get());
      std::vector<float> y_ref = y, db_ref(size_t(k.c));
      cpu::bias_act_forward(k.n, k.c, k.plane, b.data(), relu, y_ref.data());
      cpu::bias_backward(k.n, k.c, k.plane, y_ref.data(), db_ref.data());
      EXPECT_EQ(to_host(yd), y_ref) << "n " << k.n << " relu " << relu;
      EXPECT_LE(rel_error(to_host(db), db_ref), kOpTolerance) << "n " << k.n << " relu " << relu;
    }
  }
}

// --- max pooling ---

struct PoolCase {
  const char* name;
  int n, c, h, w, ph, pw, stride;
};

void PrintTo(const PoolCase& k, std::ostream* os) { *os << k.name; }

class PoolOps : public GpuOps, public ::testing::WithParamInterface<PoolCase> {};

TEST_P(PoolOps, MatchesCpu) {
  TRACE_SEED();
  const PoolCase k = GetParam();
  PoolGeom g{k.n,
             k.c,
             k.h,
             k.w,
             k.ph,
             k.pw,
             k.stride,
             (k.h - k.ph) / k.stride + 1,
             (k.w - k.pw) / k.stride + 1};
  const auto x = random_floats(size_t(g.x_size()), seed(20));
  const auto dy = random_floats(size_t(g.y_size()), seed(21));
  auto xd = to_device(x), dyd = to_device(dy);
  DeviceBuffer<float> yd(size_t(g.y_size()), "y"), dxd(size_t(g.x_size()), "dx");
  DeviceBuffer<int32_t> ad(size_t(g.y_size()), "argmax");
  maxpool_forward(stream_, g, xd.get(), yd.get(), ad.get());
  maxpool_backward(stream_, g, dyd.get(), ad.get(), dxd.get());
  std::vector<float> y_ref(size_t(g.y_size())), dx_ref(size_t(g.x_size()));
  std::vector<int32_t> a_ref(size_t(g.y_size()));
  cpu::maxpool_forward(g, x.data(), y_ref.data(), a_ref.data());
  cpu::maxpool_backward(g, dy.data(), a_ref.data(), dx_ref.data());
  EXPECT_EQ(to_host(yd), y_ref);  // a maximum is exact
  EXPECT_EQ(to_host(ad), a_ref);
  EXPECT_LE(rel_error(to_host(dxd), dx_ref), kOpTolerance);
}

INSTANTIATE_TEST_SUITE_P(Shapes, PoolOps,
                         ::testing::Values(PoolCase{"p2x2", 2, 3, 28, 28, 2, 2, 2},
                                           PoolCase{"odd", 2, 3, 13, 11, 2, 2, 2},
                                           PoolCase{"overlap3x3s2", 2, 2, 9, 10, 3, 3, 2},
                                           PoolCase{"p2x1s1", 3, 2, 7, 5, 2, 1, 1}),
                         [](const ::testing::TestParamInfo<PoolCase>& info) {
                           return std::string(info.param.name);
                         });

// --- dense layers (cuBLAS) ---

struct DenseCase {
  const char* name;
  int n, in, out;
};

void PrintTo(const DenseCase& k, std::ostream* os) { *os << k.name; }

class DenseOps : public GpuOps, public ::testing::WithParamInterface<DenseCase> {};

TEST_P(DenseOps, MatchesCpu) {
  TRACE_SEED();
  const DenseCase k = GetParam();
  const DenseGeom g{k.n, k.in, k.out};
  const auto x = random_floats(size_t(k.n) * k.in, seed(30));
  const auto w = random_floats(size_t(k.out) * k.in, seed(31), -0.3f, 0.3f);
  const auto b = random_floats(size_t(k.out), seed(32));
  const auto dy = random_floats(size_t(k.n) * k.out, seed(33));
  auto xd = to_device(x), wd = to_device(w), bd = to_device(b), dyd = to_device(dy);
  DeviceBuffer<float> yd(dy.size(), "y"), yrd(dy.size(), "y relu"), dxd(x.size(), "dx"),
      dwd(w.size(), "dw"), dbd(b.size(), "db");
  dense_forward(cublas_, stream_, g, xd.get(), wd.get(), bd.get(), false, yd.get());
  dense_forward(cublas_, stream_, g, xd.get(), wd.get(), bd.get(), true, yrd.get());
  dense_backward(cublas_, stream_, g, xd.get(), wd.get(), dyd.get(), dxd.get(), dwd.get(),
                 dbd.get());
  std::vector<float> y_ref(dy.size()), dx_ref(x.size()), dw_ref(w.size()), db_ref(b.size());
  cpu::dense_forward(g, x.data(), w.data(), b.data(), false, y_ref.data());
  cpu::dense_backward(g, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(),
                      db_ref.data());
  EXPECT_LE(rel_error(to_host(yd), y_ref), kOpTolerance) << "forward";
  std::vector<float> yr_ref(y_ref.size());
  cpu::dense_forward(g, x.data(), w.data(), b.data(), true, yr_ref.data());
  EXPECT_LE(rel_error(to_host(yrd), yr_ref), kOpTolerance) << "forward with relu";
  EXPECT_LE(rel_error(to_host(dxd), dx_ref), kOpTolerance) << "dx";
  EXPECT_LE(rel_error(to_host(dwd), dw_ref), kOpTolerance) << "dw";
  EXPECT_LE(rel_error(to_host(dbd), db_ref), kOpTolerance) << "db";

  // The first layer skips dx; dw and db must not depend on it.
  DeviceBuffer<float> dw2(w.size(), "dw"), db2(b.size(), "db");
  dense_backward(cublas_, stream_, g, xd.get(), wd.get(), dyd.get(), nullptr, dw2.get(), db2.get());
  EXPECT_EQ(to_host(dw2), to_host(dwd));
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseOps,
                         ::testing::Values(DenseCase{"odd", 3, 17, 5},
                                           DenseCase{"seed_hidden", 32, 576, 64},
                                           DenseCase{"seed_logits", 7, 64, 10}),
                         [](const ::testing::TestParamInfo<DenseCase>& info) {
                           return std::string(info.param.name);
                         });

// --- the fused loss and softmax ---

TEST_F(GpuOps, SoftmaxXentMatchesCpu) {
  TRACE_SEED();
  for (int n : {1, 37, 300}) {  // one block, a partial block, several blocks
    const int k = 10;
    const auto logits = random_floats(size_t(n) * k, seed(40 + uint64_t(n)), -6.0f, 6.0f);
    std::vector<uint8_t> labels(static_cast<size_t>(n));
    Rng rng(seed(41));
    for (auto& l : labels) l = uint8_t(rng.below(k));
    auto ld = to_device(logits);
    auto labd = to_device(labels);
    DeviceBuffer<float> dd(logits.size(), "dlogits"), pd(logits.size(), "probs");
    DeviceBuffer<double> loss(1, "loss");
    DeviceBuffer<unsigned long long> correct(1, "correct");
    CUDA_CHECK(cudaMemsetAsync(loss.get(), 0, sizeof(double), stream_));
    CUDA_CHECK(cudaMemsetAsync(correct.get(), 0, sizeof(unsigned long long), stream_));
    const float scale = 1.0f / float(n);
    softmax_xent(stream_, n, k, ld.get(), labd.get(), dd.get(), scale, loss.get(), correct.get());
    // Accumulates: a second call without gradients doubles the sums.
    softmax_xent(stream_, n, k, ld.get(), labd.get(), nullptr, 0.0f, loss.get(), correct.get());
    softmax(stream_, n, k, ld.get(), pd.get());

    double loss_ref = 0;
    int64_t correct_ref = 0;
    std::vector<float> d_ref(logits.size()), p_ref(logits.size());
    cpu::softmax_xent(n, k, logits.data(), labels.data(), d_ref.data(), scale, &loss_ref,
                      &correct_ref);
    cpu::softmax(n, k, logits.data(), p_ref.data());
    // Both sides sum exponentials in double; only the order of the final sums differs.
    EXPECT_NEAR(to_host(loss)[0], 2 * loss_ref, 1e-9 * std::max(1.0, loss_ref)) << "n " << n;
    EXPECT_EQ(int64_t(to_host(correct)[0]), 2 * correct_ref) << "n " << n;
    EXPECT_LE(rel_error(to_host(dd), d_ref), kOpTolerance) << "n " << n;
    EXPECT_LE(rel_error(to_host(pd), p_ref), kOpTolerance) << "n " << n;
  }
}

// --- Adam ---

TEST_F(GpuOps, AdamMatchesCpuAndKeepsPaddingZero) {
  TRACE_SEED();
  const size_t count = 1000, padding = 24;  // the tail plays a slot's alignment padding
  auto p = random_floats(count + padding, seed(50));
  auto m = random_floats(count + padding, seed(51), -0.01f, 0.01f);
  auto v = random_floats(count + padding, seed(52), 0.0f, 1e-4f);
  for (size_t i = count; i < count + padding; ++i) p[i] = m[i] = v[i] = 0.0f;
  auto pd = to_device(p), md = to_device(m), vd = to_device(v);
  const Hyper hyper;
  DeviceBuffer<StepParams> spd(1, "step params");
  for (int64_t t = 1; t <= 3; ++t) {
    auto g = random_floats(count + padding, seed(53 + uint64_t(t)), -0.1f, 0.1f);
    for (size_t i = count; i < count + padding; ++i) g[i] = 0.0f;
    StepParams sp;
    sp.lr_t = float(adam_step_size(hyper.lr, hyper.beta1, hyper.beta2, t));
    sp.beta1 = hyper.beta1, sp.beta2 = hyper.beta2, sp.eps = hyper.eps;
    write_params(spd, sp);
    auto gd = to_device(g);
    adam(stream_, int64_t(g.size()), pd.get(), gd.get(), md.get(), vd.get(), spd.get());
    sync();
    cpu::adam(int64_t(g.size()), p.data(), g.data(), m.data(), v.data(), &sp);
  }
  const auto p_gpu = to_host(pd);
  EXPECT_LE(rel_error(p_gpu, p), kOpTolerance);
  EXPECT_LE(rel_error(to_host(md), m), kOpTolerance);
  EXPECT_LE(rel_error(to_host(vd), v), kOpTolerance);
  for (size_t i = count; i < count + padding; ++i) ASSERT_EQ(p_gpu[i], 0.0f) << i;
}

// --- the batch gather ---

TEST_F(GpuOps, GatherMatchesCpu) {
  TRACE_SEED();
  const int64_t images = 50, image_size = 3 * 5 * 4;
  const int count = 13;
  Rng rng(seed(60));
  std::vector<uint8_t> pixels(static_cast<size_t>(images * image_size)),
      labels(static_cast<size_t>(images));
  for (auto& p : pixels) p = uint8_t(rng.below(256));
  for (auto& l : labels) l = uint8_t(rng.below(10));
  std::vector<int32_t> order(static_cast<size_t>(images));
  std::iota(order.begin(), order.end(), 0);
  for (size_t i = order.size() - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
  auto pd = to_device(pixels), ld = to_device(labels);
  auto od = to_device(order);
  DeviceBuffer<StepParams> spd(1, "step params");
  StepParams sp;
  sp.begin = 7;
  write_params(spd, sp);
  DeviceBuffer<float> xd(size_t(count * image_size), "x");
  DeviceBuffer<uint8_t> bl(size_t(count), "batch labels");

  gather_batch(stream_, pd.get(), ld.get(), image_size, od.get(), spd.get(), count, xd.get(),
               bl.get());
  std::vector<float> x_ref(size_t(count * image_size));
  cpu::gather_batch(pixels.data(), nullptr, image_size, order.data(), sp.begin, count,
                    x_ref.data(), nullptr);
  EXPECT_EQ(to_host(xd), x_ref);  // the same division: exact
  const auto got_labels = to_host(bl);
  for (int i = 0; i < count; ++i)
    EXPECT_EQ(got_labels[size_t(i)], labels[size_t(order[size_t(7 + i)])]);

  // No order and no step parameters: consecutive images from the pointer given.
  gather_batch(stream_, pd.get() + 5 * image_size, nullptr, image_size, nullptr, nullptr, count,
               xd.get(), nullptr);
  cpu::gather_batch(pixels.data(), nullptr, image_size, nullptr, 5, count, x_ref.data(), nullptr);
  EXPECT_EQ(to_host(xd), x_ref);
}

// --- the conv dispatch point; needs no device ---

TEST(CudaConvDispatch, KnowsEveryImplementationAndRefusesOthers) {
  try {
    check_conv_impl("fast");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--conv-impl"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(check_conv_impl("own"));
  EXPECT_NO_THROW(check_conv_impl("auto"));
  EXPECT_NO_THROW(check_conv_impl("cudnn"));
}

TEST_F(GpuOps, AutoTakesTheOwnKernelsForUnevenSamePadding) {
  const Layer l = conv_layer({"even", 2, 3, 8, 8, 4, 2, 1, 1, Padding::Same}, Activation::Relu);
  ASSERT_NE(l.pad_top, l.pad_bottom);
  ConvContext ctx;
  ctx.cudnn = cudnn_, ctx.stream = stream_;
  auto conv = make_conv_impl(l, 2, true, "auto", ctx);
  EXPECT_NE(conv->describe().find("own"), std::string::npos) << conv->describe();
}

}  // namespace
}  // namespace splitconv::gpu::testing
