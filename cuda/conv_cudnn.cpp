// Convolutions through cuDNN's legacy API. The algorithms are chosen once per layer at plan
// time by cudnnFind* (measured, fastest first; with ctx.deterministic by the heuristic
// cudnnGet*_v7, among deterministic algorithms); the workspace is sized from that choice.
// Math: CUDNN_FMA_MATH keeps float32 exact to rounding (CUDNN_DEFAULT_MATH lets cuDNN use
// TF32 tensor cores on Ampere and later); CUDNN_DEFAULT_MATH only when TF32 is asked for.
#include <map>
#include <string>
#include <vector>

#include "resources.h"
#include "conv.h"
#include "cudnn_policy.h"
#include "ops.h"
#include "splitconv/error.h"
#include "splitconv/tensor.h"

namespace splitconv::gpu {
namespace {

// The workspace query's answer when an algorithm does not support the shape.
constexpr size_t kUnsupported = ~size_t(0);

// What depends on the batch size: the activation descriptors and the algorithms.
struct BatchPlan {
  int n = 0;
  TensorDesc x = new_tensor_desc(), y = new_tensor_desc();
  cudnnConvolutionFwdAlgo_t fwd = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  cudnnConvolutionBwdDataAlgo_t bwd_data = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
  cudnnConvolutionBwdFilterAlgo_t bwd_filter = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0;
  size_t workspace = 0;
};

std::string kib(size_t bytes) { return std::to_string((bytes + 1023) / 1024) + " KiB"; }

class CudnnConv final : public CudnnConvImpl {
 public:
  CudnnConv(const Layer& l, int max_batch, bool need_dx, ConvContext& ctx);

  void forward(int n, const float* x, const float* w, const float* b, float* y) override;
  void backward(int n, const float* x, const float* y, float* dy, const float* w, float* dx,
                float* dw, float* db) override;
  void conv_forward(int n, const float* x, const float* w, float* y) override;
  void conv_backward_data(int n, const float* dy, const float* w, float* dx) override;
  void conv_backward_filter(int n, const float* x, const float* dy, float* dw) override;
  size_t workspace_bytes() const override { return max_plan_->workspace; }
  std::string describe() const override;

 private:
  BatchPlan& plan_for(int n);
  void set_batch_descriptors(BatchPlan& p, int n);
  void find_algorithms(BatchPlan& p);
  void fit_algorithms(BatchPlan& p);
  size_t fwd_bytes(const BatchPlan& p, cudnnConvolutionFwdAlgo_t a) const;
  size_t bwd_data_bytes(const BatchPlan& p, cudnnConvolutionBwdDataAlgo_t a) const;
  size_t bwd_filter_bytes(const BatchPlan& p, cudnnConvolutionBwdFilterAlgo_t a) const;

