// Optimizers of the trainer (SGD with momentum/Nesterov, AdaGrad, AdaDelta, RMSProp, Adam, AdamW)
// behind one interface: weight decay, per-parameter lr multipliers, freezing, global-norm clipping.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace kestrel::trainer {

// What it represents: one parameter tensor as the optimizer sees it, a flat float array and its
// gradient, both owned by the model (the optimizer never keeps the pointers past step()).
// name identifies the parameter's optimizer state across steps and checkpoints, so it must be
// unique and stable. frozen: skipped entirely (value, grad and state untouched; not part of the
// clipping norm). lr_mult scales the learning rate of this parameter (transfer learning: a small
// multiplier for the pretrained body). decay = false exempts it from weight decay (biases, norms).
struct ParamRef {
  std::string name;
  float* value = nullptr;
  float* grad = nullptr;
  int64_t size = 0;
  bool frozen = false;
  float lr_mult = 1.0f;
  bool decay = true;
};

// Settings of an optimizer; fields a kind does not use are ignored. The update equations are
// those of torch.optim (documented there) with the same parameter names:
//   sgd       momentum, dampening, nesterov, weight_decay             (PyTorch SGD)
//   adagrad   eps, lr_decay, initial_accumulator, weight_decay        (PyTorch Adagrad)
//   adadelta  rho, eps, weight_decay                                  (PyTorch Adadelta)
//   rmsprop   alpha, eps, momentum, centered, weight_decay            (PyTorch RMSprop)
//   adam      beta1, beta2, eps, weight_decay (L2, coupled), amsgrad  (PyTorch Adam)
//   adamw     beta1, beta2, eps, weight_decay, amsgrad                (PyTorch AdamW: decoupled,
//             p *= 1 - lr*wd before the Adam step)
// Defaults that differ from PyTorch's: eps is 1e-8 for every kind (PyTorch: Adagrad 1e-10,
// Adadelta 1e-6), and momentum 0.9 is shared by sgd and rmsprop (PyTorch's RMSprop: 0). Adadelta's
// usual lr is 1.0; the lr is the caller's.
// weight_decay is coupled L2 (added to the gradient) for every kind but adamw.
// clip_norm > 0 rescales all non-frozen gradients before the update so that their global L2 norm
// is at most clip_norm (torch.nn.utils.clip_grad_norm_ semantics, including its 1e-6 guard).
// Note rho is AdaDelta's rho only; RMSProp's smoothing constant is alpha (PyTorch's names).
struct OptimizerSpec {
  std::string kind = "adam";
  float momentum = 0.9f;
  float dampening = 0.0f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float rho = 0.9f;     // adadelta
  float alpha = 0.99f;  // rmsprop
  float weight_decay = 0.0f;
  float lr_decay = 0.0f;             // adagrad
  float initial_accumulator = 0.0f;  // adagrad
  bool nesterov = false;
  bool centered = false;   // rmsprop
  bool amsgrad = false;    // adam, adamw
  float clip_norm = 0.0f;  // 0 = off
};

// Named float buffers that hold an optimizer's whole state ("<param>.<buffer>", "<param>.step",
// and "__steps__"; counts are stored as two exact floats {count mod 2^24, count / 2^24}).
using OptimizerState = std::vector<std::pair<std::string, std::vector<float>>>;

// What it represents: an update rule with its per-parameter state (momentum buffers, moments),
// keyed by ParamRef::name and created on the first step that sees the parameter.
// Contract of step(params, lr): applies one update to every non-frozen parameter, in place,
//   with learning rate lr * lr_mult; may rescale the gradients in place (clipping). Frozen
//   parameters are bit-identical afterwards. Does not allocate after the first step with a
//   given set of parameters. Deterministic: results do not depend on the number of threads.
//   Throws ConfigError when a parameter's size differs from the state stored under its name.
// state() returns a copy of everything needed to continue bit-exactly; load_state() replaces the
//   state with one from state() (of the same kind; ConfigError otherwise), e.g. from a checkpoint.
// Thread safety: none; one optimizer per model. step() itself runs its loops with OpenMP.
class Optimizer {
 public:
  explicit Optimizer(OptimizerSpec spec) : spec_(std::move(spec)) {}
  virtual ~Optimizer();

  virtual void step(std::span<ParamRef> params, float lr);
  virtual OptimizerState state() const;
  virtual void load_state(const OptimizerState& state);

  // Number of step() calls so far (restored by load_state).
  int64_t steps() const { return steps_; }
  const OptimizerSpec& spec() const { return spec_; }
  // Names of the per-parameter float buffers this kind keeps (e.g. {"exp_avg", "exp_avg_sq"}).
  virtual std::vector<std::string> buffer_names() const = 0;

 protected:
  // One parameter's state: one vector per buffer name, in buffer_names() order, and the
  // parameter's own step count (PyTorch keeps it per parameter, so a parameter unfrozen later
  // starts its bias correction afresh). In state() the count appears as "<name>.step", two floats
  // {count mod 2^24, count / 2^24}, both exact, so any count survives a float checkpoint.
  struct Slot {
    std::vector<std::vector<float>> buffers;
    int64_t count = 0;  // per-parameter steps (PyTorch's state['step'])
  };
  // Applies the update to one parameter; slot has been created with buffer_names().size() buffers
  // of p.size floats each (filled by init_slot).
  virtual void update(const ParamRef& p, Slot& slot, float lr) = 0;
  // Initial value of the buffers of a new slot (zeros unless overridden).
  virtual void init_slot(const ParamRef& p, Slot& slot) const;

  OptimizerSpec spec_;
  int64_t steps_ = 0;
  std::map<std::string, Slot> slots_;

 private:
  int buffer_count_ = -1;  // buffer_names().size(), cached by step()
};

// The kinds make_optimizer accepts, in documentation order.
const std::vector<std::string>& optimizer_kinds();

// Creates the optimizer spec.kind names. throws ConfigError (listing the valid kinds) for an
// unknown kind, and for out-of-range settings (negative lr-independent constants, betas outside
// [0,1), nesterov without momentum or with dampening, as PyTorch refuses them).
std::unique_ptr<Optimizer> make_optimizer(const OptimizerSpec& spec);

// Rescales the gradients of the non-frozen params in place so their global L2 norm is at most
// max_norm (clip_coef = max_norm / (norm + 1e-6), applied when < 1). Returns the norm before
// clipping. max_norm <= 0 only measures. The norm is accumulated in double in a fixed order.
double clip_grad_norm(std::span<ParamRef> params, float max_norm);

}  // namespace kestrel::trainer
