// GpTuner: the ask of Gaussian-process BO: encoding of mixed/conditional spaces, start-up design, model fit on a
// bounded subset, fantasies for running trials, and the mixed continuous/discrete acquisition search.
#include "tuners/gp.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "common/error.hpp"
#include "tuners/constraints.hpp"
#include "tuners/gp_acquisition.hpp"
#include "tuners/gp_lbfgs.hpp"
#include "tuners/gp_model.hpp"
#include "tuners/gp_warp.hpp"
#include "tuners/params.hpp"
#include "tuners/sobol.hpp"
#include "tuners/support.hpp"

namespace kestrel::tuners {

using search::ParamKind;
using search::Value;

GpParams GpParams::from_json(const nlohmann::json& j) {
  GpParams p;
  ParamReader r("tuner 'gp'", j);
  r.get("n_startup_trials", p.n_startup_trials);
  r.get("acquisition", p.acquisition);
  r.get("ucb_kappa", p.ucb_kappa);
  r.get("xi", p.xi);
  r.get("n_candidates", p.n_candidates);
  r.get("n_local_candidates", p.n_local_candidates);
  r.get("n_refine", p.n_refine);
  r.get("refine_rounds", p.refine_rounds);
  r.get("refine_iters", p.refine_iters);
  r.get("output_warp", p.output_warp);
  r.get("fit_restarts", p.fit_restarts);
  r.get("fit_iters", p.fit_iters);
  r.get("min_noise", p.min_noise);
  r.get("priors", p.priors);
  r.get("max_model_points", p.max_model_points);
  r.get("max_fit_points", p.max_fit_points);
  r.get("pending", p.pending);
  r.get("parego_rho", p.parego_rho);
  r.get("restart_patience", p.restart_patience);
  r.get("restart_tol", p.restart_tol);
  r.get("restart_share", p.restart_share);
  r.finish();
  r.require(p.n_startup_trials >= -1, "n_startup_trials", "must be >= 0 (or -1 for automatic)");
  gp::acq_kind_from_string(p.acquisition);
  r.require(p.ucb_kappa >= 0, "ucb_kappa", "must be >= 0");
  r.require(p.xi >= 0, "xi", "must be >= 0");
  r.require(p.n_candidates >= 1, "n_candidates", "must be >= 1");
  r.require(p.n_local_candidates >= 0, "n_local_candidates", "must be >= 0");
  r.require(p.n_refine >= 0, "n_refine", "must be >= 0");
  r.require(p.refine_rounds >= 1, "refine_rounds", "must be >= 1");
  r.require(p.refine_iters >= 1, "refine_iters", "must be >= 1");
  r.require(p.output_warp == "yeo_johnson" || p.output_warp == "none", "output_warp",
            "must be yeo_johnson or none");
  r.require(p.fit_restarts >= 1, "fit_restarts", "must be >= 1");
  r.require(p.fit_iters >= 1, "fit_iters", "must be >= 1");
  r.require(p.min_noise > 0 && p.min_noise < 1, "min_noise", "must be in (0, 1)");
  r.require(p.max_model_points >= 10, "max_model_points", "must be >= 10");
  r.require(p.max_fit_points >= 10, "max_fit_points", "must be >= 10");
  r.require(p.pending == "believer" || p.pending == "liar_min" || p.pending == "liar_mean" ||
                p.pending == "liar_max" || p.pending == "ignore",
            "pending", "must be one of believer, liar_min, liar_mean, liar_max, ignore");
  r.require(p.parego_rho >= 0, "parego_rho", "must be >= 0");
  r.require(p.restart_patience >= -1, "restart_patience", "must be >= 0 (0 disables; -1 for automatic)");
  r.require(p.restart_tol >= 0, "restart_tol", "must be >= 0");
  r.require(p.restart_share > 0 && p.restart_share <= 1, "restart_share", "must be in (0, 1]");
  return p;
}

namespace {

// Streams of derive_seed(seed, number, stream): one per independent random decision of an ask.
enum Stream : uint64_t {
  kStartupFill = 0x67700001,
  kStartupDedup,
  kParego,
  kModelSubset,
  kFitSubset,
  kFitStarts,
  kCandidates,
  kFallback,
  kConstraintSubset,
  kConstraintFit,  // + 0x100 * (constraint index)
  kRestartDesign,  // with the segment index in place of the trial number
};

// What this represents: how one search space maps to GP inputs (see GpTuner's contract). Built per ask (cheap).
class Layout {
 public:
  enum class Kind { None, Cont, Disc, Cat };
  struct Slot {
    Kind kind = Kind::None;
    int offset = 0;  // first input column
    int width = 0;   // number of input columns
    int64_t card = 0;
    int parent = -1;  // index of the condition's parent, -1 when unconditional
  };

