// User-defined domains: the gene space, the JSON protocol, the context fingerprint.
#include "search/domains/user_domain.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "core/paths.h"
#include "core/text_proto.h"
#include "core/subprocess.h"
#include "grpcpp/grpcpp.h"
#include "hashing/functional_hasher.h"
#include "protos/worker.grpc.pb.h"
#include "xxhash.h"

namespace fecsearch {
namespace {

constexpr char kProtocol[] = "fecsearch.domain.v1";

bool IsIdentifier(const std::string& s) {
  if (s.empty() || !(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  return true;
}

// Number of values of an int gene.
int64_t IntCount(const IntRangeGene& r) { return (r.max() - r.min()) / r.step() + 1; }

// The value as the text conditions are written in.
std::string ValueText(const GeneValue& v) {
  switch (v.value_case()) {
    case GeneValue::kIntValue: return absl::StrCat(v.int_value());
    case GeneValue::kFloatValue: return absl::StrCat(v.float_value());
    case GeneValue::kStringValue: return v.string_value();
    default: return "";
  }
}

bool ConditionHolds(const GeneCondition& c, const GeneValue& parent) {
  for (const std::string& want : c.values()) {
    if (parent.value_case() == GeneValue::kStringValue) {
      if (parent.string_value() == want) return true;
    } else {
      double w;
      if (!absl::SimpleAtod(want, &w)) continue;
      const double v = parent.value_case() == GeneValue::kIntValue ? static_cast<double>(parent.int_value())
                                                                   : parent.float_value();
      if (v == w) return true;
    }
  }
  return false;
}

// Standard normal from the portable generator (Box-Muller).
double Normal(Rng& rng) {
  const double u1 = std::max(rng.Real(), 1e-300), u2 = rng.Real();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * M_PI * u2);
}

// Canonical bits of a double: -0 as +0.
uint64_t CanonicalBits(double v) {
  if (v == 0) v = 0;
  uint64_t b;
  std::memcpy(&b, &v, 8);
  return b;
}

std::string Hex128(XXH128_hash_t h) { return absl::StrFormat("%016x%016x", h.high64, h.low64); }

}  // namespace

nlohmann::json GeneJson(const GeneValue& v) {
  switch (v.value_case()) {
    case GeneValue::kIntValue: return v.int_value();
    case GeneValue::kFloatValue: return v.float_value();
    case GeneValue::kStringValue: return v.string_value();
    default: return nullptr;
  }
}

nlohmann::json GenesJson(const Candidate& c) {
  nlohmann::json genes = nlohmann::json::object();
  for (const GeneValue& g : c.genes().genes()) genes[g.name()] = GeneJson(g);
  return genes;
}

absl::Status ValidateUserDomain(const UserDomainSpec& spec, const std::string& prefix) {
  auto fail = [&](const std::string& field, const std::string& message) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, ".", field, ": ", message));
  };
  static const std::regex kName("[A-Za-z0-9_.-]+");
  if (!spec.has_name() || !std::regex_match(spec.name(), kName)) {
    return fail("name", absl::StrCat("'", spec.name(), "' must be letters, digits, '_', '.' or '-'"));
  }
  if (spec.genes_size() == 0) return fail("genes", "declare at least one gene");
  std::map<std::string, const GeneSpec*> declared;
  for (int i = 0; i < spec.genes_size(); ++i) {
    const GeneSpec& g = spec.genes(i);
    const std::string f = absl::StrCat("genes[", i, "]");
    if (!IsIdentifier(g.name())) return fail(f + ".name", absl::StrCat("'", g.name(), "' is not an identifier ([A-Za-z_][A-Za-z0-9_]*)"));
    if (declared.count(g.name())) return fail(f + ".name", absl::StrCat("'", g.name(), "' is declared twice"));
    switch (g.type_case()) {
      case GeneSpec::kCategorical: {
        if (g.categorical().values_size() == 0) return fail(f + ".categorical.values", "is empty");
        std::set<std::string> seen;
        for (const std::string& v : g.categorical().values()) {
          if (!seen.insert(v).second) return fail(f + ".categorical.values", absl::StrCat("'", v, "' is listed twice"));
        }
        break;
      }
      case GeneSpec::kIntRange: {
        const IntRangeGene& r = g.int_range();
        if (!r.has_min() || !r.has_max()) return fail(f + ".int_range", "needs min and max");
        if (r.min() > r.max()) return fail(f + ".int_range", absl::StrCat("empty range: min ", r.min(), " > max ", r.max()));
        if (r.step() <= 0) return fail(f + ".int_range.step", absl::StrCat(r.step(), " must be positive"));
        break;
      }
      case GeneSpec::kFloatRange: {
        const FloatRangeGene& r = g.float_range();
        if (!r.has_min() || !r.has_max()) return fail(f + ".float_range", "needs min and max");
        if (!std::isfinite(r.min()) || !std::isfinite(r.max())) return fail(f + ".float_range", "min and max must be finite");
        if (r.min() > r.max()) return fail(f + ".float_range", absl::StrCat("empty range: min ", r.min(), " > max ", r.max()));
        if (r.scale() == FloatRangeGene::LOG && r.min() <= 0) return fail(f + ".float_range.min", "a LOG range needs min > 0");
        if (r.scale() == FloatRangeGene::SCALE_UNSPECIFIED) return fail(f + ".float_range.scale", "must be LINEAR or LOG");
        break;
      }
      default:
        return fail(f, absl::StrCat("gene '", g.name(), "' needs a type: categorical, int_range or float_range"));
    }
    if (g.has_active_if()) {
      const GeneCondition& c = g.active_if();
      auto parent = declared.find(c.gene());
      if (parent == declared.end()) {
        return fail(f + ".active_if.gene", absl::StrCat("'", c.gene(), "' is not a gene declared before '", g.name(), "'"));
      }
      if (c.values_size() == 0) return fail(f + ".active_if.values", "is empty");
      const GeneSpec& p = *parent->second;
      for (int k = 0; k < c.values_size(); ++k) {
        const std::string& v = c.values(k);
        const std::string vf = absl::StrCat(f, ".active_if.values[", k, "]");
        if (p.has_categorical()) {
          const auto& vals = p.categorical().values();
          if (std::find(vals.begin(), vals.end(), v) == vals.end()) {
            return fail(vf, absl::StrCat("'", v, "' is not a value of '", p.name(), "' (", absl::StrJoin(vals, ", "), ")"));
          }
        } else {
          double d;
          if (!absl::SimpleAtod(v, &d)) return fail(vf, absl::StrCat("'", v, "' is not a number ('", p.name(), "' is numeric)"));
          const bool in = p.has_int_range() ? d >= p.int_range().min() && d <= p.int_range().max() &&
                                                  std::fmod(d - p.int_range().min(), p.int_range().step()) == 0
                                            : d >= p.float_range().min() && d <= p.float_range().max();
          if (!in) return fail(vf, absl::StrCat(v, " is not a value '", p.name(), "' can take"));
        }
      }
    }
    declared[g.name()] = &g;
  }
  if (spec.objectives_size() == 0) return fail("objectives", "declare at least one objective");
  std::set<std::string> objectives;
  for (int i = 0; i < spec.objectives_size(); ++i) {
    const DomainObjective& o = spec.objectives(i);
    const std::string f = absl::StrCat("objectives[", i, "]");
    if (o.name().empty()) return fail(f + ".name", "is required");
    if (!objectives.insert(o.name()).second) return fail(f + ".name", absl::StrCat("'", o.name(), "' is declared twice"));
    if (o.direction() == DomainObjective::DIRECTION_UNSPECIFIED) return fail(f + ".direction", "must be MINIMIZE or MAXIMIZE");
    if (o.has_hypervolume_reference() && !std::isfinite(o.hypervolume_reference())) {
      return fail(f + ".hypervolume_reference", "must be finite");
    }
    if (!std::isfinite(o.weight())) return fail(f + ".weight", "must be finite");
  }
  for (const auto& [field, cmd] : {std::make_pair("evaluator", &spec.evaluator()), std::make_pair("probe", &spec.probe())}) {
    const bool present = std::string(field) == "evaluator" ? spec.has_evaluator() : spec.has_probe();
    if (!present) continue;
    if (cmd->argv_size() == 0 || cmd->argv(0).empty()) return fail(absl::StrCat(field, ".argv"), "names no program");
    if (!(cmd->timeout_seconds() > 0)) return fail(absl::StrCat(field, ".timeout_seconds"), "must be positive");
  }
  if (spec.has_probe() && !spec.probe_worker().empty()) {
    return fail("probe_worker", "give either probe (a command) or probe_worker, not both");
  }
  return absl::OkStatus();
}

