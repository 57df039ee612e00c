#include "search/domains/factory.h"

#include "search/domains/programs/program_domain.h"
#include "search/domains/user_domain.h"
#include "search/experiment.h"

namespace fecsearch {

std::unique_ptr<Domain> DomainWithoutModel(const std::string& spec_text) {
  auto loaded = ParseExperiment(spec_text, "experiments.spec");
  if (!loaded.ok()) return nullptr;
  const ExperimentSpec& spec = loaded->spec;
  switch (spec.search_space().representation()) {
    case SearchSpaceSpec::PROGRAM: {
      auto d = programs::ProgramDomain::Create(spec, spec.fec());
      if (d.ok()) return std::move(*d);
      return nullptr;
    }
    case SearchSpaceSpec::USER_DEFINED: {
      auto d = UserDomain::Create(spec);
      if (d.ok()) return std::move(*d);
      return nullptr;
    }
    default: return nullptr;
  }
}

}  // namespace fecsearch