  explicit Layout(const SearchSpace& s) : space_(s) {
    const auto& ps = s.params();
    for (size_t i = 0; i < ps.size(); ++i) {
      const auto& p = ps[i];
      Slot sl;
      switch (p.kind) {
        case ParamKind::Fixed: sl.kind = Kind::None; break;
        case ParamKind::Categorical:
          sl.card = static_cast<int64_t>(p.choices.size());
          sl.kind = sl.card > 1 ? Kind::Cat : Kind::None;
          sl.width = sl.card > 1 ? static_cast<int>(sl.card) : 0;
          break;
        case ParamKind::Int:
          sl.kind = Kind::Disc;
          sl.width = 1;
          break;
        case ParamKind::Float:
          sl.kind = p.step ? Kind::Disc : Kind::Cont;
          sl.width = 1;
          break;
      }
      sl.offset = n_inputs_;
      n_inputs_ += sl.width;
      if (sl.kind != Kind::None) ++n_free_;
      if (p.condition) sl.parent = static_cast<int>(*s.index_of(p.condition->parent));
      slots_.push_back(sl);
    }
  }

  int n_inputs() const { return n_inputs_; }
  int n_free() const { return n_free_; }
  size_t size() const { return slots_.size(); }
  const Slot& slot(size_t i) const { return slots_[i]; }
  const SearchSpace& space() const { return space_; }

  // Inputs of a trial's configuration; throws ConfigError when a value is not in the space.
  void from_config(const Config& c, double* f) const {
    const auto& ps = space_.params();
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& sl = slots_[i];
      if (sl.kind == Kind::None) continue;
      auto it = c.find(ps[i].name);
      if (it == c.end()) {
        impute(sl, f);
        continue;
      }
      write(i, space_.encode_one(i, it->second), f);
    }
  }

  // Inputs of the configuration that the cube point u decodes to (u has one coordinate per parameter, as in
  // SearchSpace::decode); `active` (if non-null) receives which parameters are active.
  void from_cube(const std::vector<double>& u, double* f, std::vector<char>* active = nullptr) const {
    const auto& ps = space_.params();
    std::vector<Value> vals(slots_.size());
    std::vector<char> act(slots_.size(), 0);
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& sl = slots_[i];
      bool on = true;
      if (sl.parent >= 0) {
        on = act[sl.parent] != 0;
        if (on) {
          on = false;
          for (const auto& v : ps[i].condition->values) on = on || search::values_equal(v, vals[sl.parent]);
        }
      }
      act[i] = on;
      if (!on) {
        if (sl.kind != Kind::None) impute(sl, f);
        continue;
      }
      vals[i] = space_.decode_one(i, u[i]);
      if (sl.kind == Kind::None) continue;
      // A continuous coordinate is its own input (exactly, so the refinement's gradient is the model's).
      double e = sl.kind == Kind::Cont ? std::clamp(u[i], 0.0, 1.0) : space_.encode_one(i, vals[i]);
      write(i, e, f);
    }
    if (active) *active = std::move(act);
  }

 private:
  void impute(const Slot& sl, double* f) const {
    if (sl.kind == Kind::Cat)
      std::fill(f + sl.offset, f + sl.offset + sl.width, 0.0);
    else
      f[sl.offset] = 0.5;
  }
  void write(size_t i, double e, double* f) const {
    const Slot& sl = slots_[i];
    if (sl.kind == Kind::Cat) {
      int64_t idx = std::min<int64_t>(sl.card - 1, static_cast<int64_t>(std::floor(e * static_cast<double>(sl.card))));
      std::fill(f + sl.offset, f + sl.offset + sl.width, 0.0);
      f[sl.offset + idx] = 1.0;
    } else {
      f[sl.offset] = e;
    }
  }

  const SearchSpace& space_;
  std::vector<Slot> slots_;
  int n_inputs_ = 0;
  int n_free_ = 0;
};

// A randomized Sobol' design over P coordinates: linear matrix scrambling plus a digital shift, both drawn from
// `rng`; coordinates past the tabulated dimensions come from a uniform stream.
class SobolDesign {
 public:
  SobolDesign(size_t P, Rng& rng) : P_(P), d_(std::min(P, kSobolMaxDims)) {
    if (d_ > 0) dirs_ = scramble_directions(sobol_directions(d_), rng.bits());
    shift_.resize(d_);
    for (auto& w : shift_) w = static_cast<uint32_t>(rng.bits() >> 32);
  }
  std::vector<double> point(uint64_t index, Rng& fill) const {
    std::vector<double> u = d_ > 0 ? sobol_point(index, dirs_, &shift_) : std::vector<double>{};
    u.resize(P_);
    for (size_t i = d_; i < P_; ++i) u[i] = fill.uniform();
    return u;
  }