// ---- the gene space ---------------------------------------------------------------------

GeneValue GeneSpace::RandomValue(const GeneSpec& g, Rng& rng) const {
  GeneValue v;
  v.set_name(g.name());
  if (g.has_categorical()) {
    v.set_string_value(g.categorical().values(rng.Uniform(g.categorical().values_size())));
  } else if (g.has_int_range()) {
    const IntRangeGene& r = g.int_range();
    const int64_t n = IntCount(r);
    const int64_t k = n > (int64_t{1} << 30) ? static_cast<int64_t>(rng.Next() % static_cast<uint64_t>(n)) : rng.Uniform(static_cast<int>(n));
    v.set_int_value(r.min() + k * r.step());
  } else {
    const FloatRangeGene& r = g.float_range();
    if (r.scale() == FloatRangeGene::LOG) {
      v.set_float_value(std::exp(std::log(r.min()) + rng.Real() * (std::log(r.max()) - std::log(r.min()))));
    } else {
      v.set_float_value(r.min() + rng.Real() * (r.max() - r.min()));
    }
    v.set_float_value(std::clamp(v.float_value(), r.min(), r.max()));
  }
  return v;
}

GeneValue GeneSpace::MutateValue(const GeneSpec& g, const GeneValue& v, Rng& rng) const {
  GeneValue out = v;
  if (g.has_categorical()) {
    const int n = g.categorical().values_size();
    int current = 0;
    for (int i = 0; i < n; ++i)
      if (g.categorical().values(i) == v.string_value()) current = i;
    const int k = rng.Uniform(n - 1);
    out.set_string_value(g.categorical().values(k >= current ? k + 1 : k));
  } else if (g.has_int_range()) {
    const IntRangeGene& r = g.int_range();
    const int64_t n = IntCount(r), current = (v.int_value() - r.min()) / r.step();
    int64_t k;
    if (rng.Bernoulli(0.5)) {
      // A neighbour.
      k = current == 0 ? 1 : current == n - 1 ? n - 2 : (rng.Bernoulli(0.5) ? current + 1 : current - 1);
    } else {
      k = static_cast<int64_t>(rng.Next() % static_cast<uint64_t>(n - 1));
      if (k >= current) ++k;
    }
    out.set_int_value(r.min() + k * r.step());
  } else {
    // A Gaussian step of a tenth of the range, in the gene's scale, reflected into the range.
    const FloatRangeGene& r = g.float_range();
    const bool log = r.scale() == FloatRangeGene::LOG;
    const double lo = log ? std::log(r.min()) : r.min(), hi = log ? std::log(r.max()) : r.max();
    double x = log ? std::log(v.float_value()) : v.float_value();
    x += 0.1 * (hi - lo) * Normal(rng);
    for (int i = 0; i < 4 && (x < lo || x > hi); ++i) x = x < lo ? 2 * lo - x : 2 * hi - x;
    x = std::clamp(x, lo, hi);
    out.set_float_value(std::clamp(log ? std::exp(x) : x, r.min(), r.max()));
  }
  return out;
}

