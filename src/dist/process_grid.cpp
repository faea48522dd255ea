#include "dist/process_grid.hpp"

#include "core/error.hpp"

namespace ld::dist {

ProcessGrid make_process_grid(Communicator& world, int tp, int pp) {
  const int n = world.size();
  LD_CHECK(tp >= 1 && pp >= 1 && n % (tp * pp) == 0, "dist.tp=", tp, " x dist.pp=", pp, " does not divide the ", n,
           " ranks of this job (data parallel takes what they leave: ", n, " / (tp x pp) must be whole)");
  ProcessGrid g;
  g.tp = tp, g.pp = pp, g.dp = n / (tp * pp);
  const int r = world.rank();
  g.tp_rank = r % tp;
  g.dp_rank = (r / tp) % g.dp;
  g.pp_rank = r / (tp * g.dp);
  // Colors name the group: ranks equal in the other two coordinates share it.
  g.tp_group = world.split(g.pp_rank * g.dp + g.dp_rank, g.tp_rank);
  g.dp_group = world.split(g.pp_rank * tp + g.tp_rank, g.dp_rank);
  g.pp_group = world.split(g.dp_rank * tp + g.tp_rank, g.pp_rank);
  return g;
}

}  // namespace ld::dist