 private:
  size_t P_, d_;
  SobolDirections dirs_;
  std::vector<uint32_t> shift_;
};

// True with probability 1 - p: the coordinate is left alone.
bool rng_skip(Rng& rng, double p) { return rng.uniform() >= p; }

// Indices of `keep` points out of y.size(): the best half by y plus a seeded uniform subsample of the rest,
// returned in ascending order (so the model sees trials in history order).
std::vector<int> choose_subset(const std::vector<double>& y, int keep, Rng& rng) {
  const int n = static_cast<int>(y.size());
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  if (n <= keep) return idx;
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return y[a] < y[b]; });
  int best = keep / 2;
  std::vector<int> out(idx.begin(), idx.begin() + best);
  std::vector<int> rest(idx.begin() + best, idx.end());
  std::sort(rest.begin(), rest.end());
  // Partial Fisher-Yates over the rest.
  for (int i = 0; i < keep - best; ++i) {
    int j = i + static_cast<int>(rng.below(static_cast<int64_t>(rest.size()) - i));
    std::swap(rest[i], rest[j]);
    out.push_back(rest[i]);
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Scored {
  double value;
  std::vector<double> u;
};

// One additive term of the (log-scale) acquisition: a model and the acquisition read from its posterior. The
// objective contributes log-EI (or UCB / log-PI); each constraint contributes log P(c(x) <= 0) as a log-PI term
// with its standardized threshold as the "incumbent", so the sum is log(EI x PoF_1 x ... x PoF_K).
struct AcqTerm {
  const gp::GpModel* model;
  gp::Acquisition acq;
};

// The acquisition search over cube points u of one space (see GpParams for the policy).
class AcqSearch {
 public:
  AcqSearch(const Layout& lay, std::vector<AcqTerm> terms, const GpParams& p)
      : lay_(lay), terms_(std::move(terms)), p_(p), f_(lay.n_inputs()), g_(lay.n_inputs()) {}

  // Sum of the terms at model input f; when grad != nullptr it receives the gradient (n_inputs entries). The first
  // term is assigned, not added to 0, so a single-term acquisition is bit-identical to that term alone.
  double value_at(const double* f, double* grad) {
    double v = 0.0;
    for (size_t k = 0; k < terms_.size(); ++k) {
      const auto& t = terms_[k];
      if (k == 0) {
        v = t.acq.at(*t.model, f, grad);
        continue;
      }
      v += t.acq.at(*t.model, f, grad ? g_.data() : nullptr);
      if (grad)
        for (size_t d = 0; d < g_.size(); ++d) grad[d] += g_[d];
    }
    return v;
  }

  double eval(const std::vector<double>& u) {
    lay_.from_cube(u, f_.data());
    return value_at(f_.data(), nullptr);
  }

  // Batch value of many cube points (rows of U as vectors).
  std::vector<double> eval_batch(const std::vector<std::vector<double>>& U) {
    gp::RowMatrix F(static_cast<Eigen::Index>(U.size()), lay_.n_inputs());
    for (size_t i = 0; i < U.size(); ++i) lay_.from_cube(U[i], F.row(static_cast<Eigen::Index>(i)).data());
    std::vector<double> out(U.size(), 0.0);
    Eigen::VectorXd mu, var;
    for (size_t k = 0; k < terms_.size(); ++k) {
      terms_[k].model->predict(F, mu, var);
      for (size_t i = 0; i < U.size(); ++i) {
        double a = terms_[k].acq.from_moments(mu[i], std::sqrt(var[i]));
        out[i] = k == 0 ? a : out[i] + a;
      }
    }
    return out;
  }

  // Local refinement from u (value a): alternating L-BFGS-B over active continuous coordinates and greedy
  // neighbour moves over active int/step/categorical coordinates, so every point evaluated is a valid one.
  Scored refine(std::vector<double> u, double a) {
    const SearchSpace& space = lay_.space();
    for (int64_t round = 0; round < p_.refine_rounds; ++round) {
      bool improved = false;
      std::vector<char> active;
      lay_.from_cube(u, f_.data(), &active);
      std::vector<size_t> cont;
      for (size_t i = 0; i < lay_.size(); ++i)
        if (active[i] && lay_.slot(i).kind == Layout::Kind::Cont) cont.push_back(i);
      if (!cont.empty()) {
        Eigen::VectorXd z(static_cast<Eigen::Index>(cont.size()));
        for (size_t c = 0; c < cont.size(); ++c) z[static_cast<Eigen::Index>(c)] = u[cont[c]];
        std::vector<double> w = u, g(lay_.n_inputs());
        auto f = [&](const Eigen::VectorXd& zz, Eigen::VectorXd& grad) {
          for (size_t c = 0; c < cont.size(); ++c) w[cont[c]] = zz[static_cast<Eigen::Index>(c)];
          lay_.from_cube(w, f_.data());
          double v = value_at(f_.data(), g.data());
          for (size_t c = 0; c < cont.size(); ++c)
            grad[static_cast<Eigen::Index>(c)] = -g[lay_.slot(cont[c]).offset];
          return -v;
        };
        gp::LbfgsOptions opt;
        opt.max_iters = static_cast<int>(p_.refine_iters);
        opt.grad_tol = 1e-6;
        opt.rel_f_tol = 1e-10;
        Eigen::VectorXd lo = Eigen::VectorXd::Zero(z.size()), hi = Eigen::VectorXd::Ones(z.size());
        double v = -gp::minimize_box(f, z, lo, hi, opt);
        if (v > a) {
          for (size_t c = 0; c < cont.size(); ++c) u[cont[c]] = z[static_cast<Eigen::Index>(c)];
          if (v > a + 1e-12 * std::max(1.0, std::fabs(a))) improved = true;
          a = v;
        }
      }
      for (size_t i = 0; i < lay_.size(); ++i) {
        lay_.from_cube(u, f_.data(), &active);
        if (!active[i]) continue;
        const auto& sl = lay_.slot(i);
        std::vector<double> moves;
        if (sl.kind == Layout::Kind::Cat) {
          for (int64_t c = 0; c < sl.card; ++c) moves.push_back((static_cast<double>(c) + 0.5) / sl.card);
        } else if (sl.kind == Layout::Kind::Disc) {
          const auto& ps = space.params()[i];
          double v0 = search::as_double(space.decode_one(i, u[i]));
          double step = ps.step && !ps.log ? *ps.step : 1.0;
          for (double m = 1; m <= 64; m *= 2)
            for (double sgn : {-1.0, 1.0}) {
              double v = v0 + sgn * m * step;
              if (v < ps.low - 1e-9 * step || v > ps.high + 1e-9 * step) continue;
              Value val = ps.kind == ParamKind::Int ? Value{static_cast<int64_t>(std::llround(v))} : Value{v};
              moves.push_back(space.encode_one(i, val));
            }
        } else {
          continue;
        }
        double best_v = a, best_m = u[i];
        double keep = u[i];
        for (double m : moves) {
          u[i] = m;
          double v = eval(u);
          if (v > best_v + 1e-12 * std::max(1.0, std::fabs(best_v))) {
            best_v = v;
            best_m = m;
          }
        }
        u[i] = best_v > a ? best_m : keep;
        if (best_v > a) {
          a = best_v;
          improved = true;
        }
      }
      if (!improved) break;
    }
    return {a, std::move(u)};
  }

 private:
  const Layout& lay_;
  std::vector<AcqTerm> terms_;
  const GpParams& p_;
  std::vector<double> f_, g_;
};

// Restart segment of a trial (GpTuner::kAttrRestart), 0 for the main stream or an unreadable attr.
int64_t restart_segment(const Trial& t) {
  auto it = t.attrs.find(GpTuner::kAttrRestart);
  if (it == t.attrs.end()) return 0;
  try {
    return std::max<int64_t>(0, std::stoll(it->second));
  } catch (const std::exception&) {
    return 0;
  }
}

// Values the stagnation rule reads, in trial-number order: the minimized objective of one-objective trials,
// +inf for a trial that violates a constraint (it cannot be the incumbent).
std::vector<double> stagnation_values(const std::vector<const Trial*>& ts, const History& h) {
  const double sign = h.objectives.empty() ? 1.0 : search::minimize_sign(h.objectives[0].direction);
  std::vector<double> v;
  v.reserve(ts.size());
  for (const Trial* t : ts) {
    auto c = constraints_of(*t);
    v.push_back(c && !feasible(*c) ? std::numeric_limits<double>::infinity() : sign * t->values[0]);
  }
  return v;
}

// Improvement of the best value over the last `patience` of v (in order), in the units the model sees: the finite
// values warped as the objective's model warps them (GpParams::output_warp; mean 0, sd 1). -1 when there are fewer
// than n_startup + patience values or none is finite before the window (no basin to leave yet).
double recent_gain(const std::vector<double>& v, int64_t n_startup, int64_t patience, const std::string& warp) {
  const int64_t n = static_cast<int64_t>(v.size());
  if (patience <= 0 || n < std::max<int64_t>(1, n_startup) + patience) return -1.0;
  std::vector<double> fin;
  int64_t n_before = 0;  // finite values before the window
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(v[i])) {
      fin.push_back(v[i]);
      n_before += i < n - patience;
    }
  if (n_before == 0) return -1.0;
  Eigen::Map<Eigen::VectorXd> z(fin.data(), static_cast<Eigen::Index>(fin.size()));
  double mu = z.mean();
  double sd = z.size() > 1 ? std::sqrt((z.array() - mu).square().sum() / static_cast<double>(z.size() - 1)) : 0.0;
  if (!(sd > 0.0) || !std::isfinite(sd)) return 0.0;  // all equal: nothing improves
  z = (z.array() - mu) / sd;
  if (warp == "yeo_johnson") {
    Eigen::VectorXd w = z;
    gp::warp_outputs(w);
    z = w;
  }
  const double before = *std::min_element(fin.begin(), fin.begin() + n_before);
  return before - *std::min_element(fin.begin(), fin.end());
}

