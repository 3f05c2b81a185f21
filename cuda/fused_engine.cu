// The fused GPU engine (fused_engine.h): the image kernel runs a program's phases with a block
// barrier between them; the reduce kernel sums the images' gradients in image order and steps
// Adam. Every sum is in a fixed order, so a step gives the same bits on every run.
#include "fused_engine.h"

#include <cooperative_groups.h>
#include <cub/block/block_reduce.cuh>
#include <nvtx3/nvToolsExt.h>

#include <algorithm>
#include <string>

#include "capture.h"
#include "check.h"
#include "fused/block_ops.h"
#include "splitconv/error.h"

namespace splitconv::gpu {
namespace detail {

// A cluster's copies of an image's arena, one in each block's shared memory: a write goes to
// every block's copy through distributed shared memory, a read is local.
struct ClusterArena {
  float* f = nullptr;
  int32_t* i = nullptr;
  int copies = 1;
  __host__ __device__ void put(int64_t at, float v) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
    for (int r = 0; r < copies; ++r) *cluster.map_shared_rank(f + at, unsigned(r)) = v;
#else
    (void)at, (void)v;
#endif
  }
  __host__ __device__ void put_int(int64_t at, int32_t v) const {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
    for (int r = 0; r < copies; ++r) *cluster.map_shared_rank(i + at, unsigned(r)) = v;
#else
    (void)at, (void)v;
#endif
  }
};

// What an image kernel reads: the program, the data, the parameters and where each image's
// results go.
struct ImageArgs {
  const fused::FusedOp* fwd = nullptr;
  int n_fwd = 0;
  const fused::FusedOp* bwd = nullptr;  // null: forward only
  int n_bwd = 0;
  int64_t arena_floats = 0, arena_ints = 0;  // per image
  int64_t image_size = 0;
  int classes = 0;
  int64_t param_floats = 0;
  const uint8_t* pixels = nullptr;
  const uint8_t* labels = nullptr;   // null: no labels (predict)
  const int32_t* order = nullptr;    // training: image b is order[sp->begin + b]
  const StepParams* sp = nullptr;
  int64_t first = 0;                 // without an order: image b is first + b
  float* arena = nullptr;            // null: the arena is the block's shared memory
  int32_t* iarena = nullptr;
  const float* params = nullptr;
  float* partial = nullptr;          // training: param_floats per image
  double* loss = nullptr;            // per image
  int32_t* correct = nullptr;
  float* probs = nullptr;            // predict: classes per image
  float grad_scale = 0;
};

}  // namespace detail