Candidate GeneSpace::Complete(const std::vector<const GeneValue*>& keep, Rng& rng) const {
  std::map<std::string, const GeneValue*> kept;
  for (const GeneValue* v : keep)
    if (v) kept[v->name()] = v;
  Candidate c;
  std::map<std::string, GeneValue> chosen;
  for (const GeneSpec& g : spec_.genes()) {
    if (g.has_active_if()) {
      auto parent = chosen.find(g.active_if().gene());
      if (parent == chosen.end() || !ConditionHolds(g.active_if(), parent->second)) continue;
    }
    auto it = kept.find(g.name());
    GeneValue v = it != kept.end() ? *it->second : RandomValue(g, rng);
    chosen[g.name()] = v;
    *c.mutable_genes()->add_genes() = v;
  }
  return c;
}

Candidate GeneSpace::Random(Rng& rng) const { return Complete({}, rng); }

Candidate GeneSpace::Mutate(const Candidate& parent, Rng& rng) const {
  // One active gene that can take another value, uniformly.
  std::vector<int> mutable_genes;
  const auto& genes = parent.genes().genes();
  for (int i = 0; i < genes.size(); ++i) {
    for (const GeneSpec& g : spec_.genes()) {
      if (g.name() != genes[i].name()) continue;
      const bool several = g.has_categorical() ? g.categorical().values_size() > 1
                           : g.has_int_range() ? IntCount(g.int_range()) > 1
                                               : g.float_range().max() > g.float_range().min();
      if (several) mutable_genes.push_back(i);
    }
  }
  if (mutable_genes.empty()) return parent;
  const int which = mutable_genes[rng.Uniform(static_cast<int>(mutable_genes.size()))];
  GeneValue mutated;
  for (const GeneSpec& g : spec_.genes())
    if (g.name() == genes[which].name()) mutated = MutateValue(g, genes[which], rng);
  std::vector<const GeneValue*> keep;
  for (int i = 0; i < genes.size(); ++i) keep.push_back(i == which ? &mutated : &genes[i]);
  // Genes the mutation switched on get random values; those it switched off are dropped.
  return Complete(keep, rng);
}

