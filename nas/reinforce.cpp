// REINFORCE with a factorized softmax policy, a moving-average baseline, advantage normalization and an entropy
// bonus; the policy is rebuilt by replaying the COMPLETE trials in trial-number order.
#include <algorithm>
#include <cmath>

#include "nas/controllers.hpp"

namespace kestrel::nas {
namespace {

std::vector<double> softmax(const std::vector<double>& z) {
  const double m = *std::max_element(z.begin(), z.end());
  std::vector<double> p(z.size());
  double s = 0.0;
  for (size_t k = 0; k < z.size(); ++k) s += (p[k] = std::exp(z[k] - m));
  for (double& x : p) x /= s;
  return p;
}

}  // namespace

ReinforceController::ReinforceController(ReinforceParams p, ControllerParams common, uint64_t seed)
    : NasController(std::move(common), seed), p_(p) {}

std::vector<std::vector<double>> ReinforceController::replay(const Context& ctx) const {
  std::vector<std::vector<double>> theta(space_->num_decisions());
  for (size_t i = 0; i < theta.size(); ++i) theta[i].assign(space_->choices(i).size(), 0.0);
  double baseline = 0.0, var = 0.0;
  bool first = true;
  for (const Observation& o : ctx.done) {
    const double r = -o.losses[0];
    double adv = 0.0;
    if (first) {
      baseline = r;
      first = false;
    } else {
      // Normalize by the running spread so the step size does not depend on the metric's units; before any
      // spread is seen there is nothing to compare with.
      adv = var > 0 ? std::clamp((r - baseline) / std::sqrt(var), -5.0, 5.0) : 0.0;
      const double d = r - baseline;
      baseline = p_.baseline_decay * baseline + (1 - p_.baseline_decay) * r;
      var = p_.baseline_decay * var + (1 - p_.baseline_decay) * d * d;
    }
    // Credit goes only to decisions that could have changed the reward: a dead edge's choice (one on no
    // input-output path) did not influence it, and updating its logits would only add noise.
    const std::vector<bool> live = p_.credit == "live" ? live_decisions(o.arch) : std::vector<bool>{};
    for (size_t i = 0; i < theta.size(); ++i) {
      if (!space_->active(o.arch, i) || (!live.empty() && !live[i])) continue;
      const std::vector<double> p = softmax(theta[i]);
      double ent = 0.0;
      for (double x : p) ent -= x > 0 ? x * std::log(x) : 0.0;
      for (size_t k = 0; k < p.size(); ++k) {
        const double logp = p[k] > 0 ? std::log(p[k]) : -700.0;
        const double grad_logpi = (static_cast<int>(k) == o.arch[i] ? 1.0 : 0.0) - p[k];
        const double grad_ent = -p[k] * (logp + ent);
        theta[i][k] += p_.learning_rate * (adv * grad_logpi + p_.entropy_weight * grad_ent);
      }
    }
  }
  return theta;
}

std::vector<std::vector<double>> ReinforceController::policy(const tuners::History& h) const {
  const auto theta = replay(read(h));
  std::vector<std::vector<double>> out;
  for (const auto& t : theta) out.push_back(softmax(t));
  return out;
}

tuners::Proposal ReinforceController::ask(const tuners::History& h, int64_t number) {
  const Context ctx = read(h);
  tuners::Rng rng(tuners::derive_seed(seed_, number));
  std::vector<std::vector<double>> pol;
  for (const auto& t : replay(ctx)) pol.push_back(softmax(t));
  for (int tries = 0; tries < 200; ++tries) {
    Arch a(space_->num_decisions(), 0);
    // Decisions in order: whether a later one is active depends only on earlier ones (depth first).
    for (size_t i = 0; i < a.size(); ++i) {
      if (!space_->active(a, i)) continue;
      double u = rng.uniform(), acc = 0.0;
      int k = 0;
      for (; k + 1 < static_cast<int>(pol[i].size()); ++k)
        if (u < (acc += pol[i][k])) break;
      a[i] = k;
    }
    a = space_->normalize(a);
    if (!acceptable(a)) continue;
    const search::Config hp = tuners::sample_uniform(ctx.hp_space, rng);
    if (common_.dedup == "none" || !ctx.seen.count(key(a, hp, ctx.hp_space))) return propose(a, hp);
  }
  // The policy has collapsed onto architectures already evaluated: fall back to a uniform unseen one.
  return random_unseen(ctx, rng);
}

}  // namespace kestrel::nas
