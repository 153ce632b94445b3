// CMA-ES with IPOP restarts, replayed from the history on every ask (see cmaes.hpp for the rule). Update equations
// follow Hansen, "The CMA Evolution Strategy: A Tutorial" (2016), with positive recombination weights.
#include "tuners/cmaes.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <sstream>
#include <vector>

#include <Eigen/Dense>

#include "common/error.hpp"
#include "tuners/params.hpp"
#include "tuners/support.hpp"

namespace kestrel::tuners {

CmaesParams CmaesParams::from_json(const nlohmann::json& j) {
  CmaesParams p;
  ParamReader r("tuner 'cmaes'", j);
  r.get("popsize", p.popsize);
  r.get("sigma0", p.sigma0);
  r.get("restarts", p.restarts);
  r.get("inc_popsize", p.inc_popsize);
  r.get("tol_x", p.tol_x);
  r.get("tol_fun", p.tol_fun);
  r.get("max_condition", p.max_condition);
  r.finish();
  r.require(p.popsize == 0 || p.popsize >= 2, "popsize", "must be 0 (automatic) or >= 2");
  r.require(p.sigma0 > 0 && p.sigma0 <= 1, "sigma0", "must be in (0, 1]");
  r.require(p.inc_popsize >= 1, "inc_popsize", "must be >= 1");
  r.require(p.tol_x >= 0, "tol_x", "must be >= 0");
  r.require(p.tol_fun >= 0, "tol_fun", "must be >= 0");
  r.require(p.max_condition > 1, "max_condition", "must be > 1");
  return p;
}

namespace {

constexpr uint64_t kCmaStream = 0x636d61;  // "cma"
using Vec = Eigen::VectorXd;
using Mat = Eigen::MatrixXd;

// One CMA-ES run's state and constants.
struct Run {
  int64_t restart = 0, gen = 0;
  int64_t lambda = 0, mu = 0;
  size_t n = 0;
  Vec w;  // positive recombination weights, sum 1
  double mu_eff = 0, cc = 0, cs = 0, c1 = 0, cmu = 0, ds = 0, chi_n = 0;
  Vec mean, ps, pc;
  Mat C, B;
  Vec D;  // sqrt of the eigenvalues
  double sigma = 0;
  std::vector<double> best_history;  // best value of each closed generation of this run

  void init(size_t dims, int64_t lam, const Vec& m0, double sigma0) {
    n = dims;
    lambda = lam;
    mu = lam / 2;
    const double nd = static_cast<double>(n);
    w.resize(mu);
    for (int64_t i = 0; i < mu; ++i) w[i] = std::log((static_cast<double>(lam) + 1.0) / 2.0) - std::log(static_cast<double>(i + 1));
    w /= w.sum();
    mu_eff = 1.0 / w.squaredNorm();
    cc = (4.0 + mu_eff / nd) / (nd + 4.0 + 2.0 * mu_eff / nd);
    cs = (mu_eff + 2.0) / (nd + mu_eff + 5.0);
    c1 = 2.0 / ((nd + 1.3) * (nd + 1.3) + mu_eff);
    cmu = std::min(1.0 - c1, 2.0 * (mu_eff - 2.0 + 1.0 / mu_eff) / ((nd + 2.0) * (nd + 2.0) + mu_eff));
    ds = 1.0 + 2.0 * std::max(0.0, std::sqrt((mu_eff - 1.0) / (nd + 1.0)) - 1.0) + cs;
    chi_n = std::sqrt(nd) * (1.0 - 1.0 / (4.0 * nd) + 1.0 / (21.0 * nd * nd));
    mean = m0;
    ps = Vec::Zero(n);
    pc = Vec::Zero(n);
    C = Mat::Identity(n, n);
    B = Mat::Identity(n, n);
    D = Vec::Ones(n);
    sigma = sigma0;
    best_history.clear();
    gen = 0;
  }

  // The point of slot k of the current generation: resampled until inside the cube, clipped after 100 tries.
  Vec sample(uint64_t seed, int64_t k) const {
    Rng rng(derive_seed(derive_seed(seed, restart, kCmaStream), gen, static_cast<uint64_t>(k)));
    Vec x(n), z(n);
    for (int t = 0; t < 100; ++t) {
      for (size_t i = 0; i < n; ++i) z[i] = rng.normal();
      x = mean + sigma * (B * D.cwiseProduct(z));
      if ((x.array() >= 0.0).all() && (x.array() <= 1.0).all()) return x;
    }
    return x.cwiseMax(0.0).cwiseMin(1.0);
  }