Candidate GeneSpace::Crossover(const Candidate& a, const Candidate& b, Rng& rng) const {
  std::map<std::string, const GeneValue*> in_a, in_b;
  for (const GeneValue& v : a.genes().genes()) in_a[v.name()] = &v;
  for (const GeneValue& v : b.genes().genes()) in_b[v.name()] = &v;
  std::vector<const GeneValue*> keep;
  for (const GeneSpec& g : spec_.genes()) {
    const GeneValue* x = in_a.count(g.name()) ? in_a[g.name()] : nullptr;
    const GeneValue* y = in_b.count(g.name()) ? in_b[g.name()] : nullptr;
    if (x && y) {
      keep.push_back(rng.Bernoulli(0.5) ? x : y);
    } else {
      keep.push_back(x ? x : y);
    }
  }
  return Complete(keep, rng);
}

double GeneSpace::Size() const {
  double size = 1;
  for (const GeneSpec& g : spec_.genes()) {
    if (g.has_categorical()) size *= g.categorical().values_size();
    if (g.has_int_range()) size *= static_cast<double>(IntCount(g.int_range()));
    if (g.has_float_range() && g.float_range().max() > g.float_range().min()) return std::ldexp(1.0, 62);
  }
  return std::min(size, std::ldexp(1.0, 62));
}

absl::Status GeneSpace::Validate(const Candidate& c) const {
  if (!c.has_genes()) return absl::InvalidArgumentError("candidate: a user-domain candidate is a list of genes");
  const auto& genes = c.genes().genes();
  std::map<std::string, GeneValue> chosen;
  int next = 0;
  for (const GeneSpec& g : spec_.genes()) {
    bool active = true;
    if (g.has_active_if()) {
      auto parent = chosen.find(g.active_if().gene());
      active = parent != chosen.end() && ConditionHolds(g.active_if(), parent->second);
    }
    const bool present = next < genes.size() && genes[next].name() == g.name();
    if (!active) {
      if (present) {
        return absl::InvalidArgumentError(absl::StrCat("genes.", g.name(), ": is present but inactive (it exists only when ",
                                                       g.active_if().gene(), " is ", absl::StrJoin(g.active_if().values(), " or "), ")"));
      }
      continue;
    }
    if (!present) {
      for (const GeneValue& v : genes)
        if (v.name() == g.name()) return absl::InvalidArgumentError(absl::StrCat("genes.", g.name(), ": out of declaration order"));
      return absl::InvalidArgumentError(absl::StrCat("genes.", g.name(), ": is missing"));
    }
    const GeneValue& v = genes[next++];
    const std::string f = absl::StrCat("genes.", g.name());
    if (g.has_categorical()) {
      if (v.value_case() != GeneValue::kStringValue) return absl::InvalidArgumentError(absl::StrCat(f, ": must be one of its strings"));
      const auto& vals = g.categorical().values();
      if (std::find(vals.begin(), vals.end(), v.string_value()) == vals.end()) {
        return absl::InvalidArgumentError(absl::StrCat(f, ": '", v.string_value(), "' is not one of ", absl::StrJoin(vals, ", ")));
      }
    } else if (g.has_int_range()) {
      const IntRangeGene& r = g.int_range();
      if (v.value_case() != GeneValue::kIntValue) return absl::InvalidArgumentError(absl::StrCat(f, ": must be an integer"));
      if (v.int_value() < r.min() || v.int_value() > r.max() || (v.int_value() - r.min()) % r.step() != 0) {
        return absl::InvalidArgumentError(absl::StrCat(f, ": ", v.int_value(), " is not in ", r.min(), "..", r.max(), " step ", r.step()));
      }
    } else {
      const FloatRangeGene& r = g.float_range();
      if (v.value_case() != GeneValue::kFloatValue) return absl::InvalidArgumentError(absl::StrCat(f, ": must be a number"));
      if (!(v.float_value() >= r.min() && v.float_value() <= r.max())) {
        return absl::InvalidArgumentError(absl::StrCat(f, ": ", v.float_value(), " is outside ", r.min(), "..", r.max()));
      }
    }
    chosen[g.name()] = v;
  }
  if (next < genes.size()) {
    return absl::InvalidArgumentError(absl::StrCat("genes.", genes[next].name(), ": is not a gene of this domain (or is out of order)"));
  }
  return absl::OkStatus();
}

