// Optimizers of the trainer: the update rules of torch.optim (1.13, single-tensor path) written as
// plain float loops, in the same operation order as PyTorch so results agree to rounding.
#include "trainer/optim.hpp"

#include <algorithm>
#include <cmath>

#include "common/error.hpp"

namespace kestrel::trainer {

namespace {

// Below this many elements a parameter is updated on one thread: the fork/join would cost more.
constexpr int64_t kParallelMin = 1 << 15;

constexpr float kTwo24 = 16777216.0f;

std::vector<float> encode_count(int64_t count) {
  return {static_cast<float>(count % (int64_t{1} << 24)), static_cast<float>(count >> 24)};
}

int64_t decode_count(const std::vector<float>& v, const std::string& name) {
  if (v.size() != 2 || !(v[0] >= 0) || !(v[1] >= 0) || v[0] >= kTwo24 ||
      v[0] != std::floor(v[0]) || v[1] != std::floor(v[1])) {
    throw ConfigError("optimizer state '" + name + "' is not a step count");
  }
  return static_cast<int64_t>(v[0]) + (static_cast<int64_t>(v[1]) << 24);
}

// ---- SGD (PyTorch SGD: momentum, dampening, nesterov, coupled weight decay) -----------------
class Sgd final : public Optimizer {
 public:
  using Optimizer::Optimizer;
  std::vector<std::string> buffer_names() const override {
    if (spec_.momentum != 0.0f) return {"momentum_buffer"};
    return {};
  }

 protected:
  void update(const ParamRef& p, Slot& slot, float lr) override {
    const float wd = p.decay ? spec_.weight_decay : 0.0f;
    const float mom = spec_.momentum;
    const float damp = 1.0f - spec_.dampening;
    const bool nesterov = spec_.nesterov;
    float* __restrict w = p.value;
    const float* __restrict g = p.grad;
    const int64_t n = p.size;
    if (mom == 0.0f) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        const float d = g[i] + wd * w[i];
        w[i] = w[i] + (-lr) * d;
      }
      return;
    }
    float* __restrict buf = slot.buffers[0].data();
    // PyTorch starts the buffer as a copy of the first gradient (no dampening on step 1).
    const bool first = slot.count == 1;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      float d = g[i] + wd * w[i];
      const float b = first ? d : buf[i] * mom + damp * d;
      buf[i] = b;
      d = nesterov ? d + mom * b : b;
      w[i] = w[i] + (-lr) * d;
    }
  }
};

// ---- AdaGrad (PyTorch Adagrad) ---------------------------------------------------------------
class Adagrad final : public Optimizer {
 public:
  using Optimizer::Optimizer;
  std::vector<std::string> buffer_names() const override { return {"sum"}; }

 protected:
  void init_slot(const ParamRef&, Slot& slot) const override {
    std::fill(slot.buffers[0].begin(), slot.buffers[0].end(), spec_.initial_accumulator);
  }
  void update(const ParamRef& p, Slot& slot, float lr) override {
    const float wd = p.decay ? spec_.weight_decay : 0.0f;
    const float clr = static_cast<float>(
        static_cast<double>(lr) / (1.0 + static_cast<double>(slot.count - 1) * spec_.lr_decay));
    const float eps = spec_.eps;
    float* __restrict w = p.value;
    const float* __restrict g = p.grad;
    float* __restrict sum = slot.buffers[0].data();
    const int64_t n = p.size;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const float d = g[i] + wd * w[i];
      const float s = sum[i] + d * d;
      sum[i] = s;
      const float sd = std::sqrt(s) + eps;
      w[i] = w[i] + (-clr) * d / sd;
    }
  }
};

// ---- AdaDelta (PyTorch Adadelta) -------------------------------------------------------------
class Adadelta final : public Optimizer {
 public:
  using Optimizer::Optimizer;
  std::vector<std::string> buffer_names() const override { return {"square_avg", "acc_delta"}; }

