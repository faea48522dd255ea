#pragma once
// Error checks for CUDA runtime and cuBLAS calls: a failure throws ld::Error naming the call and
// the driver's message (an asynchronous kernel fault surfaces at the next checked call).
#include <cuda_runtime.h>

#include "core/error.hpp"

#define LD_CUDA_CHECK(expr)                                                                    \
  do {                                                                                         \
    cudaError_t ld_cuda_err_ = (expr);                                                         \
    if (ld_cuda_err_ != cudaSuccess)                                                           \
      LD_FAIL("CUDA error in ", #expr, ": ", cudaGetErrorName(ld_cuda_err_), " (",             \
              cudaGetErrorString(ld_cuda_err_), ")");                                          \
  } while (0)

// After a kernel launch: a bad configuration is reported here, a fault in the kernel later.
#define LD_CUDA_CHECK_LAUNCH() LD_CUDA_CHECK(cudaGetLastError())
