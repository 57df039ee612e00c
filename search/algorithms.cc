// Regularized evolution, steady-state NSGA-II and random search.
#include "search/algorithms.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>


namespace fecsearch {

bool Dominates(const Individual& a, const Individual& b) {
  if (a.violation == 0 && b.violation > 0) return true;
  if (a.violation > 0 && b.violation > 0) return a.violation < b.violation;
  if (a.violation > 0) return false;
  bool strictly = false;
  for (size_t i = 0; i < a.objectives.size(); ++i) {
    if (a.objectives[i] > b.objectives[i]) return false;
    if (a.objectives[i] < b.objectives[i]) strictly = true;
  }
  return strictly;
}

namespace {

// Fronts of non-dominated sorting, best first.
std::vector<std::vector<int>> Fronts(const std::vector<Individual>& pop) {
  const int n = static_cast<int>(pop.size());
  std::vector<std::vector<int>> dominated(n);
  std::vector<int> count(n, 0);
  std::vector<std::vector<int>> fronts(1);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < n; ++j) {
      if (i == j) continue;
      if (Dominates(pop[i], pop[j])) {
        dominated[i].push_back(j);
      } else if (Dominates(pop[j], pop[i])) {
        ++count[i];
      }
    }
    if (count[i] == 0) fronts[0].push_back(i);
  }
  while (!fronts.back().empty()) {
    std::vector<int> next;
    for (int i : fronts.back())
      for (int j : dominated[i])
        if (--count[j] == 0) next.push_back(j);
    fronts.push_back(next);
  }
  fronts.pop_back();
  return fronts;
}

std::vector<double> Crowding(const std::vector<Individual>& pop, const std::vector<int>& front) {
  std::vector<double> d(front.size(), 0);
  if (front.empty()) return d;
  const size_t m = pop[front[0]].objectives.size();
  std::vector<int> order(front.size());
  for (size_t k = 0; k < m; ++k) {
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      return pop[front[a]].objectives[k] < pop[front[b]].objectives[k];
    });
    const double lo = pop[front[order.front()]].objectives[k];
    const double hi = pop[front[order.back()]].objectives[k];
    d[order.front()] = d[order.back()] = std::numeric_limits<double>::infinity();
    if (hi <= lo) continue;
    for (size_t i = 1; i + 1 < order.size(); ++i) {
      d[order[i]] += (pop[front[order[i + 1]]].objectives[k] - pop[front[order[i - 1]]].objectives[k]) / (hi - lo);
    }
  }
  return d;
}

}  // namespace

std::vector<int> PromotionOrder(const std::vector<Individual>& all, const std::function<double(const Individual&)>* scalarize) {
  std::vector<int> order(all.size());
  std::iota(order.begin(), order.end(), 0);
  if (scalarize) {
    std::vector<double> f(all.size());
    for (size_t i = 0; i < all.size(); ++i) f[i] = (*scalarize)(all[i]);
    std::sort(order.begin(), order.end(), [&](int a, int b) {
      if (all[a].violation != all[b].violation) return all[a].violation < all[b].violation;
      if (f[a] != f[b]) return f[a] < f[b];
      return all[a].id < all[b].id;
    });
    return order;
  }
  std::vector<int> rank(all.size(), 0);
  std::vector<double> crowd(all.size(), 0);
  const std::vector<std::vector<int>> fronts = Fronts(all);
  for (size_t k = 0; k < fronts.size(); ++k) {
    const std::vector<double> d = Crowding(all, fronts[k]);
    for (size_t i = 0; i < fronts[k].size(); ++i) {
      rank[fronts[k][i]] = static_cast<int>(k);
      crowd[fronts[k][i]] = d[i];
    }
  }
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    if (rank[a] != rank[b]) return rank[a] < rank[b];
    if (crowd[a] != crowd[b]) return crowd[a] > crowd[b];
    return all[a].id < all[b].id;
  });
  return order;
}

namespace {

class RandomSearch : public Algorithm {
 public:
  RandomSearch(const CandidateSpace& space, std::vector<Candidate> seeds) : space_(space), seeds_(std::move(seeds)) {}
  Proposal Propose(Rng& rng) override {
    if (next_seed_ < seeds_.size()) return {seeds_[next_seed_++], {}, "seed"};
    return {space_.Random(rng), {}, "random"};
  }
  void Tell(const Individual& ind) override { population_.push_back(ind); }
  // A resumed search does not hand out the seeds its earlier run proposed.
  void CountRecordedProposal() override {
    if (next_seed_ < seeds_.size()) ++next_seed_;
  }
  const std::vector<Individual>& population() const override { return population_; }
  std::string name() const override { return "random search"; }

 private:
  const CandidateSpace& space_;
  std::vector<Candidate> seeds_;
  size_t next_seed_ = 0;
  std::vector<Individual> population_;
};

// Shared: initial population of P random (or seeded) candidates, then children of tournament
// winners.
class EvolutionBase : public Algorithm {
 public:
  EvolutionBase(const SearchSpec& spec, const CandidateSpace& space, std::vector<Candidate> seeds, Scalarizer scalarize)
      : spec_(spec), space_(space), seeds_(std::move(seeds)), scalarize_(std::move(scalarize)) {}