 protected:
  void update(const ParamRef& p, Slot& slot, float lr) override {
    const float wd = p.decay ? spec_.weight_decay : 0.0f;
    const float rho = spec_.rho, one_m_rho = 1.0f - spec_.rho, eps = spec_.eps;
    float* __restrict w = p.value;
    const float* __restrict g = p.grad;
    float* __restrict sq = slot.buffers[0].data();
    float* __restrict acc = slot.buffers[1].data();
    const int64_t n = p.size;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const float d = g[i] + wd * w[i];
      const float s = sq[i] * rho + one_m_rho * (d * d);
      sq[i] = s;
      const float sd = std::sqrt(s + eps);
      const float delta = std::sqrt(acc[i] + eps) / sd * d;
      acc[i] = acc[i] * rho + one_m_rho * (delta * delta);
      w[i] = w[i] + (-lr) * delta;
    }
  }
};

// ---- RMSProp (PyTorch RMSprop, optionally centered, with momentum) ---------------------------
class Rmsprop final : public Optimizer {
 public:
  using Optimizer::Optimizer;
  std::vector<std::string> buffer_names() const override {
    std::vector<std::string> b{"square_avg"};
    if (spec_.momentum > 0.0f) b.push_back("momentum_buffer");
    if (spec_.centered) b.push_back("grad_avg");
    return b;
  }

 protected:
  void update(const ParamRef& p, Slot& slot, float lr) override {
    const float wd = p.decay ? spec_.weight_decay : 0.0f;
    const float a = spec_.alpha, one_m_a = 1.0f - spec_.alpha, eps = spec_.eps;
    const float mom = spec_.momentum;
    const bool use_mom = mom > 0.0f, centered = spec_.centered;
    float* __restrict w = p.value;
    const float* __restrict g = p.grad;
    float* __restrict sq = slot.buffers[0].data();
    float* __restrict buf = use_mom ? slot.buffers[1].data() : nullptr;
    float* __restrict gavg = centered ? slot.buffers[use_mom ? 2 : 1].data() : nullptr;
    const int64_t n = p.size;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const float d = g[i] + wd * w[i];
      const float s = sq[i] * a + one_m_a * (d * d);
      sq[i] = s;
      float avg;
      if (centered) {
        const float ga = gavg[i] * a + one_m_a * d;
        gavg[i] = ga;
        avg = std::sqrt(s + (-1.0f) * (ga * ga)) + eps;
      } else {
        avg = std::sqrt(s) + eps;
      }
      if (use_mom) {
        const float b = buf[i] * mom + d / avg;
        buf[i] = b;
        w[i] = w[i] + (-lr) * b;
      } else {
        w[i] = w[i] + (-lr) * d / avg;
      }
    }
  }
};

// ---- Adam and AdamW (PyTorch Adam / AdamW, single-tensor path of 1.13) -----------------------
class Adam final : public Optimizer {
 public:
  Adam(OptimizerSpec spec, bool decoupled) : Optimizer(std::move(spec)), decoupled_(decoupled) {}
  std::vector<std::string> buffer_names() const override {
    if (spec_.amsgrad) return {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return {"exp_avg", "exp_avg_sq"};
  }

 protected:
  void update(const ParamRef& p, Slot& slot, float lr) override {
    const float wd_raw = p.decay ? spec_.weight_decay : 0.0f;
    // AdamW shrinks the weights before the step; Adam adds the L2 term to the gradient.
    const float shrink =
        decoupled_ ? static_cast<float>(1.0 - static_cast<double>(lr) * wd_raw) : 1.0f;
    const float wd = decoupled_ ? 0.0f : wd_raw;
    const float b1 = spec_.beta1, b2 = spec_.beta2, eps = spec_.eps;
    const float one_m_b1 = 1.0f - b1, one_m_b2 = 1.0f - b2;
    // Scalars in double as Python computes them, then rounded once to float for the loop.
    const double t = static_cast<double>(slot.count);
    const double bc1 = 1.0 - std::pow(static_cast<double>(b1), t);
    const double bc2 = 1.0 - std::pow(static_cast<double>(b2), t);
    const float step_size = static_cast<float>(static_cast<double>(lr) / bc1);
    const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    float* __restrict w = p.value;
    const float* __restrict g = p.grad;
    float* __restrict m = slot.buffers[0].data();
    float* __restrict v = slot.buffers[1].data();
    float* __restrict vmax = spec_.amsgrad ? slot.buffers[2].data() : nullptr;
    const int64_t n = p.size;
    const bool apply_shrink = decoupled_ && wd_raw != 0.0f;
    if (!spec_.amsgrad) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        const float wi = apply_shrink ? w[i] * shrink : w[i];
        const float d = g[i] + wd * wi;
        const float mi = m[i] * b1 + one_m_b1 * d;
        const float vi = v[i] * b2 + one_m_b2 * (d * d);
        m[i] = mi;
        v[i] = vi;
        const float denom = std::sqrt(vi) / bc2_sqrt + eps;
        w[i] = wi + (-step_size) * mi / denom;
      }
    } else {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        const float wi = apply_shrink ? w[i] * shrink : w[i];
        const float d = g[i] + wd * wi;
        const float mi = m[i] * b1 + one_m_b1 * d;
        const float vi = v[i] * b2 + one_m_b2 * (d * d);
        m[i] = mi;
        v[i] = vi;
        const float vm = std::max(vmax[i], vi);
        vmax[i] = vm;
        const float denom = std::sqrt(vm) / bc2_sqrt + eps;
        w[i] = wi + (-step_size) * mi / denom;
      }
    }
  }

 private:
  bool decoupled_;
};

