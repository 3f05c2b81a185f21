// Capturing work enqueued on a stream as a CUDA graph, for the engines that replay a step.
#pragma once
#include <functional>
#include <string>

#include "resources.h"

namespace splitconv::gpu {

// Records what enqueue() puts on `stream` and instantiates it into graph/exec. On a failure
// (a library call that cannot be captured, an exception from enqueue) the capture is ended and
// discarded, the error cleared, graph/exec left empty, and the reason returned; "" on success.
std::string capture_graph(cudaStream_t stream, const std::function<void()>& enqueue, Graph& graph,
                          GraphExec& exec);

}  // namespace splitconv::gpu
