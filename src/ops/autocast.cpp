#include "ops/autocast.hpp"

#include "core/error.hpp"

namespace ld::ops {

namespace {
thread_local ComputePrecision current_precision = ComputePrecision::f32;
}  // namespace

ComputePrecision autocast_precision() { return current_precision; }

ComputePrecision compute_precision_from_name(std::string_view name) {
  if (name == "fp32") return ComputePrecision::f32;
  if (name == "bf16") return ComputePrecision::bf16;
  if (name == "fp16") return ComputePrecision::fp16;
  LD_FAIL("precision \"", name, "\" is not one of fp32, bf16, fp16");
}

std::string_view compute_precision_name(ComputePrecision p) {
  switch (p) {
    case ComputePrecision::bf16: return "bf16";
    case ComputePrecision::fp16: return "fp16";
    case ComputePrecision::f32: break;
  }
  return "fp32";
}

AutocastScope::AutocastScope(ComputePrecision precision) : previous_(current_precision) {
  current_precision = precision;
}

AutocastScope::~AutocastScope() { current_precision = previous_; }

}  // namespace ld::ops