// The stagnation rule of GpParams::restart_*: the best improved by at most `tol` (model units) over the window.
bool stagnant(const std::vector<double>& v, int64_t n_startup, int64_t patience, double tol, const std::string& warp) {
  double g = recent_gain(v, n_startup, patience, warp);
  return g >= 0.0 && g <= tol;
}

// Whether trial `number` belongs to the restart stream's share: the asks where floor(share * number) steps up,
// evenly spread (share 0.5: every odd number; 1: every ask).
bool share_pick(int64_t number, double share) {
  return std::floor(share * static_cast<double>(number + 1)) > std::floor(share * static_cast<double>(number));
}

// The model-based ask over the trials `done` (data) and `pending` (fantasies): fit, acquisition search, and the best
// valid configuration not in `seen`. Requires done.size() >= 1 and every trial in done/pending encodable by `lay`.
Proposal model_proposal(const GpParams& params, uint64_t seed, const History& h, const Layout& lay,
                        const std::vector<const Trial*>& done, const std::vector<const Trial*>& pending,
                        const std::unordered_set<std::string>& seen, int64_t number) {
  const SearchSpace& space = lay.space();
  const size_t P = space.size();
  const size_t M = std::max<size_t>(1, h.objectives.size());

  // Objective to minimize, one per COMPLETE trial.
  const int n_all = static_cast<int>(done.size());
  std::vector<double> y(n_all);
  if (M == 1) {
    double s = h.objectives.empty() ? 1.0 : search::minimize_sign(h.objectives[0].direction);
    for (int i = 0; i < n_all; ++i) y[i] = s * done[i]->values[0];
  } else {
    // ParEGO: normalize each objective to [0, 1] over the data, then augmented Chebyshev with fresh weights.
    Rng rng(derive_seed(seed, number, kParego));
    std::vector<double> lam(M);
    double tot = 0.0;
    for (auto& l : lam) tot += (l = -std::log(1.0 - rng.uniform()));
    for (auto& l : lam) l /= tot;
    std::vector<double> lo(M, std::numeric_limits<double>::infinity()), hi(M, -lo[0]);
    for (const Trial* t : done)
      for (size_t m = 0; m < M; ++m) {
        double v = search::minimize_sign(h.objectives[m].direction) * t->values[m];
        lo[m] = std::min(lo[m], v);
        hi[m] = std::max(hi[m], v);
      }
    for (int i = 0; i < n_all; ++i) {
      double mx = -std::numeric_limits<double>::infinity(), sum = 0.0;
      for (size_t m = 0; m < M; ++m) {
        double v = search::minimize_sign(h.objectives[m].direction) * done[i]->values[m];
        double nv = hi[m] > lo[m] ? (v - lo[m]) / (hi[m] - lo[m]) : 0.0;
        mx = std::max(mx, lam[m] * nv);
        sum += lam[m] * nv;
      }
      y[i] = mx + params.parego_rho * sum;
    }
  }

  // Constraints (Optuna's convention, tuners/constraints.hpp). A trial without the attr counts as feasible and
  // gives no data to the constraint models, so a study without constraints runs exactly the unconstrained path.
  std::vector<std::optional<std::vector<double>>> cons(static_cast<size_t>(n_all));
  size_t n_con = 0;
  for (int i = 0; i < n_all; ++i) {
    cons[i] = constraints_of(*done[i]);
    if (cons[i]) n_con = std::max(n_con, cons[i]->size());
  }
  std::vector<char> feas(static_cast<size_t>(n_all), 1);
  // Ranking key of the subset rule and of the local candidates: feasible trials by value, then infeasible ones by
  // value (equal to y when nothing is infeasible).
  std::vector<double> yk = y;
  if (n_con > 0) {
    double lo = *std::min_element(y.begin(), y.end()), hi = *std::max_element(y.begin(), y.end());
    for (int i = 0; i < n_all; ++i) {
      feas[i] = !cons[i] || feasible(*cons[i]);
      if (!feas[i]) yk[i] = y[i] + (hi - lo) + 1.0;
    }
  }

  // Bounded cost: model and fit subsets.
  Rng model_rng(derive_seed(seed, number, kModelSubset));
  std::vector<int> sel = choose_subset(yk, static_cast<int>(params.max_model_points), model_rng);
  const int n = static_cast<int>(sel.size());
  const int D = lay.n_inputs();
  gp::RowMatrix X(n, D);
  Eigen::VectorXd ys(n);
  for (int r = 0; r < n; ++r) {
    lay.from_config(done[sel[r]]->config, X.row(r).data());
    ys[r] = y[sel[r]];
  }
  double mu = ys.mean();
  double sd = n > 1 ? std::sqrt((ys.array() - mu).square().sum() / (n - 1)) : 0.0;
  if (!(sd > 0.0) || !std::isfinite(sd)) sd = 1.0;
  ys = (ys.array() - mu) / sd;
  if (params.output_warp == "yeo_johnson") gp::warp_outputs(ys);

  std::vector<double> ysv(ys.data(), ys.data() + n);
  Rng fit_rng(derive_seed(seed, number, kFitSubset));
  std::vector<int> fsel = choose_subset(ysv, static_cast<int>(params.max_fit_points), fit_rng);
  gp::RowMatrix Xf(static_cast<Eigen::Index>(fsel.size()), D);
  Eigen::VectorXd yf(static_cast<Eigen::Index>(fsel.size()));
  for (size_t r = 0; r < fsel.size(); ++r) {
    Xf.row(static_cast<Eigen::Index>(r)) = X.row(fsel[r]);
    yf[static_cast<Eigen::Index>(r)] = ys[fsel[r]];
  }
  gp::FitOptions fo;
  fo.restarts = static_cast<int>(params.fit_restarts);
  fo.max_iters = static_cast<int>(params.fit_iters);
  fo.prior.enabled = params.priors;
  fo.prior.min_noise = params.min_noise;
  gp::Hyper hyper = gp::fit_hyper(Xf, yf, fo, derive_seed(seed, number, kFitStarts));
  gp::GpModel model(X, ys, hyper);

  gp::Acquisition acq;
  acq.kind = gp::acq_kind_from_string(params.acquisition);
  acq.best = ys.minCoeff();
  acq.xi = params.xi;
  acq.kappa = params.ucb_kappa;
  // The incumbent is the best FEASIBLE value; with none feasible yet the objective term is dropped and the search
  // maximizes the probability of feasibility alone (Gardner et al. 2014; Optuna's GPSampler does the same).
  bool any_feasible = true;
  if (n_con > 0) {
    any_feasible = false;
    for (int r = 0; r < n; ++r)
      if (feas[sel[r]]) {
        acq.best = any_feasible ? std::min(acq.best, ys[r]) : ys[r];
        any_feasible = true;
      }
  }

  if (params.pending != "ignore") {
    double lie = params.pending == "liar_min" ? ys.minCoeff() : params.pending == "liar_max" ? ys.maxCoeff() : 0.0;
    std::vector<double> f(D);
    for (const Trial* t : pending) {
      lay.from_config(t->config, f.data());
      double v = params.pending == "believer" ? model.predict_one(f.data(), nullptr, nullptr, nullptr) : lie;
      model.add(f.data(), v);
      // The fantasy counts as an observation: a believed value below the incumbent becomes the incumbent, or EI
      // would still reward (best - mu) > 0 right next to the running trial.
      acq.best = std::min(acq.best, v);
    }
  }

  // One GP per constraint, on the model rows that report it: standardized values (no warping, which would move the
  // threshold), MAP hyperparameters fitted on the rows nearest the boundary plus a seeded subsample.
  std::vector<gp::GpModel> con_models;
  std::vector<double> con_thr;
  con_models.reserve(n_con);
  for (size_t j = 0; j < n_con; ++j) {
    std::vector<int> rows;
    std::vector<double> cv;
    for (int r = 0; r < n; ++r) {
      const auto& c = cons[sel[r]];
      if (c && c->size() > j && std::isfinite((*c)[j])) {
        rows.push_back(r);
        cv.push_back((*c)[j]);
      }
    }
    if (rows.size() < 2) continue;
    const int m = static_cast<int>(rows.size());
    Eigen::Map<Eigen::VectorXd> cm(cv.data(), m);
    double cmu = cm.mean();
    double csd = std::sqrt((cm.array() - cmu).square().sum() / (m - 1));
    if (!(csd > 0.0) || !std::isfinite(csd)) csd = 1.0;
    gp::RowMatrix Xc(m, D);
    Eigen::VectorXd yc(m);
    std::vector<double> near(static_cast<size_t>(m));
    const double thr = (0.0 - cmu) / csd;
    for (int r = 0; r < m; ++r) {
      Xc.row(r) = X.row(rows[r]);
      yc[r] = (cv[r] - cmu) / csd;
      near[r] = std::fabs(yc[r] - thr);
    }
    Rng crng_sub(derive_seed(seed, number, kConstraintSubset + 0x100 * j));
    std::vector<int> cfsel = choose_subset(near, static_cast<int>(params.max_fit_points), crng_sub);
    gp::RowMatrix Xcf(static_cast<Eigen::Index>(cfsel.size()), D);
    Eigen::VectorXd ycf(static_cast<Eigen::Index>(cfsel.size()));
    for (size_t r = 0; r < cfsel.size(); ++r) {
      Xcf.row(static_cast<Eigen::Index>(r)) = Xc.row(cfsel[r]);
      ycf[static_cast<Eigen::Index>(r)] = yc[cfsel[r]];
    }
    gp::Hyper hc = gp::fit_hyper(Xcf, ycf, fo, derive_seed(seed, number, kConstraintFit + 0x100 * j));
    con_models.emplace_back(std::move(Xc), std::move(yc), hc);
    con_thr.push_back(thr);
  }
  std::vector<AcqTerm> terms;
  if (any_feasible) terms.push_back({&model, acq});
  for (size_t j = 0; j < con_models.size(); ++j) {
    gp::Acquisition pof;
    pof.kind = gp::AcqKind::LogPI;
    pof.best = con_thr[j];
    terms.push_back({&con_models[j], pof});
  }
  if (terms.empty()) terms.push_back({&model, acq});  // nothing feasible and no constraint model yet

  // Candidates: scrambled Sobol' points, plus perturbations of the best trials (where the optimum usually is).
  Rng crng(derive_seed(seed, number, kCandidates));
  SobolDesign design(P, crng);
  std::vector<std::vector<double>> U;
  U.reserve(static_cast<size_t>(params.n_candidates + params.n_local_candidates));
  for (int64_t i = 0; i < params.n_candidates; ++i) U.push_back(design.point(static_cast<uint64_t>(i), crng));
  {
    std::vector<int> order(n_all);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return yk[a] < yk[b]; });
    int n_top = std::min(n_all, 5);
    double p_move = std::min(1.0, std::max(0.2, 3.0 / std::max<double>(1.0, lay.n_free())));
    for (int64_t i = 0; i < params.n_local_candidates && n_top > 0; ++i) {
      std::vector<double> u = space.encode(done[order[i % n_top]]->config);
      double scale = (i / n_top) % 2 == 0 ? 0.1 : 0.01;
      bool moved = false;
      for (size_t k = 0; k < P; ++k) {
        if (lay.slot(k).kind == Layout::Kind::None || rng_skip(crng, p_move)) continue;
        moved = true;
        if (lay.slot(k).kind == Layout::Kind::Cat)
          u[k] = crng.uniform();
        else
          u[k] = std::clamp(u[k] + scale * crng.normal(), 0.0, 1.0);
      }
      if (!moved) {
        size_t k = static_cast<size_t>(crng.below(static_cast<int64_t>(P)));
        u[k] = lay.slot(k).kind == Layout::Kind::Cat ? crng.uniform() : std::clamp(u[k] + scale * crng.normal(), 0.0, 1.0);
      }
      U.push_back(std::move(u));
    }
  }

  AcqSearch search(lay, std::move(terms), params);
  std::vector<double> vals = search.eval_batch(U);
  std::vector<size_t> order(U.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return vals[a] > vals[b]; });

  std::vector<Scored> results;
  std::unordered_set<std::string> refined_keys;
  for (size_t r = 0; r < order.size() && static_cast<int64_t>(refined_keys.size()) < params.n_refine; ++r) {
    const auto& u = U[order[r]];
    std::string key = space.key(space.decode(u));
    if (!refined_keys.insert(key).second) continue;
    results.push_back(search.refine(u, vals[order[r]]));
  }
  for (size_t r : order) results.push_back({vals[r], U[r]});
  std::stable_sort(results.begin(), results.end(), [](const Scored& a, const Scored& b) { return a.value > b.value; });
  for (const auto& s : results) {
    Config c = space.decode(s.u);
    if (!seen.count(space.key(c))) return Proposal{std::move(c), {}, std::nullopt};
  }
  Rng rng(derive_seed(seed, number, kFallback));
  auto alt = random_unseen(space, seen, rng);
  if (!alt) throw SpaceExhausted("tuner 'gp': every configuration of the finite space has been proposed");
  return Proposal{std::move(*alt), {}, std::nullopt};
}

}  // namespace

