// Domains that need no model: built from an experiment's spec text alone, for tools that show
// candidates (inspect) without loading a KV-cache evaluation context.
#ifndef FECSEARCH_SEARCH_DOMAINS_FACTORY_H_
#define FECSEARCH_SEARCH_DOMAINS_FACTORY_H_

#include <memory>
#include <string>

#include "search/domain.h"

namespace fecsearch {

// The programs or user-defined domain of `spec_text` (an experiments.spec), or null when the
// domain needs a model (KV-cache) or cannot be built here (e.g. its context files are gone).
std::unique_ptr<Domain> DomainWithoutModel(const std::string& spec_text);

}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_DOMAINS_FACTORY_H_
