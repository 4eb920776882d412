// `k5 forward <component>`: the parent of the component-level commands (../shared/contracts/forward.md).
#include "cli/command.h"

namespace {
const bool registered = [] {
  k5::cli::register_parent("forward", "run one component on tensors from a safetensors file (see contracts)");
  return true;
}();
}  // namespace