namespace {

using detail::ImageArgs;

using fused::FusedOp;
using fused::ImageIo;

constexpr int kReduceBlock = 256;
constexpr int kMaxEvalChunk = 4096;
constexpr int64_t kGlobalArenaBudget = int64_t(256) << 20;  // bytes for forward-only chunks



// The phases of image b for thread t of T, `barrier` after each.
template <class Arena, class Barrier>
__device__ void run_image(const ImageArgs& k, int b, int t, int T, const Arena& ar,
                          Barrier barrier) {
  const int64_t j = k.order ? int64_t(k.order[k.sp->begin + b]) : k.first + b;
  ImageIo io;
  io.pixels = k.pixels + j * k.image_size;
  io.label = k.labels ? int(k.labels[j]) : -1;
  io.grad_scale = k.bwd ? k.grad_scale : 0.0f;
  io.loss = k.loss ? k.loss + b : nullptr;
  io.correct = k.correct ? k.correct + b : nullptr;
  io.probs = k.probs ? k.probs + int64_t(b) * k.classes : nullptr;
  io.partial = k.partial ? k.partial + int64_t(b) * k.param_floats : nullptr;
  for (int i = 0; i < k.n_fwd; ++i) {
    const FusedOp op = k.fwd[i];
    fused::run_phase(op, t, T, ar, k.params, io);
    barrier();
  }
  if (!k.bwd) return;
  for (int i = 0; i < k.n_bwd; ++i) {
    const FusedOp op = k.bwd[i];
    fused::run_phase(op, t, T, ar, k.params, io);
    barrier();
  }
}

// One block per image: the arena in shared memory (kShared), or in global memory at k.arena —
// two instantiations, so each reads its arena with the memory space's own loads.
template <bool kShared>
__global__ void __launch_bounds__(FusedEngine::kThreads, 1) image_kernel(ImageArgs k) {
  extern __shared__ float4 shared_arena[];
  const int b = int(blockIdx.x);
  float* a = kShared ? reinterpret_cast<float*>(shared_arena) : k.arena + int64_t(b) * k.arena_floats;
  int32_t* ia = kShared ? reinterpret_cast<int32_t*>(reinterpret_cast<float*>(shared_arena) + k.arena_floats)
                        : k.iarena + int64_t(b) * k.arena_ints;
  run_image(k, b, int(threadIdx.x), int(blockDim.x), fused::LocalArena{a, ia},
            [] { __syncthreads(); });
}

// A thread-block cluster per image (Hopper and later): the cluster's blocks share the phases'
// work as one group of clusterDim × blockDim threads, with the cluster barrier (release/acquire
// at cluster scope) between phases. The arena: a copy in each block's shared memory where it
// fits (reads local, writes to every copy), else one in global memory. Same outputs, same
// sums: only which thread computes an element changes, never how.
__global__ void __launch_bounds__(FusedEngine::kThreads, 1) image_cluster_kernel(ImageArgs k) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  extern __shared__ float4 shared_arena[];
  const cg::cluster_group cluster = cg::this_cluster();
  const int size = int(cluster.num_blocks());
  const int b = int(blockIdx.x) / size;
  const int t = int(cluster.block_rank()) * int(blockDim.x) + int(threadIdx.x);
  auto barrier = [&] { cluster.sync(); };
  if (k.arena) {
    run_image(k, b, t, size * int(blockDim.x),
              fused::LocalArena{k.arena + int64_t(b) * k.arena_floats,
                                k.iarena + int64_t(b) * k.arena_ints},
              barrier);
  } else {
    float* f = reinterpret_cast<float*>(shared_arena);
    cluster.sync();  // every block of the cluster runs before its shared memory is written
    run_image(k, b, t, size * int(blockDim.x),
              detail::ClusterArena{f, reinterpret_cast<int32_t*>(f + k.arena_floats), size},
              barrier);
  }
#else
  __trap();  // launched only where the device has clusters (FusedEngine chooses)
#endif
}

// The per-image losses and hits of n images summed in a fixed order (each of the first
// kReduceBlock threads a contiguous run in order, then CUB's fixed reduction tree) and added to
// the accumulators by one thread. Called by every thread of one block of kBlock ≥ kReduceBlock
// threads: the threads past kReduceBlock add zeros at the tree's end, which changes no bit, so
// the reduce kernel and the persistent kernel sum a step's metrics alike.
template <int kBlock>
__device__ void sum_metrics(const double* loss, const int32_t* correct, int64_t n,
                            double* loss_acc, unsigned long long* correct_acc) {
  static_assert(kBlock >= kReduceBlock, "a block of at least kReduceBlock threads");
  using LossReduce = cub::BlockReduce<double, kBlock>;
  using HitReduce = cub::BlockReduce<long long, kBlock>;
  __shared__ typename LossReduce::TempStorage loss_tmp;
  __shared__ typename HitReduce::TempStorage hit_tmp;
  const int64_t per = ceil_div(n, kReduceBlock);
  const int64_t lo = threadIdx.x < kReduceBlock ? int64_t(threadIdx.x) * per : n;
  const int64_t hi = lo + per < n ? lo + per : n;
  double l = 0;
  long long c = 0;
  for (int64_t i = lo; i < hi; ++i) {
    l += loss[i];
    c += correct[i];
  }
  const double l_all = LossReduce(loss_tmp).Sum(l);
  const long long c_all = HitReduce(hit_tmp).Sum(c);
  if (threadIdx.x == 0) {
    *loss_acc += l_all;
    *correct_acc += (unsigned long long)c_all;
  }
}

// Parameter k's gradient summed over the step's images in image order, then Adam; block 0
// also sums the step's metrics.
__global__ void __launch_bounds__(kReduceBlock)
    reduce_adam_kernel(int64_t param_floats, int count, const float* __restrict__ partial,
                       float* params, float* m, float* v, float* grads,
                       const StepParams* __restrict__ sp, const double* loss,
                       const int32_t* correct, double* loss_acc, unsigned long long* correct_acc) {
  const StepParams s = *sp;
  for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < param_floats;
       k += int64_t(gridDim.x) * blockDim.x)
    fused::reduce_adam(k, count, param_floats, partial, params, m, v, s, grads);
  if (blockIdx.x == 0) sum_metrics<kReduceBlock>(loss, correct, count, loss_acc, correct_acc);
}