// ---- the domain -------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<UserDomain>> UserDomain::Create(const ExperimentSpec& spec) {
  const UserDomainSpec& u = spec.search_space().user_domain();
  absl::Status valid = ValidateUserDomain(u, "search_space.user_domain");
  if (!valid.ok()) return valid;
  if (!u.has_evaluator() && spec.workers().targets_size() == 0) {
    return absl::InvalidArgumentError(
        "search_space.user_domain.evaluator: is required unless workers evaluate (workers.targets or --workers)");
  }
  auto d = std::unique_ptr<UserDomain>(new UserDomain(u));
  d->name_ = absl::StrCat("user:", u.name());
  d->mantissa_bits_ = spec.fec().mantissa_bits();
  for (int i = 0; i < spec.search_space().seeds_size(); ++i) {
    absl::Status s = d->space_.Validate(spec.search_space().seeds(i));
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("search_space.seeds[", i, "].", s.message()));
    d->seeds_.push_back(spec.search_space().seeds(i));
  }
  // The context: what decides a candidate's fitness besides its genes.
  XXH3_state_t* st = XXH3_createState();
  XXH3_128bits_reset(st);
  auto add = [&](const std::string& s) {
    XXH3_128bits_update(st, s.data(), s.size());
    XXH3_128bits_update(st, "\0", 1);
  };
  add("fecsearch-user-domain-1");
  add(u.name());
  // The evaluator, not the probe: the probe decides which candidates share a key (it enters
  // their functional hashes, Probe), not what an evaluation measures, so workers and searches
  // that probe differently still agree on the context.
  add(absl::StrCat(u.evaluator().argv_size()));
  for (const std::string& a : u.evaluator().argv()) add(a);
  add(u.version());
  for (const DomainObjective& o : u.objectives()) add(absl::StrCat(o.name(), "|", o.direction()));
  for (int i = 0; i < u.context_files_size(); ++i) {
    const std::string path = ResolveInputPath(u.context_files(i));
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      XXH3_freeState(st);
      return absl::NotFoundError(absl::StrCat("search_space.user_domain.context_files[", i, "]: cannot read '",
                                              u.context_files(i), "' (", std::strerror(errno), ")"));
    }
    std::stringstream bytes;
    bytes << in.rdbuf();
    add(u.context_files(i));
    add(bytes.str());
  }
  d->fingerprint_ = Hex128(XXH3_128bits_digest(st));
  XXH3_freeState(st);
  // Which probe: a command by its argv, a worker's ProbeGenes as one probe (its program is the
  // worker's; its changes are the user's `version`).
  std::string probe = u.probe_worker().empty() ? "command" : "ProbeGenes";
  for (const std::string& a : u.probe().argv()) absl::StrAppend(&probe, absl::string_view("\0", 1), a);
  const XXH128_hash_t p = XXH3_128bits(probe.data(), probe.size());
  d->probe_identity_[0] = static_cast<int64_t>(p.high64);
  d->probe_identity_[1] = static_cast<int64_t>(p.low64);
  if (!u.probe_worker().empty()) {
    // The probe worker is reached like the evaluation workers: their TLS and token.
    const WorkerSpec& w = spec.workers();
    if (!(u.probe_worker_timeout_seconds() > 0)) {
      return absl::InvalidArgumentError("search_space.user_domain.probe_worker_timeout_seconds: must be > 0");
    }
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    grpc::ChannelArguments args;
    if (w.has_tls()) {
      grpc::SslCredentialsOptions ssl;
      absl::Status r = ReadFile(ResolveInputPath(w.tls().ca_cert_path()), &ssl.pem_root_certs);
      if (!r.ok()) return absl::Status(r.code(), absl::StrCat("workers.tls.ca_cert_path: ", r.message()));
      creds = grpc::SslCredentials(ssl);
      if (!w.tls().server_name().empty()) args.SetSslTargetNameOverride(w.tls().server_name());
    }
    if (!w.auth_token_file().empty()) {
      absl::Status r = ReadFile(ResolveInputPath(w.auth_token_file()), &d->probe_token_);
      if (!r.ok()) return absl::Status(r.code(), absl::StrCat("workers.auth_token_file: ", r.message()));
      d->probe_token_ = std::string(absl::StripAsciiWhitespace(d->probe_token_));
    }
    d->probe_channel_ = grpc::CreateCustomChannel(u.probe_worker(), creds, args);
  }
  return d;
}