  std::string name_;
  ConvGeom g_;  // at the planned batch
  bool relu_, need_dx_;
  ConvContext& ctx_;
  cudnnMathType_t math_;
  FilterDesc w_ = new_filter_desc();
  ConvDesc fwd_ = new_conv_desc(), bwd_data_ = new_conv_desc(), bwd_filter_ = new_conv_desc();  // one per direction: each carries its math type
  std::map<int, std::unique_ptr<BatchPlan>> plans_;
  BatchPlan* max_plan_ = nullptr;
};

CudnnConv::CudnnConv(const Layer& l, int max_batch, bool need_dx, ConvContext& ctx)
    : name_(l.name()),
      g_(conv_geom(l, max_batch)),
      relu_(l.spec.activation == Activation::Relu),
      need_dx_(need_dx),
      ctx_(ctx),
      math_(ctx.tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH) {
  if (l.pad_top != l.pad_bottom || l.pad_left != l.pad_right) {
    throw InputError(name_ + ": 'same' padding of a " + std::to_string(l.spec.kh) + "x" +
                     std::to_string(l.spec.kw) + " kernel pads unevenly (top " +
                     std::to_string(l.pad_top) + ", bottom " + std::to_string(l.pad_bottom) +
                     ", left " + std::to_string(l.pad_left) + ", right " +
                     std::to_string(l.pad_right) +
                     "), which cuDNN does not support; use an odd kernel or padding=valid");
  }
  if (l.spec.activation != Activation::Relu && l.spec.activation != Activation::None)
    throw InputError(name_ + ": a convolution takes relu or no activation");
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(w_.get(), CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, g_.m, g_.c,
                                         g_.kh, g_.kw));
  for (ConvDesc* d : {&fwd_, &bwd_data_, &bwd_filter_}) {
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(d->get(), g_.pad_top, g_.pad_left, g_.stride, g_.stride,
                                                1, 1, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_CHECK(cudnnSetConvolutionMathType(d->get(), math_));
  }
  auto plan = std::make_unique<BatchPlan>();
  set_batch_descriptors(*plan, max_batch);
  find_algorithms(*plan);
  max_plan_ = plan.get();
  plans_.emplace(max_batch, std::move(plan));
}

void CudnnConv::set_batch_descriptors(BatchPlan& p, int n) {
  p.n = n;
  CUDNN_CHECK(
      cudnnSetTensor4dDescriptor(p.x.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, g_.c, g_.h, g_.w));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.y.get(), CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, g_.m, g_.oh,
                                         g_.ow));
  int on = 0, oc = 0, oh = 0, ow = 0;
  CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(fwd_.get(), p.x.get(), w_.get(), &on, &oc, &oh, &ow));
  if (on != n || oc != g_.m || oh != g_.oh || ow != g_.ow) {
    throw Error(name_ + ": cuDNN computes an output of " + std::to_string(oh) + "x" +
                std::to_string(ow) + "x" + std::to_string(oc) + ", the model " +
                std::to_string(g_.oh) + "x" + std::to_string(g_.ow) + "x" + std::to_string(g_.m));
  }
}

size_t CudnnConv::fwd_bytes(const BatchPlan& p, cudnnConvolutionFwdAlgo_t a) const {
  size_t bytes = 0;
  const cudnnStatus_t st =
      cudnnGetConvolutionForwardWorkspaceSize(ctx_.cudnn, p.x.get(), w_.get(), fwd_.get(), p.y.get(), a, &bytes);
  return st == CUDNN_STATUS_SUCCESS ? bytes : kUnsupported;
}

size_t CudnnConv::bwd_data_bytes(const BatchPlan& p, cudnnConvolutionBwdDataAlgo_t a) const {
  size_t bytes = 0;
  const cudnnStatus_t st = cudnnGetConvolutionBackwardDataWorkspaceSize(
      ctx_.cudnn, w_.get(), p.y.get(), bwd_data_.get(), p.x.get(), a, &bytes);
  return st == CUDNN_STATUS_SUCCESS ? bytes : kUnsupported;
}

size_t CudnnConv::bwd_filter_bytes(const BatchPlan& p, cudnnConvolutionBwdFilterAlgo_t a) const {
  size_t bytes = 0;
  const cudnnStatus_t st = cudnnGetConvolutionBackwardFilterWorkspaceSize(
      ctx_.cudnn, p.x.get(), p.y.get(), bwd_filter_.get(), w_.get(), a, &bytes);
  return st == CUDNN_STATUS_SUCCESS ? bytes : kUnsupported;
}