void require(bool ok, const std::string& what) {
  if (!ok) throw ConfigError("optimizer: " + what);
}

}  // namespace

Optimizer::~Optimizer() = default;

void Optimizer::init_slot(const ParamRef&, Slot&) const {}

void Optimizer::step(std::span<ParamRef> params, float lr) {
  // Validate every slot first so a size mismatch leaves all parameters untouched.
  const size_t nbuf = buffer_names().size();
  for (const ParamRef& p : params) {
    if (p.frozen) continue;
    auto it = slots_.find(p.name);
    if (it == slots_.end()) continue;
    for (const auto& b : it->second.buffers) {
      if (static_cast<int64_t>(b.size()) != p.size) {
        throw ConfigError("optimizer state for '" + p.name + "' has " + std::to_string(b.size()) +
                          " elements but the parameter has " + std::to_string(p.size));
      }
    }
  }
  if (spec_.clip_norm > 0.0f) clip_grad_norm(params, spec_.clip_norm);
  for (const ParamRef& p : params) {
    if (p.frozen) continue;
    auto it = slots_.find(p.name);
    if (it == slots_.end()) {
      Slot slot;
      slot.buffers.assign(nbuf, std::vector<float>(static_cast<size_t>(p.size), 0.0f));
      init_slot(p, slot);
      it = slots_.emplace(p.name, std::move(slot)).first;
    }
    Slot& slot = it->second;
    ++slot.count;
    update(p, slot, lr * p.lr_mult);
  }
  ++steps_;
}

OptimizerState Optimizer::state() const {
  OptimizerState out;
  const auto names = buffer_names();
  for (const auto& [name, slot] : slots_) {
    for (size_t b = 0; b < names.size(); ++b) out.emplace_back(name + "." + names[b], slot.buffers[b]);
    out.emplace_back(name + ".step", encode_count(slot.count));
  }
  out.emplace_back("__steps__", encode_count(steps_));
  return out;
}

