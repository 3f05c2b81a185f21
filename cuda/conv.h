// One convolution layer on the GPU, behind one dispatch point: make_conv_impl picks the
// implementation of each layer once, at plan time: cuDNN, or the project's own n×1 / 1×n
// kernels (conv_split.h) for the layers they support.
#pragma once
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cstddef>
#include <memory>
#include <string>

#include "splitconv/model.h"

namespace splitconv::gpu {

// Shared by every conv layer of one backend. The layers run one after another on one stream,
// so they share one workspace, sized by the backend from workspace_bytes() after planning.
struct ConvContext {
  cudnnHandle_t cudnn = nullptr;  // bound to `stream`
  cudaStream_t stream = nullptr;
  bool tf32 = false;           // allow TF32 tensor-core math
  bool deterministic = false;  // only algorithms that give the same bits on every run
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

class ConvImpl {
 public:
  virtual ~ConvImpl() = default;
  // y = act(conv(x, w) + b), act the layer's activation (ReLU or none).
  //   x: n×c×h×w, w: m×c×kh×kw, b: m, y: n×m×oh×ow; n ≤ the planned batch.
  virtual void forward(int n, const float* x, const float* w, const float* b, float* y) = 0;
  // dy *= act'(y) in place, then db = Σ dy, dw = Σ_n dy ⋆ x (both overwritten) and, when dx
  // is not null, dx = conv_transpose(dy, w) (overwritten).
  virtual void backward(int n, const float* x, const float* y, float* dy, const float* w, float* dx,
                        float* dw, float* db) = 0;
  // Workspace this layer needs at the planned batch (the backend allocates the largest).
  virtual size_t workspace_bytes() const = 0;
  // "conv3: cudnn fwd algo 1, bwd-data algo 1, bwd-filter algo 3, workspace 12 KiB"
  virtual std::string describe() const = 0;
};

// Picks and plans the implementation of a conv layer for batches of up to max_batch. need_dx:
// whether the backward pass must produce the input gradient. conv_impl (BackendOptions):
// "cudnn" everywhere; "own" for every n×1 / 1×n layer (cuDNN for the others); "auto" times
// own against cuDNN once, here, on an n×1 / 1×n layer and keeps the faster — except with
// ctx.deterministic, where a timing must not decide: auto then means own wherever it applies
// (its reductions run in a fixed order). Throws InputError for what no implementation supports.
std::unique_ptr<ConvImpl> make_conv_impl(const Layer& layer, int max_batch, bool need_dx,
                                         const std::string& conv_impl, ConvContext& ctx);

// Refuses a conv_impl that no build of this backend supports (checked before planning).
void check_conv_impl(const std::string& conv_impl);

// The project's own n×1 / 1×n kernels (conv_own.cpp); throws InputError for other layers.
bool own_conv_supports(const Layer& layer, int max_batch);
std::unique_ptr<ConvImpl> make_own_conv(const Layer& layer, int max_batch, bool need_dx,
                                        ConvContext& ctx);

// The cuDNN implementation (conv_cudnn.cpp), with its three convolutions also callable alone
// (`bench kernel` times each direction against the own kernels): the same descriptors,
// algorithms (cudnn_policy.h) and workspace (ctx's) as forward and backward use.
class CudnnConvImpl : public ConvImpl {
 public:
  // y = conv(x, w): no bias, no activation.
  virtual void conv_forward(int n, const float* x, const float* w, float* y) = 0;
  // dx = conv_transpose(dy, w), dy as given (no mask); planned with need_dx only.
  virtual void conv_backward_data(int n, const float* dy, const float* w, float* dx) = 0;
  // dw = Σ_n dy ⋆ x, dy as given; the bias gradient is bias_backward's (ops.h).
  virtual void conv_backward_filter(int n, const float* x, const float* dy, float* dw) = 0;
};
std::unique_ptr<CudnnConvImpl> make_cudnn_conv(const Layer& layer, int max_batch, bool need_dx,
                                               ConvContext& ctx);

}  // namespace splitconv::gpu