// What the persistent kernel adds to an image kernel's arguments: the steps and the state
// Adam updates.
struct StepsArgs {
  const StepParams* steps = nullptr;
  int n_steps = 0;
  int count = 0;  // images a step, one block each
  int64_t param_floats = 0;
  float* params = nullptr;  // k.params, written here
  float* m = nullptr;
  float* v = nullptr;
  float* grads = nullptr;
  double* loss_acc = nullptr;
  unsigned long long* correct_acc = nullptr;
};

// Many training steps in one launch: a block per image, and per step the image kernel's phases,
// a grid-wide barrier, the reduce kernel's work spread over every thread of the grid (each
// parameter's sum over the images in image order, then Adam; block 0 the metrics), and a
// barrier before the next step reads the parameters. The same functions on the same values
// as the two kernels, so the same bits. Launched cooperatively, so that every block runs at
// once and the barriers hold; every read of what another block wrote in this launch (the
// partial gradients, the parameters) is a plain coherent load after grid.sync(), never the
// read-only path.
template <bool kShared>
__global__ void __launch_bounds__(FusedEngine::kThreads, 1) steps_kernel(ImageArgs k, StepsArgs s) {
  namespace cg = cooperative_groups;
  cg::grid_group grid = cg::this_grid();
  extern __shared__ float4 shared_arena[];
  const int b = int(blockIdx.x);
  float* a = kShared ? reinterpret_cast<float*>(shared_arena) : k.arena + int64_t(b) * k.arena_floats;
  int32_t* ia = kShared ? reinterpret_cast<int32_t*>(reinterpret_cast<float*>(shared_arena) + k.arena_floats)
                        : k.iarena + int64_t(b) * k.arena_ints;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t all = int64_t(gridDim.x) * blockDim.x;
  for (int i = 0; i < s.n_steps; ++i) {
    k.sp = s.steps + i;
    run_image(k, b, int(threadIdx.x), int(blockDim.x), fused::LocalArena{a, ia},
              [] { __syncthreads(); });
    grid.sync();  // every image's partial gradients, losses and hits written
    const StepParams p = s.steps[i];
    for (int64_t q = first; q < s.param_floats; q += all)
      fused::reduce_adam(q, s.count, s.param_floats, k.partial, s.params, s.m, s.v, p, s.grads);
    if (blockIdx.x == 0)
      sum_metrics<FusedEngine::kThreads>(k.loss, k.correct, s.count, s.loss_acc, s.correct_acc);
    if (i + 1 < s.n_steps) grid.sync();  // the parameters updated, the per-image slots read
  }
}

__global__ void __launch_bounds__(kReduceBlock)
    sum_metrics_kernel(const double* loss, const int32_t* correct, int64_t n, double* loss_acc,
                       unsigned long long* correct_acc) {
  sum_metrics<kReduceBlock>(loss, correct, n, loss_acc, correct_acc);
}

int shared_limit() {
  int device = 0, optin = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return optin;
}

// Images per forward-only launch, and whether the arena lives in shared memory.
struct Layout {
  bool shared = false;
  int eval_chunk = 0;
};

Layout layout_of(const fused::FusedProgram& prog, int max_batch) {
  Layout l;
  const int64_t bytes = prog.arena_bytes();
  // In each block's shared memory where it fits (a cluster keeps a copy in each block).
  l.shared = bytes <= shared_limit();
  const int64_t fits = l.shared ? kMaxEvalChunk : std::max<int64_t>(1, kGlobalArenaBudget / bytes);
  l.eval_chunk = int(std::clamp<int64_t>(fits, max_batch, std::max(max_batch, kMaxEvalChunk)));
  return l;
}