void Optimizer::load_state(const OptimizerState& state) {
  const auto names = buffer_names();
  std::map<std::string, Slot> slots;
  std::map<std::string, std::vector<bool>> seen;
  int64_t steps = -1;
  for (const auto& [key, values] : state) {
    if (key == "__steps__") {
      steps = decode_count(values, key);
      continue;
    }
    const auto dot = key.rfind('.');
    if (dot == std::string::npos || dot == 0) {
      throw ConfigError("optimizer state entry '" + key + "' is not <param>.<buffer>");
    }
    const std::string param = key.substr(0, dot), buffer = key.substr(dot + 1);
    Slot& slot = slots[param];
    auto& s = seen[param];
    if (slot.buffers.empty()) {
      slot.buffers.resize(names.size());
      s.assign(names.size() + 1, false);
    }
    if (buffer == "step") {
      slot.count = decode_count(values, key);
      s[names.size()] = true;
      continue;
    }
    const auto pos = std::find(names.begin(), names.end(), buffer) - names.begin();
    if (pos == static_cast<long>(names.size())) {
      throw ConfigError("optimizer state entry '" + key + "' does not belong to a " + spec_.kind +
                        " optimizer with these settings");
    }
    slot.buffers[pos] = values;
    s[pos] = true;
  }
  if (steps < 0) throw ConfigError("optimizer state lacks '__steps__'");
  for (const auto& [param, slot] : slots) {
    const auto& s = seen[param];
    for (size_t b = 0; b <= names.size(); ++b) {
      if (!s[b]) {
        throw ConfigError("optimizer state for '" + param + "' lacks '" +
                          (b < names.size() ? names[b] : std::string("step")) + "'");
      }
    }
    for (const auto& buf : slot.buffers) {
      if (buf.size() != slot.buffers.front().size()) {
        throw ConfigError("optimizer state buffers of '" + param + "' differ in size");
      }
    }
  }
  slots_ = std::move(slots);
  steps_ = steps;
}

const std::vector<std::string>& optimizer_kinds() {
  static const std::vector<std::string> kinds{"sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw"};
  return kinds;
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerSpec& spec) {
  const auto& kinds = optimizer_kinds();
  if (std::find(kinds.begin(), kinds.end(), spec.kind) == kinds.end()) {
    std::string list;
    for (const auto& k : kinds) list += (list.empty() ? "" : ", ") + k;
    throw ConfigError("unknown optimizer '" + spec.kind + "' (valid: " + list + ")");
  }
  require(spec.weight_decay >= 0.0f, "weight_decay must be >= 0");
  require(spec.eps >= 0.0f, "eps must be >= 0");
  require(spec.clip_norm >= 0.0f, "clip_norm must be >= 0 (0 turns clipping off)");
  require(spec.momentum >= 0.0f, "momentum must be >= 0");
  if (spec.kind == "sgd") {
    require(!spec.nesterov || (spec.momentum > 0.0f && spec.dampening == 0.0f),
            "nesterov momentum requires a momentum and zero dampening");
    return std::make_unique<Sgd>(spec);
  }
  if (spec.kind == "adagrad") {
    require(spec.lr_decay >= 0.0f, "lr_decay must be >= 0");
    require(spec.initial_accumulator >= 0.0f, "initial_accumulator must be >= 0");
    return std::make_unique<Adagrad>(spec);
  }
  if (spec.kind == "adadelta") {
    require(spec.rho >= 0.0f && spec.rho <= 1.0f, "rho must be in [0, 1]");
    return std::make_unique<Adadelta>(spec);
  }
  if (spec.kind == "rmsprop") {
    require(spec.alpha >= 0.0f, "alpha must be >= 0");
    return std::make_unique<Rmsprop>(spec);
  }
  require(spec.beta1 >= 0.0f && spec.beta1 < 1.0f, "beta1 must be in [0, 1)");
  require(spec.beta2 >= 0.0f && spec.beta2 < 1.0f, "beta2 must be in [0, 1)");
  return std::make_unique<Adam>(spec, spec.kind == "adamw");
}

double clip_grad_norm(std::span<ParamRef> params, float max_norm) {
  double total = 0.0;
  for (const ParamRef& p : params) {
    if (p.frozen || p.grad == nullptr) continue;
    // Double accumulation in a fixed order: the norm does not depend on the thread count.
    double s = 0.0;
    for (int64_t i = 0; i < p.size; ++i) s += static_cast<double>(p.grad[i]) * p.grad[i];
    total += s;
  }
  const double norm = std::sqrt(total);
  if (max_norm > 0.0f) {
    const double coef = static_cast<double>(max_norm) / (norm + 1e-6);
    if (coef < 1.0) {
      const float c = static_cast<float>(coef);
      for (ParamRef& p : params) {
        if (p.frozen || p.grad == nullptr) continue;
        float* __restrict g = p.grad;
        const int64_t n = p.size;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
        for (int64_t i = 0; i < n; ++i) g[i] *= c;
      }
    }
  }
  return norm;
}

}  // namespace kestrel::trainer