// Runs every algorithm once (cuDNN allocates its own scratch for this) and keeps the fastest
// usable one per direction. Deterministic mode asks cuDNN's heuristic instead: a timing could
// rank two algorithms differently from run to run, and the bits would follow. With TF32 allowed, each direction adopts the math type its choice
// was timed with (cuDNN wants the pair); in float32 the descriptors stay at CUDNN_FMA_MATH.
void CudnnConv::find_algorithms(BatchPlan& p) {
  const cudnnHandle_t h = ctx_.cudnn;
  int max_count = 0, got = 0;
  {
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(size_t(std::max(max_count, 1)));
    if (ctx_.deterministic)  // the heuristic: the same answer on every run, not a timing
      CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.get(), w_.get(), fwd_.get(),
                                                         p.y.get(), max_count, &got, perf.data()));
    else
      CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(h, p.x.get(), w_.get(), fwd_.get(),
                                                       p.y.get(), max_count, &got, perf.data()));
    const auto* best = first_usable(perf, got, math_, kMaxWorkspace, ctx_.deterministic);
    if (!best) throw Error(name_ + ": cuDNN offers no usable forward algorithm");
    p.fwd = best->algo;
    if (ctx_.tf32) CUDNN_CHECK(cudnnSetConvolutionMathType(fwd_.get(), best->mathType));
  }
  {
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(size_t(std::max(max_count, 1)));
    if (ctx_.deterministic)
      CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
          h, p.x.get(), p.y.get(), bwd_filter_.get(), w_.get(), max_count, &got, perf.data()));
    else
      CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithm(
          h, p.x.get(), p.y.get(), bwd_filter_.get(), w_.get(), max_count, &got, perf.data()));
    const auto* best = first_usable(perf, got, math_, kMaxWorkspace, ctx_.deterministic);
    if (!best) throw Error(name_ + ": cuDNN offers no usable backward-filter algorithm");
    p.bwd_filter = best->algo;
    if (ctx_.tf32) CUDNN_CHECK(cudnnSetConvolutionMathType(bwd_filter_.get(), best->mathType));
  }
  if (need_dx_) {
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(size_t(std::max(max_count, 1)));
    if (ctx_.deterministic)
      CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
          h, w_.get(), p.y.get(), bwd_data_.get(), p.x.get(), max_count, &got, perf.data()));
    else
      CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(
          h, w_.get(), p.y.get(), bwd_data_.get(), p.x.get(), max_count, &got, perf.data()));
    const auto* best = first_usable(perf, got, math_, kMaxWorkspace, ctx_.deterministic);
    if (!best) throw Error(name_ + ": cuDNN offers no usable backward-data algorithm");
    p.bwd_data = best->algo;
    if (ctx_.tf32) CUDNN_CHECK(cudnnSetConvolutionMathType(bwd_data_.get(), best->mathType));
  }
  p.workspace = std::max(fwd_bytes(p, p.fwd), bwd_filter_bytes(p, p.bwd_filter));
  if (need_dx_) p.workspace = std::max(p.workspace, bwd_data_bytes(p, p.bwd_data));
  if (p.workspace == kUnsupported)
    throw Error(name_ + ": cuDNN cannot size the workspace of the algorithms it chose");
}

// Another batch size (the last partial batch, evaluation): keeps the planned algorithms when
// they fit the allocated workspace at this size, else takes cuDNN's heuristic choice that does.
void CudnnConv::fit_algorithms(BatchPlan& p) {
  const cudnnHandle_t h = ctx_.cudnn;
  const size_t limit = ctx_.workspace_bytes;
  auto math_of = [](cudnnConvolutionDescriptor_t d) {
    cudnnMathType_t m = CUDNN_DEFAULT_MATH;
    CUDNN_CHECK(cudnnGetConvolutionMathType(d, &m));
    return m;
  };
  // Heuristic results must also keep each direction's math type: it is set on the descriptor.
  auto pick = [&](const auto& perf, int got, cudnnMathType_t math, const char* what) {
    for (int i = 0; i < got; ++i) {
      const auto& r = perf[size_t(i)];
      if (usable(r, math, limit, ctx_.deterministic) && math_fits(r.mathType, math)) return r.algo;
    }
    throw Error(name_ + ": no cuDNN " + what + " algorithm fits the workspace for this batch");
  };
  int got = 0;
  p.fwd = max_plan_->fwd;
  if (fwd_bytes(p, p.fwd) > limit) {
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, p.x.get(), w_.get(), fwd_.get(), p.y.get(),
                                                       int(perf.size()), &got, perf.data()));
    p.fwd = pick(perf, got, math_of(fwd_.get()), "forward");
  }
  p.bwd_filter = max_plan_->bwd_filter;
  if (bwd_filter_bytes(p, p.bwd_filter) > limit) {
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> perf(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, p.x.get(), p.y.get(), bwd_filter_.get(), w_.get(),
                                                              int(perf.size()), &got, perf.data()));
    p.bwd_filter = pick(perf, got, math_of(bwd_filter_.get()), "backward-filter");
  }
  p.bwd_data = max_plan_->bwd_data;
  if (need_dx_ && bwd_data_bytes(p, p.bwd_data) > limit) {
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, w_.get(), p.y.get(), bwd_data_.get(), p.x.get(),
                                                            int(perf.size()), &got, perf.data()));
    p.bwd_data = pick(perf, got, math_of(bwd_data_.get()), "backward-data");
  }
  p.workspace = std::max(fwd_bytes(p, p.fwd), bwd_filter_bytes(p, p.bwd_filter));
  if (need_dx_) p.workspace = std::max(p.workspace, bwd_data_bytes(p, p.bwd_data));
  if (p.workspace > limit)  // a heuristic's memory estimate disagreed with the size query
    throw Error(name_ + ": the cuDNN algorithms for a batch of " + std::to_string(p.n) + " need " +
                kib(p.workspace) + " of workspace, " + kib(limit) + " planned");
}

