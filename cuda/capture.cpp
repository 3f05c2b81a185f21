// Stream capture into a CUDA graph (capture.h).
#include "capture.h"

#include <exception>

namespace splitconv::gpu {

std::string capture_graph(cudaStream_t stream, const std::function<void()>& enqueue, Graph& graph,
                          GraphExec& exec) {
  exec.reset();
  graph.reset();
  auto give_up = [&](const std::string& why) {
    cudaGraph_t partial = nullptr;
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    if (cudaStreamIsCapturing(stream, &capturing) == cudaSuccess &&
        capturing != cudaStreamCaptureStatusNone) {
      (void)cudaStreamEndCapture(stream, &partial);
    }
    Graph discard(partial);
    (void)cudaGetLastError();  // capture errors are not sticky; clear the last one
    exec.reset();
    graph.reset();
    return why;
  };
  CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  try {
    enqueue();
  } catch (const std::exception& e) {
    return give_up(e.what());
  }
  cudaGraph_t captured = nullptr;
  cudaError_t err = cudaStreamEndCapture(stream, &captured);
  if (err != cudaSuccess) return give_up(std::string("cudaStreamEndCapture: ") + cudaGetErrorString(err));
  graph = Graph(captured);
  cudaGraphExec_t instance = nullptr;
  err = cudaGraphInstantiate(&instance, graph, 0);
  if (err != cudaSuccess) return give_up(std::string("cudaGraphInstantiate: ") + cudaGetErrorString(err));
  exec = GraphExec(instance);
  return "";
}

}  // namespace splitconv::gpu
