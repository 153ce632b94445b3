// Bayesian optimization over architecture encodings: an exponential-kernel GP on encoding distances with its length
// scale and noise picked by marginal likelihood, and expected improvement over mutation and random candidates.
#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include <Eigen/Dense>

#include "nas/controllers.hpp"

namespace kestrel::nas {
namespace {

// A point of the model: architecture features, hyperparameter coordinates and how to weigh their distance.
struct Point {
  std::vector<double> f;
  std::vector<double> u;
};

double distance(const Point& a, const Point& b, double arch_scale) {
  double d = 0.0;
  for (size_t k = 0; k < a.f.size(); ++k) d += std::abs(a.f[k] - b.f[k]);
  d *= arch_scale;
  for (size_t k = 0; k < a.u.size(); ++k) d += std::abs(a.u[k] - b.u[k]);
  return d;
}

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }
double normal_pdf(double z) { return std::exp(-0.5 * z * z) / std::sqrt(2.0 * M_PI); }

}  // namespace

BayesController::BayesController(BayesParams p, ControllerParams common, uint64_t seed)
    : NasController(std::move(common), seed), p_(std::move(p)) {}

tuners::Proposal BayesController::ask(const tuners::History& h, int64_t number) {
  const Context ctx = read(h);
  tuners::Rng rng(tuners::derive_seed(seed_, number));
  if (static_cast<int64_t>(ctx.done.size()) < p_.n_startup) return random_unseen(ctx, rng);

  // One-hot distances count each differing decision twice; halve them so d = number of differing decisions.
  const double arch_scale = p_.encoding == "onehot" ? 0.5 : 1.0;
  auto point = [&](const Arch& a, const search::Config& hp) {
    Point pt{space_->features(a, p_.encoding), {}};
    if (ctx.hp_space.size() > 0) pt.u = ctx.hp_space.encode(hp);
    return pt;
  };

  // Training data: the newest max_points COMPLETE trials, then running ones at the mean (constant liar).
  const size_t first = ctx.done.size() > static_cast<size_t>(p_.max_points) ? ctx.done.size() - p_.max_points : 0;
  std::vector<Point> X;
  std::vector<double> yraw;
  for (size_t i = first; i < ctx.done.size(); ++i) {
    X.push_back(point(ctx.done[i].arch, ctx.done[i].hp));
    yraw.push_back(ctx.done[i].losses[0]);
  }
  const size_t n_obs = X.size();
  double mean = 0.0, sd = 0.0;
  for (double v : yraw) mean += v;
  mean /= static_cast<double>(n_obs);
  for (double v : yraw) sd += (v - mean) * (v - mean);
  sd = std::sqrt(sd / static_cast<double>(n_obs));
  if (!(sd > 0)) sd = 1.0;
  std::vector<double> y;
  for (double v : yraw) y.push_back((v - mean) / sd);
  for (const auto& o : ctx.pending) {
    X.push_back(point(o.arch, o.hp));
    y.push_back(0.0);
  }
  const int n = static_cast<int>(X.size());
  Eigen::MatrixXd D(n, n);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j <= i; ++j) D(i, j) = D(j, i) = distance(X[i], X[j], arch_scale);
  Eigen::Map<const Eigen::VectorXd> yv(y.data(), n);

  // Hyperparameters by marginal likelihood on a grid: cheap (a few Cholesky factors), deterministic, and enough
  // for a one-parameter kernel on standardized outputs.
  double best_lml = -std::numeric_limits<double>::infinity(), ls = 1.0;
  Eigen::LLT<Eigen::MatrixXd> best_llt;
  for (double l : {0.5, 1.0, 2.0, 4.0, 8.0})
    for (double s2 : {1e-3, 1e-2, 1e-1, 0.3}) {
      Eigen::MatrixXd K = (-D.array() / l).exp().matrix();
      K.diagonal().array() += s2;
      Eigen::LLT<Eigen::MatrixXd> llt(K);
      if (llt.info() != Eigen::Success) continue;
      const Eigen::VectorXd alpha = llt.solve(yv);
      const double lml = -0.5 * yv.dot(alpha) - llt.matrixLLT().diagonal().array().log().sum();
      if (lml > best_lml) {
        best_lml = lml;
        ls = l;
        best_llt = llt;
      }
    }
  if (!std::isfinite(best_lml)) return random_unseen(ctx, rng);
  const Eigen::VectorXd alpha = best_llt.solve(yv);

  // Candidates: neighbours of the best trials, double edits of the best one, uniform draws; unseen and distinct.
  std::vector<size_t> by_loss(n_obs);
  for (size_t i = 0; i < n_obs; ++i) by_loss[i] = first + i;
  std::stable_sort(by_loss.begin(), by_loss.end(),
                   [&](size_t a, size_t b) { return ctx.done[a].losses[0] < ctx.done[b].losses[0]; });
  std::vector<std::pair<Arch, search::Config>> cands;
  std::set<std::string> cand_keys;
  auto add = [&](const Arch& a, const search::Config& hp) {
    if (!acceptable(a)) return;
    const std::string k = key(a, hp, ctx.hp_space);
    if ((common_.dedup != "none" && ctx.seen.count(k)) || !cand_keys.insert(k).second) return;
    cands.emplace_back(a, hp);
  };
  const size_t parents = std::min<size_t>(static_cast<size_t>(p_.n_parents), by_loss.size());
  for (size_t r = 0; r < parents; ++r) {
    const Observation& par = ctx.done[by_loss[r]];
    const std::vector<Arch> nb = space_->neighbors(par.arch);
    for (const Arch& b : nb) {
      add(b, par.hp);
      if (r == 0)
        for (const Arch& c : space_->neighbors(b)) add(c, par.hp);
    }
    if (active_hp_count(ctx.hp_space, par.hp) > 0)
      for (int k = 0; k < 8; ++k) add(par.arch, mutate_hp(ctx.hp_space, par.hp, 0.2, rng));
  }
  for (int64_t k = 0; k < p_.n_random; ++k) add(draw_arch(rng), tuners::sample_uniform(ctx.hp_space, rng));
  if (cands.empty()) return random_unseen(ctx, rng);

  // Acquisition (minimizing the standardized loss).
  double y_best = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < n_obs; ++i) y_best = std::min(y_best, y[i]);
  double best_score = -std::numeric_limits<double>::infinity();
  size_t best = 0;
  Eigen::VectorXd k(n);
  for (size_t c = 0; c < cands.size(); ++c) {
    const Point pc = point(cands[c].first, cands[c].second);
    for (int i = 0; i < n; ++i) k(i) = std::exp(-distance(pc, X[i], arch_scale) / ls);
    const double mu = k.dot(alpha);
    const Eigen::VectorXd v = best_llt.matrixL().solve(k);
    const double sigma = std::sqrt(std::max(1.0 - v.squaredNorm(), 1e-12));
    double score;
    if (p_.acquisition == "ucb") {
      score = -(mu - p_.ucb_kappa * sigma);
    } else {
      const double z = (y_best - mu) / sigma;
      score = (y_best - mu) * normal_cdf(z) + sigma * normal_pdf(z);
    }
    if (score > best_score) {
      best_score = score;
      best = c;
    }
  }
  return propose(cands[best].first, cands[best].second);
}

}  // namespace kestrel::nas