std::string UserDomain::Describe(const Candidate& c) const {
  std::vector<std::string> parts;
  for (const GeneValue& g : c.genes().genes()) {
    parts.push_back(absl::StrCat(g.name(), "=",
                                 g.value_case() == GeneValue::kFloatValue ? absl::StrFormat("%.6g", g.float_value()) : ValueText(g)));
  }
  return absl::StrJoin(parts, " ");
}

std::vector<MetricInfo> UserDomain::Metrics() const {
  std::vector<MetricInfo> m;
  for (const DomainObjective& o : spec_.objectives()) {
    m.push_back({o.name(), o.name(), o.unit(), o.direction() == DomainObjective::MAXIMIZE, 0});
  }
  return m;
}

std::vector<DefaultObjective> UserDomain::DefaultObjectives() const {
  std::vector<DefaultObjective> d;
  for (const DomainObjective& o : spec_.objectives()) {
    d.push_back({o.name(), o.weight(), o.has_hypervolume_reference(), o.hypervolume_reference()});
  }
  return d;
}

std::vector<std::pair<std::string, std::string>> UserDomain::Facts() const {
  std::vector<std::pair<std::string, std::string>> f;
  if (spec_.has_evaluator()) f.push_back({"evaluator", absl::StrJoin(spec_.evaluator().argv(), " ")});
  f.push_back({"probe", spec_.has_probe()                ? absl::StrJoin(spec_.probe().argv(), " ")
                        : !spec_.probe_worker().empty() ? absl::StrCat("ProbeGenes on ", spec_.probe_worker())
                                                        : "none (exact genes only)"});
  f.push_back({"context", absl::StrCat(fingerprint_, spec_.version().empty() ? "" : absl::StrCat(" (version ", spec_.version(), ")"))});
  return f;
}

absl::StatusOr<nlohmann::json> UserDomain::RunCommand(const DomainCommand& command, const std::string& what,
                                                       const nlohmann::json& request) const {
  std::vector<std::string> argv(command.argv().begin(), command.argv().end());
  const std::string shown = absl::StrJoin(argv, " ");
  auto run = RunSubprocess(argv, request.dump(), absl::Seconds(command.timeout_seconds()), UserWorkingDirectory());
  if (!run.ok()) {
    return absl::Status(run.status().code(), absl::StrCat("search_space.user_domain.", what, ": ", run.status().message()));
  }
  if (run->exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat("search_space.user_domain.", what, ": '", shown, "' exited with status ",
                                                      run->exit_code, "; stderr: ", Tail(run->err, 1500)));
  }
  nlohmann::json response = nlohmann::json::parse(run->out, nullptr, /*allow_exceptions=*/false);
  if (response.is_discarded() || !response.is_object()) {
    return absl::FailedPreconditionError(absl::StrCat("search_space.user_domain.", what, ": '", shown,
                                                      "' printed no JSON object: '", Tail(run->out, 500), "'",
                                                      run->err.empty() ? "" : absl::StrCat("; stderr: ", Tail(run->err, 800))));
  }
  if (!response.contains("protocol") || response["protocol"] != kProtocol) {
    return absl::FailedPreconditionError(absl::StrCat("search_space.user_domain.", what, ": '", shown, "' answered protocol ",
                                                      response.contains("protocol") ? response["protocol"].dump() : "(none)",
                                                      ", expected \"", kProtocol, "\""));
  }
  return response;
}

