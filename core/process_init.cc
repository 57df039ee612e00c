// Process-wide settings.
#include "core/process_init.h"

#include "absl/synchronization/mutex.h"

namespace fecsearch {

void InitProcess() { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); }

}  // namespace fecsearch