// The planned batch is ready from construction; another size is set up at its first use and
// kept (the trainer meets at most one partial size a run, evaluation one more).
BatchPlan& CudnnConv::plan_for(int n) {
  auto it = plans_.find(n);
  if (it != plans_.end()) return *it->second;
  if (n < 1 || n > g_.n) {
    throw Error(name_ + ": a batch of " + std::to_string(n) + " images, planned for 1 to " +
                std::to_string(g_.n));
  }
  auto plan = std::make_unique<BatchPlan>();
  set_batch_descriptors(*plan, n);
  fit_algorithms(*plan);
  return *plans_.emplace(n, std::move(plan)).first->second;
}

void CudnnConv::conv_forward(int n, const float* x, const float* w, float* y) {
  BatchPlan& p = plan_for(n);
  const float one = 1.0f, zero = 0.0f;
  CUDNN_CHECK(cudnnConvolutionForward(ctx_.cudnn, &one, p.x.get(), x, w_.get(), w, fwd_.get(), p.fwd,
                                      ctx_.workspace, ctx_.workspace_bytes, &zero, p.y.get(), y));
}

void CudnnConv::conv_backward_data(int n, const float* dy, const float* w, float* dx) {
  if (!need_dx_) throw Error(name_ + ": input gradient asked for but not planned");
  BatchPlan& p = plan_for(n);
  const float one = 1.0f, zero = 0.0f;
  CUDNN_CHECK(cudnnConvolutionBackwardData(ctx_.cudnn, &one, w_.get(), w, p.y.get(), dy,
                                           bwd_data_.get(), p.bwd_data, ctx_.workspace,
                                           ctx_.workspace_bytes, &zero, p.x.get(), dx));
}

void CudnnConv::conv_backward_filter(int n, const float* x, const float* dy, float* dw) {
  BatchPlan& p = plan_for(n);
  const float one = 1.0f, zero = 0.0f;
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(ctx_.cudnn, &one, p.x.get(), x, p.y.get(), dy,
                                             bwd_filter_.get(), p.bwd_filter, ctx_.workspace,
                                             ctx_.workspace_bytes, &zero, w_.get(), dw));
}

void CudnnConv::forward(int n, const float* x, const float* w, const float* b, float* y) {
  conv_forward(n, x, w, y);
  bias_act_forward(ctx_.stream, n, g_.m, int64_t(g_.oh) * g_.ow, b, relu_, y);
}

void CudnnConv::backward(int n, const float* x, const float* y, float* dy, const float* w,
                         float* dx, float* dw, float* db) {
  if (dx && !need_dx_) throw Error(name_ + ": input gradient asked for but not planned");
  const int64_t plane = int64_t(g_.oh) * g_.ow;
  if (relu_) relu_backward(ctx_.stream, int64_t(n) * g_.m * plane, y, dy);
  bias_backward(ctx_.stream, n, g_.m, plane, dy, db);
  conv_backward_filter(n, x, dy, dw);
  if (dx) conv_backward_data(n, dy, w, dx);
}

std::string CudnnConv::describe() const {
  const BatchPlan& p = *max_plan_;
  std::string s = name_ + ": cudnn fwd algo " + std::to_string(int(p.fwd)) + ", bwd-data ";
  s += need_dx_ ? "algo " + std::to_string(int(p.bwd_data)) : std::string("none");
  s += ", bwd-filter algo " + std::to_string(int(p.bwd_filter)) + ", workspace " + kib(p.workspace);
  if (ctx_.tf32) s += ", tf32 allowed";
  if (ctx_.deterministic) s += ", deterministic";
  return s;
}

}  // namespace

std::unique_ptr<CudnnConvImpl> make_cudnn_conv(const Layer& layer, int max_batch, bool need_dx,
                                               ConvContext& ctx) {
  return std::make_unique<CudnnConv>(layer, max_batch, need_dx, ctx);
}

}  // namespace splitconv::gpu
