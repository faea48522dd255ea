#pragma once
#include <cstdint>
#include <string>

namespace ld {

enum class DeviceKind : uint8_t { cpu, cuda };

struct Device {
  DeviceKind kind = DeviceKind::cpu;
  int index = 0;
  bool operator==(const Device&) const = default;
  std::string str() const { return kind == DeviceKind::cpu ? "cpu" : "cuda:" + std::to_string(index); }
};

inline constexpr Device kCPU{DeviceKind::cpu, 0};

}  // namespace ld