// Blocks per image: a cluster where the device has them, this build's code for the cluster
// kernel is Hopper's (a build for older architectures only, JIT-compiled for the card, has a
// stub there) and the batch leaves SMs idle; the largest size up to the portable 8 of which
// max_batch clusters can be resident at once (a cluster lives inside one GPC, so fewer fit
// than SMs ÷ size), so that a step is one wave. 1 otherwise.
int choose_cluster(int max_batch, int requested, size_t shared) {
  int device = 0, major = 0, sms = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  if (major < 9 || requested == 1) return 1;
  cudaFuncAttributes attrs = {};
  if (cudaFuncGetAttributes(&attrs, image_cluster_kernel) != cudaSuccess || attrs.ptxVersion < 90) {
    (void)cudaGetLastError();
    return 1;
  }
  auto resident = [&](int c) {  // clusters of c blocks that fit at once
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(unsigned(c));
    cfg.blockDim = dim3(FusedEngine::kThreads);
    cfg.dynamicSmemBytes = shared;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = unsigned(c);
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    int clusters = 0;
    if (cudaOccupancyMaxActiveClusters(&clusters, image_cluster_kernel, &cfg) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return clusters;
  };
  if (requested > 1) return resident(std::min(requested, 8)) >= 1 ? std::min(requested, 8) : 1;
  for (int c = std::min(8, sms / std::max(max_batch, 1)); c >= 2; --c)
    if (resident(c) >= max_batch) return c;
  return 1;
}

void launch_images(const ImageArgs& k, int n, int cluster, size_t shared, cudaStream_t s) {
  if (cluster == 1) {
    if (shared)
      image_kernel<true><<<unsigned(n), FusedEngine::kThreads, shared, s>>>(k);
    else
      image_kernel<false><<<unsigned(n), FusedEngine::kThreads, 0, s>>>(k);
    CHECK_LAUNCH();
    return;
  }
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(unsigned(n) * unsigned(cluster));
  cfg.blockDim = dim3(FusedEngine::kThreads);
  cfg.dynamicSmemBytes = shared;
  cfg.stream = s;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeClusterDimension;
  attr[0].val.clusterDim.x = unsigned(cluster);
  attr[0].val.clusterDim.y = 1;
  attr[0].val.clusterDim.z = 1;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  CUDA_CHECK(cudaLaunchKernelEx(&cfg, image_cluster_kernel, k));
}

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", double(bytes) / double(int64_t(1) << 30));
  return buf;
}

class NvtxRange {
 public:
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

// Whether the persistent kernel can run a step's max_batch blocks at once on this device
// (a cooperative launch needs every block resident): its static shared memory beside the
// arena, and blocks per SM × SMs. Raises the kernel's dynamic shared memory limit when the
// arena is in shared memory: to the device's limit less the kernel's static memory, not to
// this arena's size, since the limit belongs to the kernel and another engine's smaller arena
// must not lower it under this one. The path is optional, so a CUDA error here refuses it
// (cleared, and said by describe()) rather than failing the engine.
bool steps_fit(bool shared_arena, size_t shared, int max_batch, int sms) {
  auto refused = [](cudaError_t e) {
    if (e == cudaSuccess) return false;
    cudaGetLastError();  // clear it: the engine goes on with a launch per step
    return true;
  };
  int device = 0, cooperative = 0;
  if (refused(cudaGetDevice(&device)) ||
      refused(cudaDeviceGetAttribute(&cooperative, cudaDevAttrCooperativeLaunch, device)) ||
      !cooperative)
    return false;
  const void* kernel = shared_arena ? reinterpret_cast<const void*>(steps_kernel<true>)
                                    : reinterpret_cast<const void*>(steps_kernel<false>);
  cudaFuncAttributes attrs = {};
  if (refused(cudaFuncGetAttributes(&attrs, kernel))) return false;
  const int64_t room = int64_t(shared_limit()) - int64_t(attrs.sharedSizeBytes);
  if (int64_t(shared) > room) return false;
  if (shared && refused(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             int(room))))
    return false;
  int per_sm = 0;
  if (refused(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel,
                                                            FusedEngine::kThreads, shared)))
    return false;
  return int64_t(per_sm) * sms >= max_batch;
}

}  // namespace

std::string FusedEngine::why_not(const DeviceState&, const fused::FusedProgram& prog,
                                 int max_batch) {
  const Layout l = layout_of(prog, max_batch);
  const int64_t partial = int64_t(max_batch) * prog.param_floats * 4;
  const int64_t arena = l.shared ? 0 : int64_t(l.eval_chunk) * prog.arena_bytes();
  size_t free_bytes = 0, total = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total));
  // Leave a quarter of what is free for the data, the parameters and the other buffers.
  if (partial + arena > int64_t(free_bytes) / 4 * 3)
    return "the per-image gradients and arenas need " + gib(partial + arena) + ", " +
           gib(int64_t(free_bytes)) + " is free";
  return "";
}

