// Process-wide settings every fecsearch binary applies first.
#ifndef FECSEARCH_CORE_PROCESS_INIT_H_
#define FECSEARCH_CORE_PROCESS_INIT_H_

namespace fecsearch {

// Debian builds Abseil with assertions on, which turns on absl::Mutex's deadlock detector:
// a graph update on every lock (~100 ns, measured in hashing/fec_benchmark). Binaries turn it
// off; tests keep it.
void InitProcess();

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_PROCESS_INIT_H_