absl::StatusOr<EvaluationResult> UserDomain::Evaluate(const Candidate& candidate, int64_t candidate_id,
                                                      int attempt) const {
  EvaluationResult r;
  absl::Status valid = Validate(candidate);
  if (!valid.ok()) {
    r.mutable_status()->set_code(static_cast<int>(valid.code()));
    r.mutable_status()->set_message(std::string(valid.message()));
    return r;
  }
  if (!spec_.has_evaluator()) {
    return absl::FailedPreconditionError("search_space.user_domain.evaluator: not set (only workers can evaluate)");
  }
  const nlohmann::json request = {{"protocol", kProtocol},     {"kind", "evaluate"},
                                  {"domain", spec_.name()},    {"candidate_id", candidate_id},
                                  {"attempt", attempt},        {"genes", GenesJson(candidate)}};
  const auto start = std::chrono::steady_clock::now();
  auto response = RunCommand(spec_.evaluator(), "evaluator", request);
  if (!response.ok()) return response.status();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (response->contains("error")) {
    r.mutable_status()->set_code(static_cast<int>(absl::StatusCode::kInvalidArgument));
    r.mutable_status()->set_message(absl::StrCat("the evaluator rejected the candidate: ",
                                                 (*response)["error"].is_string() ? (*response)["error"].get<std::string>()
                                                                                  : (*response)["error"].dump()));
    return r;
  }
  const nlohmann::json& objectives = (*response)["objectives"];
  if (!objectives.is_object()) {
    return absl::FailedPreconditionError(absl::StrCat("search_space.user_domain.evaluator: the response has no \"objectives\" object: ",
                                                      response->dump().substr(0, 500)));
  }
  r.mutable_status()->set_code(0);
  for (const DomainObjective& o : spec_.objectives()) {
    if (!objectives.contains(o.name()) || !objectives[o.name()].is_number() ||
        !std::isfinite(objectives[o.name()].get<double>())) {
      return absl::FailedPreconditionError(absl::StrCat("search_space.user_domain.evaluator: objective '", o.name(),
                                                        "' is missing or not a finite number in ", objectives.dump().substr(0, 500)));
    }
    (*r.mutable_objectives()->mutable_metrics())[o.name()] = objectives[o.name()].get<double>();
  }
  r.set_cost_seconds(response->contains("cost_seconds") && (*response)["cost_seconds"].is_number()
                         ? (*response)["cost_seconds"].get<double>()
                         : seconds);
  r.set_context_fingerprint(fingerprint_);
  return r;
}

absl::StatusOr<Hash128> UserDomain::StructuralHash(const Candidate& candidate) const {
  absl::Status valid = Validate(candidate);
  if (!valid.ok()) return valid;
  return HashBytes(absl::StrCat("structural|", ExactForm(candidate)));
}

std::string UserDomain::ExactForm(const Candidate& c) const {
  // Active genes in declaration order (Validate requires it), each typed; floats by their
  // canonical bit pattern.
  std::string out;
  for (const GeneValue& g : c.genes().genes()) {
    absl::StrAppend(&out, g.name(), "=");
    switch (g.value_case()) {
      case GeneValue::kIntValue: absl::StrAppend(&out, "i", g.int_value()); break;
      case GeneValue::kFloatValue: absl::StrAppend(&out, "f", absl::Hex(CanonicalBits(g.float_value()))); break;
      case GeneValue::kStringValue: absl::StrAppend(&out, "s", g.string_value().size(), ":", g.string_value()); break;
      default: break;
    }
    out += ';';
  }
  return out;
}

bool UserDomain::has_probe() const { return spec_.has_probe() || !spec_.probe_worker().empty(); }