FusedEngine::FusedEngine(DeviceState& state, const StepPlan& plan, fused::FusedProgram program,
                         bool graphs, int cluster, int eval_chunk)
    : state_(state), plan_(plan), prog_(std::move(program)), graphs_(graphs) {
  const Layout l = layout_of(prog_, plan_.max_batch);
  shared_arena_ = l.shared;
  const size_t shared = shared_arena_ ? size_t(prog_.arena_bytes()) : 0;
  if (shared) {
    // The limit belongs to the kernel, not to this engine: raise it to the device's (it
    // reserves nothing), so another engine's smaller arena never lowers it under this one.
    const int limit = shared_limit();
    CUDA_CHECK(cudaFuncSetAttribute(image_kernel<true>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, limit));
    CUDA_CHECK(cudaFuncSetAttribute(image_cluster_kernel,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, limit));
  }
  cluster_ = choose_cluster(plan_.max_batch, cluster, shared);
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, device));
  eval_chunk_ = eval_chunk > 0 ? std::max(eval_chunk, plan_.max_batch) : l.eval_chunk;
  fwd_ops_ = DeviceBuffer<FusedOp>(prog_.forward.size(), "the fused program");
  bwd_ops_ = DeviceBuffer<FusedOp>(prog_.backward.size(), "the fused program");
  const cudaStream_t s = state_.stream();
  CUDA_CHECK(cudaMemcpyAsync(fwd_ops_.get(), prog_.forward.data(), fwd_ops_.bytes(),
                             cudaMemcpyHostToDevice, s));
  if (bwd_ops_.size())
    CUDA_CHECK(cudaMemcpyAsync(bwd_ops_.get(), prog_.backward.data(), bwd_ops_.bytes(),
                               cudaMemcpyHostToDevice, s));
  if (!shared_arena_) {
    arena_ = DeviceBuffer<float>(size_t(eval_chunk_) * size_t(prog_.arena_floats), "the fused arenas");
    iarena_ = DeviceBuffer<int32_t>(size_t(eval_chunk_) * size_t(prog_.arena_ints), "the fused arenas");
  }
  partial_ = DeviceBuffer<float>(size_t(plan_.max_batch) * size_t(prog_.param_floats),
                                 "the per-image gradients");
  // Padding between parameter tensors is never written: it stays 0 and sums to 0.
  CUDA_CHECK(cudaMemsetAsync(partial_.get(), 0, partial_.bytes(), s));
  img_loss_ = DeviceBuffer<double>(size_t(eval_chunk_), "the per-image losses");
  img_correct_ = DeviceBuffer<int32_t>(size_t(eval_chunk_), "the per-image hits");
  multi_step_ = cluster_ == 1 && steps_fit(shared_arena_, shared, plan_.max_batch, sms_);
  if (multi_step_) {
    steps_ = DeviceBuffer<StepParams>(kMaxStepsPerLaunch, "the step parameters");
    steps_host_ = PinnedBuffer<StepParams>(2 * kMaxStepsPerLaunch, "the step parameters");
    for (int i = 0; i < 2; ++i) steps_copied_.push_back(new_event(false));
  }
  CUDA_CHECK(cudaStreamSynchronize(s));
}

std::string FusedEngine::describe() const {
  const std::string blocks = cluster_ == 1 ? "one block" : "a cluster of " + std::to_string(cluster_) + " blocks";
  const std::string where = !shared_arena_ ? "global memory"
                            : cluster_ == 1 ? "shared memory"
                                            : "the shared memory of each block (a copy each)";
  return "fused: " + std::to_string(prog_.phases()) + " phases in " + blocks + " of " +
         std::to_string(kThreads) + " threads per image, arena of " +
         std::to_string(prog_.arena_bytes() / 1024) + " KiB in " + where +
         "; gradients summed in image order" +
         (multi_step_ ? "; runs of full steps in one cooperative launch" : "");
}

