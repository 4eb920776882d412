// What the machine's memory allows, for choices that trade speed for memory (the VAE's frame-by-frame decode).
#pragma once

#include <cstdint>

namespace k5 {

// MemAvailable from /proc/meminfo (what can be allocated without swapping), or -1 when unknown.
int64_t available_memory_bytes();

}  // namespace k5