GpTuner::GpTuner(GpParams params, uint64_t seed) : params_(std::move(params)), seed_(seed) {}

Proposal GpTuner::ask(const History& h, int64_t number) {
  if (!h.space) throw ConfigError("tuner 'gp': the history has no search space");
  const SearchSpace& space = *h.space;
  const Layout lay(space);
  const size_t P = space.size();
  const size_t M = std::max<size_t>(1, h.objectives.size());

  // COMPLETE trials with every value finite are the data; running/waiting ones are pending.
  // A configuration the space cannot encode (e.g. a trial from before the space was edited) is skipped.
  std::vector<const Trial*> done, pending;
  std::unordered_set<std::string> seen;
  std::vector<double> probe(static_cast<size_t>(lay.n_inputs()));
  for (const Trial* t : h.trials) {
    if (t->number == number) continue;
    try {
      lay.from_config(t->config, probe.data());
    } catch (const Error&) {
      continue;
    }
    if (t->state == TrialState::Complete) {
      bool ok = t->values.size() >= M;
      for (size_t m = 0; ok && m < M; ++m) ok = std::isfinite(t->values[m]);
      if (!ok) continue;
      done.push_back(t);
      seen.insert(space.key(t->config));
    } else if (t->state == TrialState::Running || t->state == TrialState::Waiting) {
      pending.push_back(t);
      seen.insert(space.key(t->config));
    }
  }

  int64_t n_startup = params_.n_startup_trials >= 0 ? params_.n_startup_trials
                                                      : std::max<int64_t>(5, lay.n_free() + 1);
  if (static_cast<int64_t>(done.size()) < std::max<int64_t>(1, n_startup) || lay.n_inputs() == 0) {
    Rng design_rng(derive_seed(seed_, -1, 0x6770736f626f6cULL));  // one design for the whole study
    SobolDesign design(P, design_rng);
    Rng fill(derive_seed(seed_, number, kStartupFill));
    Config c = space.decode(design.point(static_cast<uint64_t>(std::max<int64_t>(0, number)), fill));
    if (space.is_finite() && seen.count(space.key(c))) {
      Rng rng(derive_seed(seed_, number, kStartupDedup));
      auto alt = random_unseen(space, seen, rng);
      if (!alt) throw SpaceExhausted("tuner 'gp': every configuration of the finite space has been proposed");
      c = std::move(*alt);
    }
    return Proposal{std::move(c), {}, std::nullopt};
  }

  // Stream of this ask (GpParams::restart_*): 0 = the main model over every trial, k > 0 = restart segment k.
  const int64_t patience =
      params_.restart_patience >= 0 ? params_.restart_patience : std::max<int64_t>(15, 2 * (lay.n_free() + 1));
  auto members = [&](const std::vector<const Trial*>& ts, int64_t k) {
    std::vector<const Trial*> out;
    for (const Trial* t : ts)
      if (restart_segment(*t) == k) out.push_back(t);
    return out;
  };
  auto is_stagnant = [&](const std::vector<const Trial*>& ts) {
    return stagnant(stagnation_values(ts, h), n_startup, patience, params_.restart_tol, params_.output_warp);
  };
  int64_t seg = 0;
  if (patience > 0 && M == 1 && share_pick(number, params_.restart_share)) {
    // The newest segment runs until it is itself stagnant (even after it has moved the study's best); then a new
    // one opens if the study is stagnant, else the ask is the main model's.
    for (const Trial* t : h.trials)
      if (t->number != number) seg = std::max(seg, restart_segment(*t));
    if (seg == 0 || is_stagnant(members(done, seg))) seg = is_stagnant(done) ? seg + 1 : 0;
  }
  if (seg == 0) return model_proposal(params_, seed_, h, lay, done, pending, seen, number);

  const std::vector<const Trial*> seg_done = members(done, seg);
  Proposal prop;
  if (static_cast<int64_t>(seg_done.size()) < std::max<int64_t>(1, n_startup)) {
    // The segment's own start-up design: point k of a design scrambled for this segment, k = its trials so far.
    int64_t k = 0;
    for (const Trial* t : h.trials) k += t->number != number && restart_segment(*t) == seg;
    Rng design_rng(derive_seed(seed_, seg, kRestartDesign));
    SobolDesign design(P, design_rng);
    Rng fill(derive_seed(seed_, number, kStartupFill));
    prop.config = space.decode(design.point(static_cast<uint64_t>(k), fill));
    if (seen.count(space.key(prop.config))) {
      Rng rng(derive_seed(seed_, number, kStartupDedup));
      auto alt = random_unseen(space, seen, rng);
      if (!alt) throw SpaceExhausted("tuner 'gp': every configuration of the finite space has been proposed");
      prop.config = std::move(*alt);
    }
  } else {
    prop = model_proposal(params_, seed_, h, lay, seg_done, members(pending, seg), seen, number);
  }
  prop.attrs[kAttrRestart] = std::to_string(seg);
  return prop;
}

std::unique_ptr<Tuner> make_gp_tuner(const nlohmann::json& params, uint64_t seed) {
  return std::make_unique<GpTuner>(GpParams::from_json(params), seed);
}

}  // namespace kestrel::tuners
