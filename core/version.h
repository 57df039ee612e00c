// Version strings. kEvaluatorVersion changes whenever evaluation semantics change, which
// invalidates cached fitness values (it is part of every context fingerprint).
#ifndef FECSEARCH_CORE_VERSION_H_
#define FECSEARCH_CORE_VERSION_H_

namespace fecsearch {

inline constexpr char kVersion[] = "0.1.0";
inline constexpr char kEvaluatorVersion[] = "fecsearch-evaluator-5";

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_VERSION_H_
