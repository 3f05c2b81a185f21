// The harness's arguments live in the public API (no CUDA types): splitconv/bench.h.
#pragma once
#include "splitconv/bench.h"
