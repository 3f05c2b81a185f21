// The project's own n×1 / 1×n kernels (conv_split.h) behind the ConvImpl interface.
#include <string>

#include "conv.h"
#include "conv_split.h"
#include "ops.h"
#include "splitconv/error.h"
#include "splitconv/tensor.h"

namespace splitconv::gpu {
namespace {

class OwnConv : public ConvImpl {
 public:
  OwnConv(const Layer& l, int max_batch, bool need_dx, ConvContext& ctx)
      : name_(l.name()), g_(conv_geom(l, max_batch)), need_dx_(need_dx),
        relu_(l.spec.activation == Activation::Relu), ctx_(ctx) {
    if (!split_conv_supports(g_))
      throw InputError("--conv-impl own: layer " + l.name() + " (" + std::to_string(l.spec.kh) +
                       "x" + std::to_string(l.spec.kw) + ", stride " + std::to_string(l.stride) +
                       ") is not an n×1 or 1×n convolution with stride 1");
  }

  void forward(int n, const float* x, const float* w, const float* b, float* y) override {
    ConvGeom g = g_;
    g.n = n;
    split_conv_forward(g, x, w, b, relu_, y, ctx_.stream);
  }

  void backward(int n, const float* x, const float* y, float* dy, const float* w, float* dx,
                float* dw, float* db) override {
    ConvGeom g = g_;
    g.n = n;
    if (relu_) relu_backward(ctx_.stream, g.y_size(), y, dy);  // both gradients need the mask
    split_conv_backward_filter(g, x, dy, dw, db, static_cast<float*>(ctx_.workspace), ctx_.stream);
    if (dx) split_conv_backward_data(g, dy, w, dx, ctx_.stream);
  }

  size_t workspace_bytes() const override { return split_conv_filter_workspace(g_); }

  std::string describe() const override {
    return name_ + ": own " + std::to_string(g_.kh) + "x" + std::to_string(g_.kw) +
           " kernels, workspace " + std::to_string(workspace_bytes() / 1024) + " KiB" +
           (need_dx_ ? "" : ", no input gradient");
  }

 private:
  std::string name_;
  ConvGeom g_;
  bool need_dx_, relu_;
  ConvContext& ctx_;
};

}  // namespace

bool own_conv_supports(const Layer& layer, int max_batch) {
  return split_conv_supports(conv_geom(layer, max_batch));
}

std::unique_ptr<ConvImpl> make_own_conv(const Layer& layer, int max_batch, bool need_dx,
                                        ConvContext& ctx) {
  return std::make_unique<OwnConv>(layer, max_batch, need_dx, ctx);
}

}  // namespace splitconv::gpu
