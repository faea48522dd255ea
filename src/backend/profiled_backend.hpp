#pragma once
// backend_for()'s side of KernelProfile (kernel_profile.hpp).
namespace ld {

class Backend;
class KernelProfile;

// The profile being recorded, or null.
KernelProfile* active_kernel_profile();
// real behind a wrapper that times each call into the active profile (and only forwards when none
// is). One wrapper per backend, kept for the process's life: references handed out stay valid.
Backend& profiled_backend(Backend& real);

}  // namespace ld
