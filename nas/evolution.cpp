// Regularized evolution (Real et al. 2019) over architectures and hyperparameters, with an NSGA-II selection
// (non-dominated rank, crowding distance) for several objectives.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>

#include <Eigen/Dense>

#include "common/error.hpp"
#include "nas/controllers.hpp"
#include "nas/pareto.hpp"

namespace kestrel::nas {
namespace {

// Bayesian linear regression y = w.x + e with w ~ N(0, I / alpha), e ~ N(0, 1 / beta), on standardized targets
// (Bishop, PRML 3.3). alpha and beta are chosen on a small grid by the evidence (PRML 3.86), which is cheap for the
// few dozen features of a one-hot encoding and adapts the model's confidence to how additive the objective is.
// sample() returns one weight vector from the posterior N(m, A^-1), A = alpha I + beta X'X.
class BayesLinear {
 public:
  bool fit(const std::vector<std::vector<double>>& X, const std::vector<double>& y_raw) {
    const int n = static_cast<int>(X.size());
    if (n < 2) return false;
    d_ = static_cast<int>(X[0].size()) + 1;  // + intercept
    Eigen::MatrixXd Phi(n, d_);
    for (int i = 0; i < n; ++i) {
      Phi(i, 0) = 1.0;
      for (int k = 1; k < d_; ++k) Phi(i, k) = X[i][k - 1];
    }
    double mean = 0, sd = 0;
    for (double v : y_raw) mean += v;
    mean /= n;
    for (double v : y_raw) sd += (v - mean) * (v - mean);
    sd = std::sqrt(sd / n);
    if (!(sd > 0)) sd = 1.0;
    Eigen::VectorXd y(n);
    for (int i = 0; i < n; ++i) y(i) = (y_raw[i] - mean) / sd;
    const Eigen::MatrixXd G = Phi.transpose() * Phi;
    const Eigen::VectorXd b = Phi.transpose() * y;
    double best = -std::numeric_limits<double>::infinity();
    for (double alpha : {0.1, 0.3, 1.0, 3.0, 10.0})
      for (double beta : {1.0, 3.0, 10.0, 30.0, 100.0}) {
        Eigen::MatrixXd A = beta * G;
        A.diagonal().array() += alpha;
        Eigen::LLT<Eigen::MatrixXd> llt(A);
        if (llt.info() != Eigen::Success) continue;
        const Eigen::VectorXd m = beta * llt.solve(b);
        const double e = 0.5 * beta * (y - Phi * m).squaredNorm() + 0.5 * alpha * m.squaredNorm();
        const double logdet = 2.0 * llt.matrixLLT().diagonal().array().log().sum();
        const double ev = 0.5 * d_ * std::log(alpha) + 0.5 * n * std::log(beta) - e - 0.5 * logdet;
        if (ev > best) {
          best = ev;
          m_ = m;
          llt_ = llt;
        }
      }
    return std::isfinite(best);
  }
  Eigen::VectorXd sample(tuners::Rng& rng) const {
    Eigen::VectorXd z(d_);
    for (int k = 0; k < d_; ++k) z(k) = rng.normal();
    // A = L L'; w = m + L'^-1 z has covariance (L L')^-1 = A^-1.
    return m_ + llt_.matrixU().solve(z);
  }
  static double predict(const Eigen::VectorXd& w, const std::vector<double>& x) {
    double s = w(0);
    for (size_t k = 0; k < x.size(); ++k) s += w(static_cast<int>(k) + 1) * x[k];
    return s;
  }

 private:
  int d_ = 0;
  Eigen::VectorXd m_;
  Eigen::LLT<Eigen::MatrixXd> llt_;
};

}  // namespace

EvolutionController::EvolutionController(EvolutionParams p, ControllerParams common, uint64_t seed)
    : NasController(std::move(common), seed), p_(std::move(p)) {}

tuners::Proposal EvolutionController::ask(const tuners::History& h, int64_t number) {
  const Context ctx = read(h);
  tuners::Rng rng(tuners::derive_seed(seed_, number));
  const size_t P = static_cast<size_t>(p_.population);
  if (ctx.done.size() < P) return random_unseen(ctx, rng);

  const bool nsga = p_.selection == "nsga2" || (p_.selection == "auto" && ctx.objectives > 1);
  // Population and a "better than" order on it.
  std::vector<const Observation*> pop;
  std::vector<int> rank;
  std::vector<double> crowd;
  if (!nsga) {
    // Aging: the P newest COMPLETE trials; the oldest die whatever their fitness.
    for (size_t i = ctx.done.size() - P; i < ctx.done.size(); ++i) pop.push_back(&ctx.done[i]);
  } else {
    // Elitist NSGA-II environment selection over every COMPLETE trial.
    std::vector<std::vector<double>> pts;
    for (const auto& o : ctx.done) pts.push_back(o.losses);
    const std::vector<int> r = nondominated_ranks(pts);
    const std::vector<double> c = crowding_distances(pts, r);
    std::vector<size_t> idx(ctx.done.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return crowded_less(r[a], c[a], r[b], c[b]); });
    for (size_t k = 0; k < P; ++k) {
      pop.push_back(&ctx.done[idx[k]]);
      rank.push_back(r[idx[k]]);
      crowd.push_back(c[idx[k]]);
    }
  }
  auto better = [&](size_t a, size_t b) {
    if (nsga) return crowded_less(rank[a], crowd[a], rank[b], crowd[b]);
    return pop[a]->losses[0] < pop[b]->losses[0];
  };