ImageArgs FusedEngine::step_args(int count) const {
  const StoredSplit& data = state_.split(Split::Train);
  ImageArgs k;
  k.fwd = fwd_ops_.get();
  k.n_fwd = int(fwd_ops_.size());
  k.bwd = bwd_ops_.get();
  k.n_bwd = int(bwd_ops_.size());
  k.arena_floats = prog_.arena_floats;
  k.arena_ints = prog_.arena_ints;
  k.image_size = prog_.image_size;
  k.classes = prog_.classes;
  k.param_floats = prog_.param_floats;
  k.pixels = data.pixels.get();
  k.labels = data.labels.get();
  k.order = state_.order();
  k.sp = state_.step_params();
  k.arena = shared_arena_ ? nullptr : arena_.get();
  k.iarena = shared_arena_ ? nullptr : iarena_.get();
  k.params = state_.params.get();
  k.partial = partial_.get();
  k.loss = img_loss_.get();
  k.correct = img_correct_.get();
  k.grad_scale = 1.0f / float(count);
  return k;
}

void FusedEngine::enqueue_step(int count) {
  const cudaStream_t s = state_.stream();
  const ImageArgs k = step_args(count);
  launch_images(k, count, cluster_, shared_arena_ ? size_t(prog_.arena_bytes()) : 0, s);
  reduce_adam_kernel<<<grid_for(prog_.param_floats, kReduceBlock, 4096), kReduceBlock, 0, s>>>(
      prog_.param_floats, count, partial_.get(), state_.params.get(), state_.m.get(),
      state_.v.get(), state_.grads.get(), state_.step_params(), img_loss_.get(),
      img_correct_.get(), state_.loss_acc(DeviceState::kTrain),
      state_.correct_acc(DeviceState::kTrain));
  CHECK_LAUNCH();
}

void FusedEngine::capture_step() {
  const std::string why =
      capture_graph(state_.stream(), [&] { enqueue_step(plan_.max_batch); }, graph_, exec_);
  if (!why.empty()) {
    graph_failed_ = true;
    graph_note_ = "eager (CUDA graph capture failed: " + why + ")";
    return;
  }
  graph_generation_ = state_.generation();
  graph_note_ = "cuda graph";
}

void FusedEngine::train_step(int64_t begin, int count, float lr_t, const Hyper& h) {
  NvtxRange range("train_step");
  StepParams sp;
  sp.begin = begin;
  sp.lr_t = lr_t;
  sp.beta1 = h.beta1;
  sp.beta2 = h.beta2;
  sp.eps = h.eps;
  state_.write_step_params(sp);
  const bool full = count == plan_.max_batch;
  const bool graph = full && graphs_ && !graph_failed_;
  if (graph && exec_ && graph_generation_ != state_.generation()) {  // stale: buffers replaced
    exec_.reset();
    graph_.reset();
  }
  if (graph && !exec_ && warmed_up_) capture_step();
  if (graph && exec_) {
    CUDA_CHECK(cudaGraphLaunch(exec_, state_.stream()));
  } else {
    enqueue_step(count);
    if (full) warmed_up_ = true;
  }
}

void FusedEngine::launch_steps(int count, int steps) {
  ImageArgs k = step_args(count);
  StepsArgs a;
  a.steps = steps_.get();
  a.n_steps = steps;
  a.count = count;
  a.param_floats = prog_.param_floats;
  a.params = state_.params.get();
  a.m = state_.m.get();
  a.v = state_.v.get();
  a.grads = state_.grads.get();
  a.loss_acc = state_.loss_acc(DeviceState::kTrain);
  a.correct_acc = state_.correct_acc(DeviceState::kTrain);
  void* args[] = {&k, &a};
  const size_t shared = shared_arena_ ? size_t(prog_.arena_bytes()) : 0;
  const void* kernel = shared_arena_ ? reinterpret_cast<const void*>(steps_kernel<true>)
                                     : reinterpret_cast<const void*>(steps_kernel<false>);
  CUDA_CHECK(cudaLaunchCooperativeKernel(kernel, dim3(unsigned(count)), dim3(kThreads), args,
                                         shared, state_.stream()));
}

