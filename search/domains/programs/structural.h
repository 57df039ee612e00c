// Dead-code removal and canonical register renaming (docs/PROGRAMS.md section 5): the
// structural form two programs share only if they compute the same function.
#ifndef FECSEARCH_SEARCH_DOMAINS_PROGRAMS_STRUCTURAL_H_
#define FECSEARCH_SEARCH_DOMAINS_PROGRAMS_STRUCTURAL_H_

#include <vector>

#include "protos/program.pb.h"
#include "search/domains/programs/program.h"

namespace fecsearch {
namespace programs {

// Per component, whether each instruction is live. `program` must be valid for `shape`.
std::vector<std::vector<bool>> LiveInstructions(const Program& program, const Shape& shape);
int CountLive(const Program& program, const Shape& shape);
// The live instructions only (NO_OPs dropped), registers other than s0, s1, v0 renamed in
// order of first mention, unused fields cleared, operands of commutative operations ordered.
Program StructuralForm(const Program& program, const Shape& shape);

}  // namespace programs
}  // namespace fecsearch

#endif  // FECSEARCH_SEARCH_DOMAINS_PROGRAMS_STRUCTURAL_H_