absl::StatusOr<std::vector<double>> UserDomain::ProbeOutputs(const Candidate& candidate) const {
  std::vector<double> outputs;
  if (!spec_.probe_worker().empty()) {
    auto stub = rpc::Evaluator::NewStub(probe_channel_);
    rpc::ProbeRequest request;
    request.set_domain(spec_.name());
    *request.mutable_genes() = candidate.genes().genes();
    request.set_context_fingerprint(fingerprint_);
    rpc::ProbeResponse response;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(1000 * spec_.probe_worker_timeout_seconds())));
    if (!probe_token_.empty()) ctx.AddMetadata("authorization", "Bearer " + probe_token_);
    grpc::Status s = stub->ProbeGenes(&ctx, request, &response);
    if (!s.ok()) {
      return absl::UnavailableError(absl::StrCat("search_space.user_domain.probe_worker: ProbeGenes on ", spec_.probe_worker(),
                                                 " failed: ", s.error_message()));
    }
    if (response.has_error()) return absl::InvalidArgumentError(absl::StrCat("the probe rejected the candidate: ", response.error()));
    outputs.assign(response.outputs().begin(), response.outputs().end());
    return outputs;
  }
  const nlohmann::json request = {{"protocol", kProtocol}, {"kind", "probe"}, {"domain", spec_.name()},
                                  {"genes", GenesJson(candidate)}};
  auto response = RunCommand(spec_.probe(), "probe", request);
  if (!response.ok()) return response.status();
  if (response->contains("error")) {
    return absl::InvalidArgumentError(absl::StrCat("the probe rejected the candidate: ",
                                                   (*response)["error"].is_string() ? (*response)["error"].get<std::string>()
                                                                                    : (*response)["error"].dump()));
  }
  const nlohmann::json& out = (*response)["outputs"];
  if (!out.is_array()) {
    return absl::FailedPreconditionError(absl::StrCat("search_space.user_domain.probe: the response has no \"outputs\" list: ",
                                                      response->dump().substr(0, 500)));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (!out[i].is_number()) {
      return absl::FailedPreconditionError(absl::StrCat("search_space.user_domain.probe: outputs[", i, "] is ", out[i].dump(),
                                                        ", not a number (the probe printed ", out.dump().substr(0, 300), ")"));
    }
    outputs.push_back(out[i].get<double>());
  }
  return outputs;
}

absl::Status UserDomain::Probe(const Candidate& candidate, OutputSink& sink) const {
  absl::Status valid = Validate(candidate);
  if (!valid.ok()) return valid;
  auto outputs = ProbeOutputs(candidate);
  if (!outputs.ok()) return outputs.status();
  // The first candidates' probes run twice: a probe that is not deterministic would make equal
  // candidates look different (and, worse, different ones alike) without anyone noticing.
  if (probes_checked_.fetch_add(1) < kDeterminismChecks) {
    auto again = ProbeOutputs(candidate);
    if (!again.ok()) return again.status();
    bool same = again->size() == outputs->size();
    for (size_t i = 0; same && i < outputs->size(); ++i) {
      same = CanonicalFloatBits(static_cast<float>((*outputs)[i]), mantissa_bits_) ==
             CanonicalFloatBits(static_cast<float>((*again)[i]), mantissa_bits_);
    }
    if (!same) {
      auto show = [](const std::vector<double>& v) {
        std::vector<std::string> parts;
        for (size_t i = 0; i < v.size() && i < 8; ++i) parts.push_back(absl::StrFormat("%.9g", v[i]));
        return absl::StrCat("[", absl::StrJoin(parts, ", "), v.size() > 8 ? ", ..." : "", "] (", v.size(), " numbers)");
      };
      return absl::FailedPreconditionError(absl::StrCat(
          "search_space.user_domain.probe: is not deterministic: two runs on ", Describe(candidate), " printed ",
          show(*outputs), " and ", show(*again), "; seed its randomness (the functional hash needs equal outputs for equal candidates)"));
    }
  }
  std::vector<float> values(outputs->begin(), outputs->end());
  sink.AddInt(probe_identity_[0]);
  sink.AddInt(probe_identity_[1]);
  sink.AddInt(static_cast<int64_t>(values.size()));
  sink.AddFloats(values);
  return absl::OkStatus();
}

}  // namespace fecsearch