  // Updates with the generation's (point, loss) pairs; returns false when too few to update.
  bool update(std::vector<std::pair<double, Vec>> sols) {
    if (static_cast<int64_t>(sols.size()) < mu || mu < 1) return false;
    std::stable_sort(sols.begin(), sols.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    const double nd = static_cast<double>(n);
    Vec yw = Vec::Zero(n);
    std::vector<Vec> ys;
    for (int64_t i = 0; i < mu; ++i) {
      ys.push_back((sols[i].second - mean) / sigma);
      yw += w[i] * ys.back();
    }
    mean += sigma * yw;
    // C^(-1/2) y_w = B D^-1 B^T y_w
    Vec c_inv_sqrt_yw = B * (B.transpose() * yw).cwiseQuotient(D);
    ps = (1.0 - cs) * ps + std::sqrt(cs * (2.0 - cs) * mu_eff) * c_inv_sqrt_yw;
    const double ps_norm = ps.norm();
    const double denom = std::sqrt(1.0 - std::pow(1.0 - cs, 2.0 * static_cast<double>(gen + 1)));
    const bool hs = ps_norm / denom < (1.4 + 2.0 / (nd + 1.0)) * chi_n;
    pc = (1.0 - cc) * pc + (hs ? std::sqrt(cc * (2.0 - cc) * mu_eff) : 0.0) * yw;
    const double delta = (hs ? 0.0 : 1.0) * cc * (2.0 - cc);
    Mat rank_mu = Mat::Zero(n, n);
    for (int64_t i = 0; i < mu; ++i) rank_mu += w[i] * ys[i] * ys[i].transpose();
    C = (1.0 + c1 * delta - c1 - cmu) * C + c1 * pc * pc.transpose() + cmu * rank_mu;
    C = 0.5 * (C + C.transpose());
    sigma *= std::exp(std::min(1.0, (cs / ds) * (ps_norm / chi_n - 1.0)));
    Eigen::SelfAdjointEigenSolver<Mat> es(C);
    D = es.eigenvalues().cwiseMax(1e-20).cwiseSqrt();
    B = es.eigenvectors();
    best_history.push_back(sols.front().first);
    ++gen;
    return true;
  }

  // Restart criteria, checked after a close with the losses of the generation just used.
  bool converged(const CmaesParams& p, const std::vector<double>& losses) const {
    double max_sd = 0;
    for (size_t i = 0; i < n; ++i) max_sd = std::max(max_sd, std::sqrt(C(i, i)));
    if (sigma * max_sd < p.tol_x) return true;
    const double cond = (D.maxCoeff() * D.maxCoeff()) / std::max(1e-300, D.minCoeff() * D.minCoeff());
    if (cond > p.max_condition) return true;
    // TolFun over the last 10 + 30n/lambda generations (Hansen), and a short "flat fitness" rule: three
    // generations whose best values and latest values all agree (e.g. every point decodes to one configuration).
    auto range_over = [&](size_t last) {
      double lo = *std::min_element(losses.begin(), losses.end()), hi = *std::max_element(losses.begin(), losses.end());
      for (size_t i = best_history.size() - last; i < best_history.size(); ++i) {
        lo = std::min(lo, best_history[i]);
        hi = std::max(hi, best_history[i]);
      }
      return hi - lo;
    };
    const size_t window = 10 + static_cast<size_t>(std::ceil(30.0 * static_cast<double>(n) / static_cast<double>(lambda)));
    if (!losses.empty() && best_history.size() >= window && range_over(window) < p.tol_fun) return true;
    if (!losses.empty() && best_history.size() >= 3 && range_over(3) < p.tol_fun) return true;
    return !std::isfinite(sigma) || !D.allFinite();
  }
};

struct Slot {
  int64_t k;
  const Trial* trial;
};

std::optional<int64_t> int_attr(const Trial& t, const char* key) {
  auto it = t.attrs.find(key);
  if (it == t.attrs.end()) return std::nullopt;
  try {
    size_t used = 0;
    long long v = std::stoll(it->second, &used);
    if (used != it->second.size()) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

std::vector<int64_t> basis_attr(const Trial& t) {
  std::vector<int64_t> out;
  auto it = t.attrs.find("cma_basis");
  if (it == t.attrs.end()) return out;
  std::stringstream ss(it->second);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

Proposal CmaesTuner::ask(const History& h, int64_t number) {
  const SearchSpace& space = *h.space;
  std::vector<size_t> dims;  // numeric parameters, in space order
  for (size_t i = 0; i < space.size(); ++i) {
    const auto& p = space.params()[i];
    if (p.kind == search::ParamKind::Categorical)
      throw ConfigError("tuner 'cmaes': parameter '" + p.name +
                        "' is categorical; CMA-ES needs ordered parameters (float or int). Use tpe or gp for spaces "
                        "with categorical parameters, or make it an int");
    if (p.kind == search::ParamKind::Float || p.kind == search::ParamKind::Int) dims.push_back(i);
  }
  const size_t n = dims.size();
  auto to_proposal = [&](const Vec& x, std::map<std::string, std::string> attrs) {
    std::vector<double> u(space.size(), 0.5);
    for (size_t d = 0; d < n; ++d) u[dims[d]] = x[static_cast<Eigen::Index>(d)];
    return Proposal{space.decode(u), std::move(attrs), std::nullopt};
  };
  if (n == 0) return to_proposal(Vec(0), {});

  // Group the history's CMA trials by (restart, generation).
  std::map<std::pair<int64_t, int64_t>, std::vector<Slot>> gens;
  std::map<int64_t, const Trial*> by_number;
  for (const Trial* t : h.trials) {
    by_number[t->number] = t;
    auto r = int_attr(*t, "cma_restart"), g = int_attr(*t, "cma_gen"), k = int_attr(*t, "cma_index");
    if (r && g && k && *r >= 0 && *g >= 0 && *k >= 0) gens[{*r, *g}].push_back({*k, t});
  }
  for (auto& [key, slots] : gens)
    std::sort(slots.begin(), slots.end(), [](const Slot& a, const Slot& b) {
      return a.k != b.k ? a.k < b.k : a.trial->number < b.trial->number;
    });

  const int64_t lambda0 =
      params_.popsize > 0 ? params_.popsize : 4 + static_cast<int64_t>(std::floor(3.0 * std::log(static_cast<double>(n))));
  Run run;
  auto start_run = [&](int64_t restart) {
    int64_t lam = lambda0;
    for (int64_t i = 0; i < restart; ++i) lam = static_cast<int64_t>(std::ceil(static_cast<double>(lam) * params_.inc_popsize));
    Vec m0 = Vec::Constant(n, 0.5);
    if (restart > 0) {
      Rng rng(derive_seed(seed_, -restart, kCmaStream));
      for (size_t i = 0; i < n; ++i) m0[i] = rng.uniform();
    }
    run.init(n, lam, m0, params_.sigma0);
    run.restart = restart;
  };
  start_run(0);

  // Solutions of the current generation for a basis (trial numbers): their recomputed points and losses.
  auto solutions = [&](const std::vector<Slot>& slots, const std::vector<int64_t>& basis) {
    std::vector<std::pair<double, Vec>> sols;
    for (int64_t num : basis) {
      auto it = by_number.find(num);
      if (it == by_number.end()) continue;
      auto l = loss_of(h, *it->second);
      if (!l) continue;
      for (const auto& s : slots)
        if (s.trial->number == num) {
          sols.emplace_back(*l, run.sample(seed_, s.k));
          break;
        }
    }
    return sols;
  };

  for (int guard = 0; guard < 1000000; ++guard) {
    const auto key = std::make_pair(run.restart, run.gen);
    static const std::vector<Slot> kNone;
    auto git = gens.find(key);
    const std::vector<Slot>& slots = git == gens.end() ? kNone : git->second;
    // A recorded successor: same run next generation, or generation 0 of the next restart.
    auto next_same = gens.find({run.restart, run.gen + 1});
    auto next_restart = gens.find({run.restart + 1, 0});
    if (next_same != gens.end()) {
      auto basis = basis_attr(*next_same->second.front().trial);
      if (!run.update(solutions(slots, basis))) ++run.gen;  // an unusable basis: keep the state, move on
      continue;
    }
    if (next_restart != gens.end()) {
      start_run(run.restart + 1);
      continue;
    }
    // Current generation: close it when popsize of its slots are COMPLETE (first by slot), else hand out a slot.
    std::vector<int64_t> basis;
    for (const auto& s : slots)
      if (loss_of(h, *s.trial) && static_cast<int64_t>(basis.size()) < run.lambda) basis.push_back(s.trial->number);
    if (static_cast<int64_t>(basis.size()) < run.lambda) {
      int64_t k = 0;
      for (const auto& s : slots)
        if (s.k == k) ++k;
      return to_proposal(run.sample(seed_, k), {{"cma_restart", std::to_string(run.restart)},
                                                {"cma_gen", std::to_string(run.gen)},
                                                {"cma_index", std::to_string(k)}});
    }
    auto sols = solutions(slots, basis);
    std::vector<double> losses;
    for (const auto& s : sols) losses.push_back(s.first);
    run.update(std::move(sols));
    std::string basis_text;
    for (int64_t b : basis) basis_text += (basis_text.empty() ? "" : ",") + std::to_string(b);
    if (params_.restarts && run.converged(params_, losses)) start_run(run.restart + 1);
    return to_proposal(run.sample(seed_, 0), {{"cma_restart", std::to_string(run.restart)},
                                              {"cma_gen", std::to_string(run.gen)},
                                              {"cma_index", "0"},
                                              {"cma_basis", basis_text}});
  }
  throw Error("tuner 'cmaes': could not replay the history (too many generations)");
}

std::unique_ptr<Tuner> make_cmaes_tuner(const nlohmann::json& params, uint64_t seed) {
  return std::make_unique<CmaesTuner>(CmaesParams::from_json(params), seed);
}

}  // namespace kestrel::tuners
