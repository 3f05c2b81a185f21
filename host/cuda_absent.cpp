// Linked instead of cuda/ when the CUDA backend is not built.
#include "splitconv/backend.h"
#include "splitconv/error.h"

namespace splitconv {

CudaStatus cuda_status() {
  CudaStatus st;
  st.compiled = false;
  st.why_none = "this build has no CUDA backend (configure with nvcc, cuDNN and cuBLAS present)";
  return st;
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions&) {
  throw Error("this build has no CUDA backend");
}

}  // namespace splitconv

#include "splitconv/bench.h"

namespace splitconv::gpu {

std::string run_conv_split_bench(const SplitBenchArgs&) {
  throw Error("bench kernel: this build has no CUDA backend");
}

bench::ConvBenchResult bench_conv_cuda(const bench::ConvCase&, const bench::TimingOptions&) {
  throw Error("bench --device cuda: this build has no CUDA backend");
}

bench::LayersResult bench_layers_cuda(const Model&, int, const bench::TimingOptions&) {
  throw Error("bench layers --device cuda: this build has no CUDA backend");
}

}  // namespace splitconv::gpu
