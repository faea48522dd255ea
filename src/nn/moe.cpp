#include "nn/moe.hpp"

#include "core/error.hpp"

namespace ld::nn {

void validate(const MoeConfig&) {}

MoeFfn::MoeFfn(int64_t, const MoeConfig& config, const ExpertFactory&, Generator&) : config_(config), dim_(0) {
  LD_FAIL("MoE is not built yet");
}

MoeOutput MoeFfn::forward(const Tensor&) const { LD_FAIL("MoE is not built yet"); }

FeedForward& MoeFfn::expert(int64_t) const { LD_FAIL("MoE is not built yet"); }

MixtralExpert::MixtralExpert(int64_t, int64_t, Generator&) { LD_FAIL("MoE is not built yet"); }

Tensor MixtralExpert::forward(const Tensor&) const { LD_FAIL("MoE is not built yet"); }

}  // namespace ld::nn