void FusedEngine::train_steps(int count, std::span<const StepParams> steps) {
  if (steps.empty()) return;
  if (!multi_step_ || count != plan_.max_batch || steps.size() == 1) {
    for (const StepParams& sp : steps) {
      Hyper h;
      h.beta1 = sp.beta1;
      h.beta2 = sp.beta2;
      h.eps = sp.eps;
      train_step(sp.begin, count, sp.lr_t, h);
    }
    return;
  }
  NvtxRange range("train_steps");
  for (size_t done = 0; done < steps.size(); done += kMaxStepsPerLaunch) {
    const int n = int(std::min<size_t>(kMaxStepsPerLaunch, steps.size() - done));
    const size_t slot = steps_slot_++ % 2;
    // The slot's previous copy must have read it before it is overwritten.
    CUDA_CHECK(cudaEventSynchronize(steps_copied_[slot]));
    StepParams* host = steps_host_.get() + slot * kMaxStepsPerLaunch;
    std::copy(steps.begin() + ptrdiff_t(done), steps.begin() + ptrdiff_t(done) + n, host);
    // Stream-ordered after the previous launch, which has read steps_ by then.
    CUDA_CHECK(cudaMemcpyAsync(steps_.get(), host, size_t(n) * sizeof(StepParams),
                               cudaMemcpyHostToDevice, state_.stream()));
    CUDA_CHECK(cudaEventRecord(steps_copied_[slot], state_.stream()));
    launch_steps(count, n);
  }
}

void FusedEngine::enqueue_forward(const uint8_t* pixels, const uint8_t* labels, int64_t first,
                                  int n, float* probs) {
  ImageArgs k;
  k.fwd = fwd_ops_.get();
  k.n_fwd = int(fwd_ops_.size());
  k.arena_floats = prog_.arena_floats;
  k.arena_ints = prog_.arena_ints;
  k.image_size = prog_.image_size;
  k.classes = prog_.classes;
  k.param_floats = prog_.param_floats;
  k.pixels = pixels;
  k.labels = labels;
  k.first = first;
  k.arena = shared_arena_ ? nullptr : arena_.get();
  k.iarena = shared_arena_ ? nullptr : iarena_.get();
  k.params = state_.params.get();
  k.loss = labels ? img_loss_.get() : nullptr;
  k.correct = labels ? img_correct_.get() : nullptr;
  k.probs = probs;
  // A chunk of at least an image per SM fills the card with one block per image; a cluster
  // would only add copies of every write (the same bits either way).
  const int cluster = n >= sms_ ? 1 : cluster_;
  launch_images(k, n, cluster, shared_arena_ ? size_t(prog_.arena_bytes()) : 0, state_.stream());
}

void FusedEngine::evaluate(const StoredSplit& data, int64_t total) {
  NvtxRange range("evaluate");
  state_.reset_metrics(DeviceState::kEval);
  for (int64_t b = 0; b < total; b += eval_chunk_) {
    const int n = int(std::min<int64_t>(eval_chunk_, total - b));
    enqueue_forward(data.pixels.get(), data.labels.get(), b, n, nullptr);
    sum_metrics_kernel<<<1, kReduceBlock, 0, state_.stream()>>>(
        img_loss_.get(), img_correct_.get(), n, state_.loss_acc(DeviceState::kEval),
        state_.correct_acc(DeviceState::kEval));
    CHECK_LAUNCH();
  }
}

void FusedEngine::predict(const ImageSet& images, std::span<float> probabilities) {
  if (images.count == 0) return;
  NvtxRange range("predict");
  const cudaStream_t s = state_.stream();
  const int classes = prog_.classes;
  DeviceBuffer<uint8_t> pixels(images.pixels.size(), "the images to predict");
  DeviceBuffer<float> probs(size_t(eval_chunk_) * size_t(classes), "the probabilities");
  CUDA_CHECK(cudaMemcpyAsync(pixels.get(), images.pixels.data(), images.pixels.size(),
                             cudaMemcpyHostToDevice, s));
  for (int64_t b = 0; b < images.count; b += eval_chunk_) {
    const int n = int(std::min<int64_t>(eval_chunk_, images.count - b));
    enqueue_forward(pixels.get(), nullptr, b, n, probs.get());
    CUDA_CHECK(cudaMemcpyAsync(probabilities.data() + b * classes, probs.get(),
                               size_t(n) * size_t(classes) * sizeof(float),
                               cudaMemcpyDeviceToHost, s));
  }
  CUDA_CHECK(cudaStreamSynchronize(s));
}

}  // namespace splitconv::gpu
