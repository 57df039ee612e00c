// A worker backend for a user-defined domain (docs/DOMAINS.md): serves EvaluateGenes and
// ProbeGenes by running the domain's evaluator and probe commands on this machine.
#ifndef FECSEARCH_WORKERS_DOMAIN_BACKEND_H_
#define FECSEARCH_WORKERS_DOMAIN_BACKEND_H_

#include <memory>

#include "search/domains/user_domain.h"
#include "workers/evaluation_backend.h"

namespace fecsearch {

// `domain` must have an evaluator command; its probe (a command) is served if it has one.
std::unique_ptr<EvaluationBackend> MakeUserDomainBackend(std::unique_ptr<UserDomain> domain);
// Any other in-process domain (the programs domain): serves Evaluate; probing stays with the
// controller.
std::unique_ptr<EvaluationBackend> MakeDomainBackend(std::unique_ptr<Domain> domain);

}  // namespace fecsearch

#endif  // FECSEARCH_WORKERS_DOMAIN_BACKEND_H_
