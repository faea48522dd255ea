#pragma once
// The ranks of a job as a grid dp x tp x pp (Megatron's layout): tensor parallel innermost, so the
// ranks of a tensor-parallel group are neighbours (one machine, where the traffic is heaviest),
// pipeline stages outermost (across machines), data parallel over what is left:
//   world rank = (pp_rank * dp + dp_rank) * tp + tp_rank
// Each rank belongs to one group of each kind; a group of size 1 is a LocalCommunicator.
#include <memory>

#include "dist/communicator.hpp"

namespace ld::dist {

struct ProcessGrid {
  int dp = 1, tp = 1, pp = 1;
  int dp_rank = 0, tp_rank = 0, pp_rank = 0;
  std::unique_ptr<Communicator> dp_group, tp_group, pp_group;
};

// Splits `world` (collective). tp * pp must divide the world size; the error names the keys.
ProcessGrid make_process_grid(Communicator& world, int tp, int pp);

}  // namespace ld::dist