  // The mutation guide: a model of the first objective over every COMPLETE trial (single objective only).
  auto features = [&](const Arch& a, const search::Config& hp) {
    std::vector<double> f = live_onehot(a);
    if (ctx.hp_space.size() > 0)
      for (double u : ctx.hp_space.encode(hp)) f.push_back(u);
    return f;
  };
  BayesLinear model;
  bool guided = false;
  if (p_.mutation == "thompson" && !nsga) {
    std::vector<std::vector<double>> X;
    std::vector<double> y;
    for (const auto& o : ctx.done) {
      X.push_back(features(o.arch, o.hp));
      y.push_back(o.losses[0]);
    }
    guided = model.fit(X, y);
  }
  // Among unseen candidate children, the one a posterior draw predicts best (smallest loss); uniform when unguided.
  auto choose = [&](const std::vector<std::pair<Arch, search::Config>>& cands) -> std::optional<size_t> {
    std::vector<size_t> fresh;
    for (size_t c = 0; c < cands.size(); ++c)
      if (common_.dedup == "none" || !ctx.seen.count(key(cands[c].first, cands[c].second, ctx.hp_space)))
        fresh.push_back(c);
    if (fresh.empty()) return std::nullopt;
    if (!guided) return fresh[static_cast<size_t>(rng.below(static_cast<int64_t>(fresh.size())))];
    const Eigen::VectorXd w = model.sample(rng);
    size_t best = fresh[0];
    double best_loss = std::numeric_limits<double>::infinity();
    for (size_t c : fresh) {
      const double l = BayesLinear::predict(w, features(cands[c].first, cands[c].second));
      if (l < best_loss) {
        best_loss = l;
        best = c;
      }
    }
    return best;
  };

  const size_t S = static_cast<size_t>(p_.sample_size);
  std::vector<size_t> order(pop.size());
  for (int attempt = 0; attempt < 50; ++attempt) {
    // Tournament: S distinct members (partial Fisher-Yates), the best is the parent.
    std::iota(order.begin(), order.end(), 0);
    for (size_t k = 0; k < S; ++k)
      std::swap(order[k], order[k + static_cast<size_t>(rng.below(static_cast<int64_t>(order.size() - k)))]);
    size_t parent = order[0];
    for (size_t k = 1; k < S; ++k)
      if (better(order[k], parent)) parent = order[k];
    const Observation& par = *pop[parent];

    const size_t H = active_hp_count(ctx.hp_space, par.hp);
    size_t active_decisions = 0;
    for (size_t i = 0; i < par.arch.size(); ++i) active_decisions += space_->active(par.arch, i);
    const bool mutate_hp_now =
        H > 0 && rng.uniform() < static_cast<double>(H) / static_cast<double>(H + active_decisions);
    std::vector<std::pair<Arch, search::Config>> cands;
    if (mutate_hp_now) {
      // Unguided, one draw as before; guided, several draws for the model to choose from.
      const int64_t k = guided ? p_.hp_candidates : 1;
      for (int64_t j = 0; j < k; ++j) cands.emplace_back(par.arch, mutate_hp(ctx.hp_space, par.hp, p_.hp_sigma, rng));
    } else {
      for (const Arch& b : space_->neighbors(par.arch)) cands.emplace_back(b, par.hp);
    }
    if (const auto c = choose(cands)) return propose(cands[*c].first, cands[*c].second);
  }
  // Every mutation tried was already in the study (a converged population): explore instead.
  return random_unseen(ctx, rng);
}

}  // namespace kestrel::nas