  Proposal Propose(Rng& rng) override {
    if (next_seed_ < seeds_.size()) {
      ++proposals_;
      return {seeds_[next_seed_++], {}, "seed"};
    }
    if (proposals_ < spec_.population_size() || population_.empty()) {
      ++proposals_;
      return {space_.Random(rng), {}, "random"};
    }
    ++proposals_;
    const Individual& a = population_[Tournament(rng)];
    Proposal p;
    p.parents = {a.id};
    Candidate child = a.candidate;
    p.operation = "copy";
    if (spec_.crossover_probability() > 0 && rng.Bernoulli(spec_.crossover_probability())) {
      const Individual& b = population_[Tournament(rng)];
      child = space_.Crossover(a.candidate, b.candidate, rng);
      p.parents.push_back(b.id);
      p.operation = "crossover";
    }
    if (rng.Bernoulli(spec_.mutation_probability())) {
      child = space_.Mutate(child, rng);
      if (p.operation == "copy") p.operation = "mutation";
    }
    p.candidate = std::move(child);
    return p;
  }
  const std::vector<Individual>& population() const override { return population_; }
  void CountRecordedProposal() override {
    ++proposals_;
    if (next_seed_ < seeds_.size()) ++next_seed_;
  }

 protected:
  // Index of the best of T individuals drawn with replacement.
  virtual int Tournament(Rng& rng) = 0;

  const SearchSpec& spec_;
  const CandidateSpace& space_;
  std::vector<Candidate> seeds_;
  Scalarizer scalarize_;
  size_t next_seed_ = 0;
  int64_t proposals_ = 0;
  std::vector<Individual> population_;
};

class RegularizedEvolution : public EvolutionBase {
 public:
  using EvolutionBase::EvolutionBase;
  void Tell(const Individual& ind) override {
    population_.push_back(ind);
    // Aging: the oldest member leaves, whatever its fitness.
    if (static_cast<int>(population_.size()) > spec_.population_size()) population_.erase(population_.begin());
  }
  std::string name() const override { return "regularized evolution"; }

 protected:
  int Tournament(Rng& rng) override {
    int best = -1;
    for (int i = 0; i < spec_.tournament_size(); ++i) {
      const int c = rng.Uniform(population_.size());
      if (best < 0 || Better(population_[c], population_[best])) best = c;
    }
    return best;
  }

 private:
  bool Better(const Individual& a, const Individual& b) const {
    if (a.violation != b.violation) return a.violation < b.violation;
    return scalarize_(a) < scalarize_(b);
  }
};

class SteadyStateNsga2 : public EvolutionBase {
 public:
  using EvolutionBase::EvolutionBase;
  void Tell(const Individual& ind) override {
    population_.push_back(ind);
    if (static_cast<int>(population_.size()) > spec_.population_size()) {
      // Remove the most crowded member of the last front.
      Rank();
      const std::vector<int>& last = fronts_.back();
      const std::vector<double> d = Crowding(population_, last);
      int worst = 0;
      for (size_t i = 1; i < last.size(); ++i) {
        if (d[i] < d[worst] || (d[i] == d[worst] && population_[last[i]].id < population_[last[worst]].id)) worst = i;
      }
      population_.erase(population_.begin() + last[worst]);
    }
    Rank();
  }
  std::string name() const override { return "NSGA-II (steady state)"; }

 protected:
  // Crowded-comparison tournament: lower rank wins, then larger crowding distance.
  int Tournament(Rng& rng) override {
    int best = -1;
    for (int i = 0; i < std::max(2, spec_.tournament_size()); ++i) {
      const int c = rng.Uniform(population_.size());
      if (best < 0 || rank_[c] < rank_[best] || (rank_[c] == rank_[best] && crowd_[c] > crowd_[best])) best = c;
    }
    return best;
  }

 private:
  void Rank() {
    fronts_ = Fronts(population_);
    rank_.assign(population_.size(), 0);
    crowd_.assign(population_.size(), 0);
    for (size_t f = 0; f < fronts_.size(); ++f) {
      const std::vector<double> d = Crowding(population_, fronts_[f]);
      for (size_t i = 0; i < fronts_[f].size(); ++i) {
        rank_[fronts_[f][i]] = static_cast<int>(f);
        crowd_[fronts_[f][i]] = d[i];
      }
    }
  }
  std::vector<std::vector<int>> fronts_;
  std::vector<int> rank_;
  std::vector<double> crowd_;
};

}  // namespace

std::vector<int> ParetoFront(const std::vector<Individual>& all) {
  std::vector<int> front;
  for (size_t i = 0; i < all.size(); ++i) {
    bool dominated = false;
    for (size_t j = 0; j < all.size() && !dominated; ++j) dominated = j != i && Dominates(all[j], all[i]);
    if (!dominated) front.push_back(static_cast<int>(i));
  }
  return front;
}

double Hypervolume2D(const std::vector<Individual>& all, double ref0, double ref1) {
  std::vector<std::pair<double, double>> pts;
  for (const Individual& ind : all) {
    if (ind.violation > 0 || ind.objectives.size() < 2) continue;
    if (ind.objectives[0] < ref0 && ind.objectives[1] < ref1) pts.emplace_back(ind.objectives[0], ind.objectives[1]);
  }
  std::sort(pts.begin(), pts.end());
  double hv = 0, best1 = ref1;
  for (const auto& [x, y] : pts) {
    if (y >= best1) continue;
    hv += (ref0 - x) * (best1 - y);
    best1 = y;
  }
  return hv;
}

std::unique_ptr<Algorithm> MakeAlgorithm(const SearchSpec& spec, const CandidateSpace& space,
                                         std::vector<Candidate> seeds, Scalarizer scalarize) {
  switch (spec.algorithm()) {
    case SearchSpec::REGULARIZED_EVOLUTION:
      return std::make_unique<RegularizedEvolution>(spec, space, std::move(seeds), std::move(scalarize));
    case SearchSpec::RANDOM_SEARCH:
      return std::make_unique<RandomSearch>(space, std::move(seeds));
    default:
      return std::make_unique<SteadyStateNsga2>(spec, space, std::move(seeds), std::move(scalarize));
  }
}

}  // namespace fecsearch

