// Optimizers of the trainer: the update rules of torch.optim (1.13, single-tensor path) written as
// plain float loops, in the same operation order as PyTorch so results agree to rounding.
#include "trainer/optim.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "common/error.hpp"

namespace kestrel::trainer {

namespace {

// Parameters are updated in fixed blocks of kBlock elements; threads share out whole blocks. Each
// element therefore takes the same code path (vector body or scalar tail of its block) whatever
// the thread count, which keeps results bit-identical across thread counts. A block of every
// buffer (up to 5 x 8 KiB) stays in L1 between the passes of one update.
constexpr int64_t kBlock = 2048;
// Below this many elements a parameter is updated on one thread: the fork/join would cost more.
constexpr int64_t kParallelMin = 1 << 16;

template <class F>
void for_blocks(int64_t n, F&& f) {
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t begin = b * kBlock;
    f(begin, std::min(kBlock, n - begin));
  }
}

// out[i] = sqrt(in[i]) (in place allowed). std::sqrt must keep errno semantics under the
// project's flags (no -fno-math-errno), which stops GCC from vectorizing any loop that calls it;
// the instruction itself is the correctly rounded IEEE square root either way.
void sqrt_block(const float* in, float* out, int64_t n) {
  int64_t i = 0;
#if defined(__AVX__)
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_sqrt_ps(_mm256_loadu_ps(in + i)));
#endif
  for (; i < n; ++i) out[i] = _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(in[i])));
}

constexpr float kTwo24 = 16777216.0f;

std::vector<float> encode_count(int64_t count) {
  return {static_cast<float>(count % (int64_t{1} << 24)), static_cast<float>(count >> 24)};
}

