#pragma once
// The process's place in a job. liandan runs as one process, or as N processes started by
// `mpirun -np N` / `srun` (Open MPI); init() tells which from the launcher's environment and opens
// the world communicator accordingly: MPI when launched so (an error when this build has no MPI),
// local otherwise. Only rank 0 prints progress and writes run folders, metrics and checkpoints.
//
// Failures: an error on one rank must not leave the others waiting in a collective. abort_job()
// prints "rank R: <message>" on stderr and ends every rank (MPI_Abort); mpirun reports a rank that
// died without it (killed, crashed) and ends the others itself.
#include <string>

#include "dist/communicator.hpp"

namespace ld::dist {

// Reads the launcher's environment and, under mpirun/srun, initialises MPI. Call once, first thing
// in main (MPI may rewrite argc/argv). Idempotent.
void init(int* argc, char*** argv);
// Finalises MPI (when init started it). Call before a normal exit.
void finalize();

// The world communicator: every rank of the job (a LocalCommunicator when not launched by MPI or
// before init()).
Communicator& world();
int world_rank();
int world_size();
bool is_main_rank();  // world_rank() == 0

// Whether this build can talk MPI (LIANDAN_MPI).
bool built_with_mpi();
// The rank count a launcher announced in the environment (OMPI_COMM_WORLD_SIZE, PMI_SIZE,
// PMIX_SIZE, SLURM_NTASKS under srun), 1 when none.
int launcher_world_size();

// Prints "liandan: rank R of N: message" on stderr and ends the whole job with exit_code.
[[noreturn]] void abort_job(const std::string& message, int exit_code = 1);

}  // namespace ld::dist
