#pragma once
// The MPI communicator (built with LIANDAN_MPI). One progress thread per process makes every MPI
// call (MPI is initialised MPI_THREAD_SERIALIZED): operations queue in the order the caller issues
// them; collectives run there one after another (Open MPI's tuned algorithms, which also progress
// the transfers in flight), point-to-point transfers start non-blocking and are polled, so a stage
// of a pipeline can post its send and its receive together without a deadlock.
#include <memory>

#include "dist/communicator.hpp"

namespace ld::dist {

class MpiEngine;

// Initialises MPI (MPI_Init_thread, serialized) and starts the progress thread; returns the world
// communicator. Called once by dist::init.
std::unique_ptr<Communicator> start_mpi(int* argc, char*** argv);
// Stops the progress thread and finalises MPI. Every communicator must be destroyed first.
void stop_mpi();
// MPI_Abort on the world.
[[noreturn]] void abort_mpi(int exit_code);

}  // namespace ld::dist