int64_t decode_count(const std::vector<float>& v, const std::string& name) {
  if (v.size() != 2 || !(v[0] >= 0) || !(v[1] >= 0) || v[0] >= kTwo24 || v[0] != std::floor(v[0]) ||
      v[1] != std::floor(v[1])) {
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
    float* const W = p.value;
    const float* const G = p.grad;
    if (mom == 0.0f) {
      for_blocks(p.size, [=](int64_t b, int64_t n) {
        float* __restrict w = W + b;
        const float* __restrict g = G + b;
        for (int64_t i = 0; i < n; ++i) w[i] = w[i] + (-lr) * (g[i] + wd * w[i]);
      });
      return;
    }
    float* const B = slot.buffers[0].data();
    // PyTorch starts the buffer as a copy of the first gradient (no dampening on step 1).
    const float keep = slot.count == 1 ? 0.0f : mom;
    const float take = slot.count == 1 ? 1.0f : damp;
    for_blocks(p.size, [=](int64_t b, int64_t n) {
      float* __restrict w = W + b;
      const float* __restrict g = G + b;
      float* __restrict buf = B + b;
      if (nesterov) {
        for (int64_t i = 0; i < n; ++i) {
          const float d = g[i] + wd * w[i];
          const float bi = buf[i] * keep + take * d;
          buf[i] = bi;
          w[i] = w[i] + (-lr) * (d + mom * bi);
        }
      } else {
        for (int64_t i = 0; i < n; ++i) {
          const float d = g[i] + wd * w[i];
          const float bi = buf[i] * keep + take * d;
          buf[i] = bi;
          w[i] = w[i] + (-lr) * bi;
        }
      }
    });
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
    float* const W = p.value;
    const float* const G = p.grad;
    float* const S = slot.buffers[0].data();
    for_blocks(p.size, [=](int64_t b, int64_t n) {
      float* __restrict w = W + b;
      const float* __restrict g = G + b;
      float* __restrict sum = S + b;
      alignas(32) float root[kBlock];
      for (int64_t i = 0; i < n; ++i) {
        const float d = g[i] + wd * w[i];
        sum[i] = sum[i] + d * d;
      }
      sqrt_block(sum, root, n);
      for (int64_t i = 0; i < n; ++i) {
        const float d = g[i] + wd * w[i];
        w[i] = w[i] + (-clr) * d / (root[i] + eps);
      }
    });
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
    float* const W = p.value;
    const float* const G = p.grad;
    float* const SQ = slot.buffers[0].data();
    float* const ACC = slot.buffers[1].data();
    for_blocks(p.size, [=](int64_t b, int64_t n) {
      float* __restrict w = W + b;
      const float* __restrict g = G + b;
      float* __restrict sq = SQ + b;
      float* __restrict acc = ACC + b;
      alignas(32) float num[kBlock];
      alignas(32) float den[kBlock];
      for (int64_t i = 0; i < n; ++i) {
        const float d = g[i] + wd * w[i];
        const float s = sq[i] * rho + one_m_rho * (d * d);
        sq[i] = s;
        den[i] = s + eps;
        num[i] = acc[i] + eps;
      }
      sqrt_block(den, den, n);
      sqrt_block(num, num, n);
      for (int64_t i = 0; i < n; ++i) {
        const float d = g[i] + wd * w[i];
        const float delta = num[i] / den[i] * d;
        acc[i] = acc[i] * rho + one_m_rho * (delta * delta);
        w[i] = w[i] + (-lr) * delta;
      }
    });
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
    float* const W = p.value;
    const float* const G = p.grad;
    float* const SQ = slot.buffers[0].data();
    float* const BUF = use_mom ? slot.buffers[1].data() : nullptr;
    float* const GA = centered ? slot.buffers[use_mom ? 2 : 1].data() : nullptr;
    for_blocks(p.size, [=](int64_t b, int64_t n) {
      float* __restrict w = W + b;
      const float* __restrict g = G + b;
      float* __restrict sq = SQ + b;
      alignas(32) float avg[kBlock];
      if (centered) {
        float* __restrict ga = GA + b;
        for (int64_t i = 0; i < n; ++i) {
          const float d = g[i] + wd * w[i];
          const float s = sq[i] * a + one_m_a * (d * d);
          sq[i] = s;
          const float gi = ga[i] * a + one_m_a * d;
          ga[i] = gi;
          avg[i] = s + (-1.0f) * (gi * gi);
        }
      } else {
        for (int64_t i = 0; i < n; ++i) {
          const float d = g[i] + wd * w[i];
          const float s = sq[i] * a + one_m_a * (d * d);
          sq[i] = s;
          avg[i] = s;
        }
      }
      sqrt_block(avg, avg, n);
      if (use_mom) {
        float* __restrict buf = BUF + b;
        for (int64_t i = 0; i < n; ++i) {
          const float d = g[i] + wd * w[i];
          const float bi = buf[i] * mom + d / (avg[i] + eps);
          buf[i] = bi;
          w[i] = w[i] + (-lr) * bi;
        }
      } else {
        for (int64_t i = 0; i < n; ++i) {
          const float d = g[i] + wd * w[i];
          w[i] = w[i] + (-lr) * d / (avg[i] + eps);
        }
      }
    });
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
    const bool amsgrad = spec_.amsgrad;
    float* const W = p.value;
    const float* const G = p.grad;
    float* const M = slot.buffers[0].data();
    float* const V = slot.buffers[1].data();
    float* const VMAX = amsgrad ? slot.buffers[2].data() : nullptr;
    const bool shrink_first = decoupled_ && wd_raw != 0.0f;
    for_blocks(p.size, [=](int64_t b, int64_t n) {
      float* __restrict w = W + b;
      const float* __restrict g = G + b;
      float* __restrict m = M + b;
      float* __restrict v = V + b;
      alignas(32) float root[kBlock];
      if (shrink_first) {
        for (int64_t i = 0; i < n; ++i) w[i] = w[i] * shrink;
      }
      for (int64_t i = 0; i < n; ++i) {
        const float d = g[i] + wd * w[i];
        m[i] = m[i] * b1 + one_m_b1 * d;
        const float vi = v[i] * b2 + one_m_b2 * (d * d);
        v[i] = vi;
        root[i] = vi;
      }
      if (amsgrad) {
        float* __restrict vmax = VMAX + b;
        for (int64_t i = 0; i < n; ++i) {
          const float r = root[i], old = vmax[i];
          const float vm = old < r ? r : old;
          vmax[i] = vm;
          root[i] = vm;
        }
      }
      sqrt_block(root, root, n);
      for (int64_t i = 0; i < n; ++i) {
        const float denom = root[i] / bc2_sqrt + eps;
        w[i] = w[i] + (-step_size) * m[i] / denom;
      }
    });
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
  // buffer_names() builds strings; its size depends only on the spec, so ask once.
  if (buffer_count_ < 0) buffer_count_ = static_cast<int>(buffer_names().size());
  const auto nbuf = static_cast<size_t>(buffer_count_);
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
    for (size_t b = 0; b < names.size(); ++b)
      out.emplace_back(name + "." + names[b], slot.buffers[b]);
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
  static const std::vector<std::string> kinds{"sgd",     "adagrad", "adadelta",
                                              "rmsprop", "adam",    "adamw"};
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
    // Double accumulation in eight fixed lanes, combined in a fixed order: the norm does not
    // depend on the thread count, and the lanes let the loop run in vector registers.
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const float* g = p.grad;
    int64_t i = 0;
    for (; i + 8 <= p.size; i += 8)
      for (int k = 0; k < 8; ++k) lane[k] += static_cast<double>(g[i + k]) * g[i + k];
    for (; i < p.size; ++i) lane[0] += static_cast<double>(g[i]) * g[i];
    total +=
        ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  }
  const double norm = std::sqrt(total);
  if (max_norm > 0.0f) {
    const double coef = static_cast<double>(max_norm) / (norm + 1e-6);
    if (coef < 1.0) {
      const float c = static_cast<float>(coef);
      for (ParamRef& p : params) {
        if (p.frozen || p.grad == nullptr) continue;
        float* const G = p.grad;
        for_blocks(p.size, [=](int64_t b, int64_t n) {
          float* __restrict g = G + b;
          for (int64_t i = 0; i < n; ++i) g[i] *= c;
        });
      }
    }
  }
  return norm;
}

}  // namespace kestrel::trainer
