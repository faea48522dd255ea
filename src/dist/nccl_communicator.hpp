#pragma once
// The NCCL communicator (built with LIANDAN_NCCL, which defines LIANDAN_HAVE_NCCL): the collectives
// between GPUs, one CUDA device per rank. Every buffer passed to it is DEVICE memory on that rank's
// device (cudaMalloc); host pointers are an error NCCL reports from wait().
//
// Bootstrap. NCCL's ranks find each other through an ncclUniqueId that rank 0 makes and every other
// rank must receive: make_nccl_communicator() broadcasts it over an existing host communicator (the
// MPI world under mpirun, or the local one for a single rank), so the NCCL communicator has the
// same ranks, in the same order, as the one it came from.
//
// Streams and completion. Each communicator owns one CUDA stream; an *_async call enqueues the NCCL
// call there and returns at once, and the Work's wait() polls a CUDA event recorded after it
// together with ncclCommGetAsyncError, so a failed peer turns into an ld::Error instead of a hang.
// Operations complete in the order they were issued. Kernels of other streams that produce or
// consume the buffers must be ordered by the caller (e.g. cudaDeviceSynchronize / events).
//
// Point-to-point. NCCL has no tags and a lone ncclSend blocks until its ncclRecv runs, so send_async
// and recv_async are held back and issued together in one ncclGroupStart/End when anything waits on
// them or when the next collective is issued: a stage that posts its send and its receive before
// waiting cannot deadlock (as with MPI). Transfers between two ranks match in the order posted; the
// tag is ignored. Sending to one's own rank works. Unlike MPI, a send and its receive must sit at the
// same place in the two ranks' sequences of collectives (the GPU runs each rank's stream in order),
// and a transfer nobody waits on and no collective follows is never issued.
//
// Failure. After an NCCL error the communicator is aborted (ncclCommAbort) when destroyed rather
// than destroyed cleanly, since its peers may be gone.
#include <memory>
#include <string>

#include "dist/communicator.hpp"

namespace ld::dist {

// The CUDA devices this process sees: their count, or 0 and why there are none (no driver, no
// device, CUDA_VISIBLE_DEVICES empty).
struct CudaDevices {
  int count = 0;
  std::string problem;  // empty when count > 0
};
CudaDevices cuda_devices();

// The NCCL communicator over the ranks of `bootstrap` (host buffers; MPI or local), this rank on
// CUDA device `device`. Collective over `bootstrap`: every rank calls it; when any rank has no
// usable device, every rank throws the same ld::Error (no rank is left waiting). `bootstrap` must
// outlive the result (split() may use it).
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device);

}  // namespace ld::dist
