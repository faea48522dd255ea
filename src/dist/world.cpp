#include "dist/world.hpp"

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "core/error.hpp"
#include "dist/local_communicator.hpp"
#ifdef LIANDAN_HAVE_MPI
#include "dist/mpi_communicator.hpp"
#endif

namespace ld::dist {

namespace {

std::unique_ptr<Communicator>& world_slot() {
  static std::unique_ptr<Communicator> world;
  return world;
}

bool mpi_started = false;

int env_int(const char* name) {
  const char* value = std::getenv(name);
  return value ? std::atoi(value) : 0;
}

}  // namespace

bool built_with_mpi() {
#ifdef LIANDAN_HAVE_MPI
  return true;
#else
  return false;
#endif
}

int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", "SLURM_NTASKS"})
    if (const int n = env_int(name); n > 0) return n;
  return 1;
}

void init(int* argc, char*** argv) {
  if (world_slot()) return;
  // Launched by mpirun (even with -np 1) or srun: the launcher's environment says so.
  const bool launched = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") ||
                        std::getenv("PMI_RANK") || launcher_world_size() > 1;
  if (launched) {
#ifdef LIANDAN_HAVE_MPI
    world_slot() = start_mpi(argc, argv);
    mpi_started = true;
    return;
#else
    LD_CHECK(launcher_world_size() <= 1, "this process was started as one of ", launcher_world_size(),
             " ranks, but this liandan was built without MPI (configure with -DLIANDAN_MPI=ON and install "
             "libopenmpi-dev)");
#endif
  }
  world_slot() = std::make_unique<LocalCommunicator>();
}

void finalize() {
  world_slot().reset();
#ifdef LIANDAN_HAVE_MPI
  if (mpi_started) stop_mpi();
#endif
  mpi_started = false;
}

Communicator& world() {
  if (!world_slot()) world_slot() = std::make_unique<LocalCommunicator>();
  return *world_slot();
}

int world_rank() { return world().rank(); }
int world_size() { return world().size(); }
bool is_main_rank() { return world_rank() == 0; }

void abort_job(const std::string& message, int exit_code) {
  const int rank = world_slot() ? world_slot()->rank() : 0;
  const int size = world_slot() ? world_slot()->size() : 1;
  if (size > 1)
    std::fprintf(stderr, "liandan: rank %d of %d: %s\n", rank, size, message.c_str());
  else
    std::fprintf(stderr, "liandan: %s\n", message.c_str());
  std::fflush(stderr);
#ifdef LIANDAN_HAVE_MPI
  if (mpi_started) abort_mpi(exit_code);
#endif
  std::_Exit(exit_code);
}

}  // namespace ld::dist
