// Model: parameter storage and initialisation, buffer planning, and the forward/backward sweeps
// over the graph that call the backend's ops node by node.
#include "trainer/model.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>

#include "common/error.hpp"
#include "trainer/data.hpp"

namespace kestrel::trainer {
namespace {

// Parameters start at 64-byte boundaries so every tensor is aligned for SIMD loads.
constexpr size_t kAlignFloats = 16;
size_t align_up(size_t n) { return (n + kAlignFloats - 1) / kAlignFloats * kAlignFloats; }

double normal(SplitMix64& rng) {
  // Box-Muller; the standard library's normal_distribution differs between implementations.
  double u1 = rng.uniform();
  while (u1 <= 0.0) u1 = rng.uniform();
  const double u2 = rng.uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

bool is_bias(const TensorInfo& t) { return t.name.size() > 5 && t.name.compare(t.name.size() - 5, 5, ".bias") == 0; }

}  // namespace

void init_tensor(float* out, const TensorInfo& info, const Node& node, const Shape& input_shape,
                 InitKind kind, SplitMix64& rng) {
  if (node.op.kind == OpKind::kBatchNorm) {
    std::fill(out, out + info.size, is_bias(info) ? 0.0f : 1.0f);
    return;
  }
  double fan_in = 1, fan_out = 1;
  if (node.op.kind == OpKind::kLinear) {
    fan_in = static_cast<double>(input_shape.size());
    fan_out = node.op.out;
  } else if (node.op.kind == OpKind::kConv2d) {
    const double rf = static_cast<double>(node.op.kernel) * node.op.kernel;
    fan_in = input_shape.c / node.op.groups * rf;
    fan_out = node.op.out * rf;
  }
  auto uniform = [&](double bound) {
    for (int64_t i = 0; i < info.size; ++i) out[i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
  };
  auto gaussian = [&](double stddev) {
    for (int64_t i = 0; i < info.size; ++i) out[i] = static_cast<float>(normal(rng) * stddev);
  };
  if (is_bias(info)) {
    if (kind == InitKind::kTorchDefault) uniform(1.0 / std::sqrt(fan_in));
    else std::fill(out, out + info.size, 0.0f);
    return;
  }
  switch (kind) {
    case InitKind::kTorchDefault: uniform(1.0 / std::sqrt(fan_in)); break;  // kaiming_uniform(a=sqrt(5))
    case InitKind::kXavierUniform: uniform(std::sqrt(6.0 / (fan_in + fan_out))); break;
    case InitKind::kXavierNormal: gaussian(std::sqrt(2.0 / (fan_in + fan_out))); break;
    case InitKind::kKaimingUniform: uniform(std::sqrt(6.0 / fan_in)); break;
    case InitKind::kKaimingNormal: gaussian(std::sqrt(2.0 / fan_in)); break;
  }
}

Model::Model(Graph graph, Backend& backend, uint64_t seed)
    : graph_(std::move(graph)), backend_(&backend), params_(graph_.params()), buffers_(graph_.buffers()) {
  const auto& nodes = graph_.nodes();
  nb_.resize(nodes.size());
  size_t off = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    param_offset_.push_back(off);
    off += align_up(params_[i].size);
    total_params_ += params_[i].size;
    nb_[params_[i].node].params.push_back(static_cast<int>(i));
  }
  const size_t param_floats = std::max<size_t>(off, 1);
  off = 0;
  for (size_t i = 0; i < buffers_.size(); ++i) {
    buffer_offset_.push_back(off);
    off += align_up(buffers_[i].size);
    if (nb_[buffers_[i].node].buffer0 < 0) nb_[buffers_[i].node].buffer0 = static_cast<int>(i);
  }
  const size_t state_floats = std::max<size_t>(off, 1);
  param_buf_ = backend_->alloc(param_floats);
  grad_buf_ = backend_->alloc(param_floats);
  state_buf_ = backend_->alloc(state_floats);
  backend_->fill(grad_buf_, 0.0f, param_floats);

  std::vector<float> host(param_floats, 0.0f);
  for (size_t i = 0; i < params_.size(); ++i) {
    const Node& nd = nodes[params_[i].node];
    SplitMix64 rng(mix_seed(seed, static_cast<uint64_t>(params_[i].node), i));
    init_tensor(host.data() + param_offset_[i], params_[i], nd, graph_.node(nd.inputs[0]).shape,
                nd.op.init.value_or(graph_.init()), rng);
  }
  backend_->upload(param_buf_, host.data(), param_floats);
  std::vector<float> state(state_floats, 0.0f);
  for (size_t i = 0; i < buffers_.size(); ++i) {
    const bool var = buffers_[i].name.ends_with(".running_var");
    std::fill(state.begin() + buffer_offset_[i], state.begin() + buffer_offset_[i] + buffers_[i].size, var ? 1.0f : 0.0f);
  }
  backend_->upload(state_buf_, state.data(), state_floats);

  frozen_.assign(params_.size(), 0);
  for (size_t i = 0; i < params_.size(); ++i) {
    ParamRef r;
    r.name = params_[i].name;
    r.value = param_data(i);
    r.grad = grad_data(i);
    r.size = params_[i].size;
    refs_.push_back(r);
  }
  dropout_seed_ = mix_seed(seed, 0x44524f50u /* "DROP" */);

  fused_relu_.assign(nodes.size(), -1);
  relu_fused_.assign(nodes.size(), 0);
  std::vector<int> readers(nodes.size(), 0), reader(nodes.size(), -1);
  for (int id = 1; id <= graph_.output(); ++id)
    for (int src : nodes[id].inputs) {
      ++readers[src];
      reader[src] = id;
    }
  relu_before_pool_.assign(nodes.size(), -1);
  for (int id = 1; id <= graph_.output(); ++id) {
    const Node& nd = nodes[id];
    if (nd.op.kind != OpKind::kMaxPool) continue;
    const int r = nd.inputs[0];
    if (r > 0 && nodes[r].op.kind == OpKind::kReLU && readers[r] == 1) relu_before_pool_[id] = r;
  }
  for (int id = 1; id < graph_.output(); ++id) {
    const OpKind k = nodes[id].op.kind;
    if ((k == OpKind::kLinear || k == OpKind::kConv2d) && readers[id] == 1 &&
        nodes[reader[id]].op.kind == OpKind::kReLU) {
      fused_relu_[id] = reader[id];
      relu_fused_[reader[id]] = 1;
    }
  }
}

Model::~Model() {
  release_plan();
  backend_->free(param_buf_);
  backend_->free(grad_buf_);
  backend_->free(state_buf_);
}

void Model::release_plan() {
  nb_[0].out = nullptr;  // the caller's input, not ours
  const auto& nodes = graph_.nodes();
  for (size_t id = 0; id < nb_.size(); ++id) {
    auto& b = nb_[id];
    const bool alias = nodes[id].op.kind == OpKind::kFlatten || nodes[id].op.kind == OpKind::kIdentity;
    if (b.out && !alias) backend_->free(b.out);
    if (b.grad) backend_->free(b.grad);
    if (b.aux) backend_->free(b.aux);
    b.out = b.grad = b.aux = nullptr;
  }
  if (workspace_) backend_->free(workspace_);
  if (input_grad_) backend_->free(input_grad_);
  workspace_ = input_grad_ = nullptr;
  batch_ = 0;
}

void Model::plan(int max_batch) {
  if (max_batch < 1) throw TrainError("batch size must be >= 1");
  if (max_batch <= batch_) return;
  release_plan();
  const auto& nodes = graph_.nodes();
  size_t workspace = 1;
  for (size_t id = 1; id < nodes.size(); ++id) {
    const Node& nd = nodes[id];
    const size_t act = static_cast<size_t>(max_batch) * nd.shape.size();
    // A producer fused with its ReLU never materialises its own output, and Flatten/Identity
    // outputs are their input's buffer (set in forward), so neither gets one.
    const bool alias = nd.op.kind == OpKind::kFlatten || nd.op.kind == OpKind::kIdentity;
    nb_[id].out = fused_relu_[id] >= 0 || alias ? nullptr : backend_->alloc(act);
    nb_[id].grad = backend_->alloc(act);
    if (nd.op.kind == OpKind::kBatchNorm) nb_[id].aux = backend_->alloc(2 * nd.shape.c);
    if (nd.op.kind == OpKind::kDropout) nb_[id].aux = backend_->alloc(act);
    if (nd.op.kind == OpKind::kConv2d) {
      const Shape in = nodes[nd.inputs[0]].shape;
      ConvDims d{max_batch, in.c, in.h, in.w, nd.op.out, nd.op.kernel, nd.op.kernel, nd.op.stride, nd.op.padding, nd.op.groups};
      workspace = std::max(workspace, backend_->conv2d_workspace(d));
    }
  }
  workspace_ = backend_->alloc(workspace);
  input_grad_ = backend_->alloc(static_cast<size_t>(max_batch) * graph_.input_shape().size());
  batch_ = max_batch;
}

int64_t Model::trainable_param_count() const {
  int64_t n = 0;
  for (size_t i = 0; i < params_.size(); ++i)
    if (!frozen_[i]) n += params_[i].size;
  return n;
}

int Model::set_frozen(const std::string& pattern, bool frozen) {
  int matched = 0, changed = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = params_[i].name;
    const bool hit = name == pattern || name.rfind(pattern + ".", 0) == 0 ||
                     fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
    if (!hit) continue;
    ++matched;
    if (static_cast<bool>(frozen_[i]) != frozen) ++changed;
    frozen_[i] = frozen;
    refs_[i].frozen = frozen;
    // A frozen parameter's gradient reads as zero (backward no longer writes it).
    if (frozen) backend_->fill(grad_data(i), 0.0f, params_[i].size);
  }
  if (matched == 0) throw ConfigError("freeze: no parameter matches '" + pattern + "'");
  return changed;
}

std::map<std::string, std::vector<float>> Model::state_dict() {
  std::map<std::string, std::vector<float>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    std::vector<float> v(params_[i].size);
    backend_->download(v.data(), param_data(i), v.size());
    out[params_[i].name] = std::move(v);
  }
  for (size_t i = 0; i < buffers_.size(); ++i) {
    std::vector<float> v(buffers_[i].size);
    backend_->download(v.data(), buffer_data(i), v.size());
    out[buffers_[i].name] = std::move(v);
  }
  return out;
}

std::vector<float> Model::tensor(const std::string& name) {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) {
      std::vector<float> v(params_[i].size);
      backend_->download(v.data(), param_data(i), v.size());
      return v;
    }
  for (size_t i = 0; i < buffers_.size(); ++i)
    if (buffers_[i].name == name) {
      std::vector<float> v(buffers_[i].size);
      backend_->download(v.data(), buffer_data(i), v.size());
      return v;
    }
  throw ConfigError("model has no tensor named '" + name + "'");
}

void Model::set_tensor(const std::string& name, const std::vector<float>& values) {
  auto check = [&](int64_t size) {
    if (static_cast<int64_t>(values.size()) != size)
      throw ConfigError("tensor '" + name + "' has " + std::to_string(size) + " values, got " +
                        std::to_string(values.size()));
  };
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) {
      check(params_[i].size);
      backend_->upload(param_data(i), values.data(), values.size());
      return;
    }
  for (size_t i = 0; i < buffers_.size(); ++i)
    if (buffers_[i].name == name) {
      check(buffers_[i].size);
      backend_->upload(buffer_data(i), values.data(), values.size());
      return;
    }
  throw ConfigError("model has no tensor named '" + name + "'");
}

// ---------------------------------------------------------------- forward

const float* Model::forward(const float* input, int n, bool train) {
  if (n < 1) throw TrainError("forward: batch must have at least one sample");
  if (n > batch_) plan(n);
  last_input_ = input;
  last_n_ = n;
  last_train_ = train;
  nb_[0].out = const_cast<float*>(input);
  const int out = graph_.output();
  for (int id = 1; id <= out; ++id) forward_node(id, n, train);
  if (train) ++dropout_counter_;
  return nb_[out].out;
}

void Model::forward_node(int id, int n, bool train) {
  const Node& nd = graph_.node(id);
  const Op& op = nd.op;
  NodeBuffers& b = nb_[id];
  const Shape in_shape = graph_.node(nd.inputs[0]).shape;
  const float* in = nb_[nd.inputs[0]].out;
  const size_t count = static_cast<size_t>(n) * nd.shape.size();
  Backend& be = *backend_;
  auto param = [&](size_t k) -> float* { return k < b.params.size() ? param_data(b.params[k]) : nullptr; };
  switch (op.kind) {
    case OpKind::kInput: break;
    case OpKind::kLinear: {
      const bool fuse = fused_relu_[id] >= 0;
      be.linear_forward(fuse ? nb_[fused_relu_[id]].out : b.out, in, param(0), op.bias ? param(1) : nullptr, n,
                        static_cast<int>(in_shape.size()), op.out, fuse);
      break;
    }
    case OpKind::kConv2d: {
      const bool fuse = fused_relu_[id] >= 0;
      ConvDims d{n, in_shape.c, in_shape.h, in_shape.w, op.out, op.kernel, op.kernel, op.stride, op.padding, op.groups};
      be.conv2d_forward(fuse ? nb_[fused_relu_[id]].out : b.out, in, param(0), op.bias ? param(1) : nullptr,
                        workspace_, d, fuse);
      break;
    }
    case OpKind::kMaxPool:
    case OpKind::kAvgPool: {
      PoolDims d{n, in_shape.c, in_shape.h, in_shape.w, op.kernel, op.stride, op.padding};
      if (op.kind == OpKind::kMaxPool) be.maxpool_forward(b.out, in, d);
      else be.avgpool_forward(b.out, in, d);
      break;
    }
    case OpKind::kGlobalAvgPool:
      be.global_avgpool_forward(b.out, in, n, in_shape.c, in_shape.h * in_shape.w);
      break;
    case OpKind::kBatchNorm: {
      float* rm = buffer_data(b.buffer0);
      float* rv = buffer_data(b.buffer0 + 1);
      const int c = in_shape.c, hw = in_shape.h * in_shape.w;
      if (train)
        be.batchnorm_forward_train(b.out, b.aux, b.aux + c, rm, rv, in, param(0), param(1), n, c, hw, op.eps, op.momentum);
      else
        be.batchnorm_forward_eval(b.out, in, param(0), param(1), rm, rv, n, c, hw, op.eps);
      break;
    }
    case OpKind::kDropout:
      if (train && op.p > 0.0f)
        be.dropout_forward(b.out, b.aux, in, count, op.p, mix_seed(dropout_seed_, static_cast<uint64_t>(id)), dropout_counter_);
      else
        be.copy(b.out, in, count);
      break;
    case OpKind::kReLU:
      if (!relu_fused_[id]) be.activation_forward(b.out, in, count, Activation::kReLU, 0.0f);
      break;
    case OpKind::kLeakyReLU: be.activation_forward(b.out, in, count, Activation::kLeakyReLU, op.alpha); break;
    case OpKind::kGELU: be.activation_forward(b.out, in, count, Activation::kGELU, 0.0f); break;
    case OpKind::kTanh: be.activation_forward(b.out, in, count, Activation::kTanh, 0.0f); break;
    case OpKind::kSigmoid: be.activation_forward(b.out, in, count, Activation::kSigmoid, 0.0f); break;
    case OpKind::kFlatten:
    case OpKind::kIdentity: b.out = const_cast<float*>(in); break;  // same memory, no copy
    case OpKind::kZero: be.fill(b.out, 0.0f, count); break;
    case OpKind::kAdd:
      be.copy(b.out, in, count);
      for (size_t k = 1; k < nd.inputs.size(); ++k) be.add_into(b.out, nb_[nd.inputs[k]].out, count, true);
      break;
    case OpKind::kConcat: {
      int offset = 0;
      const int hw = nd.shape.h * nd.shape.w;
      for (int src : nd.inputs) {
        const int c = graph_.node(src).shape.c;
        be.concat_forward_part(b.out, nb_[src].out, n, c, nd.shape.c, offset, hw);
        offset += c;
      }
      break;
    }
  }
}

// ---------------------------------------------------------------- backward

void Model::backward(const float* dout, bool want_input_grad) {
  if (last_n_ == 0) throw TrainError("backward called before forward");
  dout_ = dout;
  const auto& nodes = graph_.nodes();
  const int out = graph_.output();
  // Which nodes need a gradient: those with trainable parameters and everything downstream of
  // them (or of the input when its gradient is wanted). Sized once per graph, no allocation here.
  needs_grad_.assign(nodes.size(), 0);
  written_.assign(nodes.size(), 0);
  needs_grad_[0] = want_input_grad;
  for (int id = 1; id <= out; ++id) {
    const Node& nd = nodes[id];
    bool need = false;
    for (int p : nb_[id].params) need = need || !frozen_[p];
    if (nd.op.kind != OpKind::kZero)
      for (int src : nd.inputs) need = need || needs_grad_[src];
    needs_grad_[id] = need;
  }
  written_[out] = 1;
  backward_done_.assign(nodes.size(), 0);
  for (int id = out; id >= 1; --id) {
    if (backward_done_[id]) continue;
    if (needs_grad_[id] && written_[id]) {
      backward_node(id, last_n_);
    } else {
      // No gradient reaches this node: its trainable parameters get zero gradients.
      for (int p : nb_[id].params)
        if (!frozen_[p]) backend_->fill(grad_data(p), 0.0f, params_[p].size);
    }
  }
  for (int id = out + 1; id < static_cast<int>(nodes.size()); ++id)
    for (int p : nb_[id].params)
      if (!frozen_[p]) backend_->fill(grad_data(p), 0.0f, params_[p].size);
  if (want_input_grad && !written_[0])
    backend_->fill(input_grad_, 0.0f, static_cast<size_t>(last_n_) * graph_.input_shape().size());
}

void Model::backward_node(int id, int n) {
  const Node& nd = graph_.node(id);
  const Op& op = nd.op;
  NodeBuffers& b = nb_[id];
  Backend& be = *backend_;
  const float* g = id == graph_.output() ? dout_ : b.grad;
  const size_t count = static_cast<size_t>(n) * nd.shape.size();
  const int src0 = nd.inputs[0];
  const Shape in_shape = graph_.node(src0).shape;
  const float* in = nb_[src0].out;
  auto grad_of = [&](int src) -> float* {
    if (!needs_grad_[src]) return nullptr;
    return src == 0 ? input_grad_ : nb_[src].grad;
  };
  float* din = grad_of(src0);
  const bool acc = written_[src0];
  auto pgrad = [&](size_t k) -> float* {
    if (k >= b.params.size() || frozen_[b.params[k]]) return nullptr;
    return grad_data(b.params[k]);
  };
  auto param = [&](size_t k) -> float* { return k < b.params.size() ? param_data(b.params[k]) : nullptr; };
  switch (op.kind) {
    case OpKind::kInput: return;
    case OpKind::kLinear:
      be.linear_backward(din, pgrad(0), op.bias ? pgrad(1) : nullptr, g, in, param(0), n,
                         static_cast<int>(in_shape.size()), op.out, acc);
      break;
    case OpKind::kConv2d: {
      ConvDims d{n, in_shape.c, in_shape.h, in_shape.w, op.out, op.kernel, op.kernel, op.stride, op.padding, op.groups};
      be.conv2d_backward(din, pgrad(0), op.bias ? pgrad(1) : nullptr, g, in, param(0), workspace_, d, acc);
      break;
    }
    case OpKind::kMaxPool:
    case OpKind::kAvgPool: {
      if (!din) break;
      PoolDims d{n, in_shape.c, in_shape.h, in_shape.w, op.kernel, op.stride, op.padding};
      if (op.kind == OpKind::kMaxPool && relu_before_pool_[id] >= 0) {
        // Straight through the ReLU to its input's gradient (see relu_before_pool_).
        const int r = relu_before_pool_[id], src = graph_.node(r).inputs[0];
        backward_done_[r] = 1;
        if (float* dsrc = grad_of(src)) {
          be.maxpool_backward(dsrc, g, in, b.out, d, written_[src], true);
          written_[src] = 1;
        }
        return;
      }
      if (op.kind == OpKind::kMaxPool) be.maxpool_backward(din, g, in, b.out, d, acc, false);
      else be.avgpool_backward(din, g, d, acc);
      break;
    }
    case OpKind::kGlobalAvgPool:
      if (din) be.global_avgpool_backward(din, g, n, in_shape.c, in_shape.h * in_shape.w, acc);
      break;
    case OpKind::kBatchNorm: {
      const int c = in_shape.c, hw = in_shape.h * in_shape.w;
      if (last_train_)
        be.batchnorm_backward_train(din, pgrad(0), pgrad(1), g, in, param(0), b.aux, b.aux + c, n, c, hw, acc);
      else
        be.batchnorm_backward_eval(din, pgrad(0), pgrad(1), g, in, param(0), buffer_data(b.buffer0),
                                   buffer_data(b.buffer0 + 1), n, c, hw, op.eps, acc);
      break;
    }
    case OpKind::kDropout:
      if (!din) break;
      if (last_train_ && op.p > 0.0f) be.dropout_backward(din, g, b.aux, count, acc);
      else be.add_into(din, g, count, acc);
      break;
    case OpKind::kReLU:
    case OpKind::kLeakyReLU:
    case OpKind::kGELU:
    case OpKind::kTanh:
    case OpKind::kSigmoid: {
      if (!din) break;
      const Activation a = op.kind == OpKind::kReLU        ? Activation::kReLU
                           : op.kind == OpKind::kLeakyReLU ? Activation::kLeakyReLU
                           : op.kind == OpKind::kGELU      ? Activation::kGELU
                           : op.kind == OpKind::kTanh      ? Activation::kTanh
                                                           : Activation::kSigmoid;
      be.activation_backward(din, g, in, b.out, count, a, op.alpha, acc);
      break;
    }
    case OpKind::kFlatten:
    case OpKind::kIdentity:
      if (din) be.add_into(din, g, count, acc);
      break;
    case OpKind::kZero: return;  // the output does not depend on the input
    case OpKind::kAdd:
      for (int src : nd.inputs) {
        float* d = grad_of(src);
        if (!d) continue;
        be.add_into(d, g, count, written_[src]);
        written_[src] = 1;
      }
      return;
    case OpKind::kConcat: {
      int offset = 0;
      const int hw = nd.shape.h * nd.shape.w;
      for (int src : nd.inputs) {
        const int c = graph_.node(src).shape.c;
        if (float* d = grad_of(src)) {
          be.concat_backward_part(d, g, n, c, nd.shape.c, offset, hw, written_[src]);
          written_[src] = 1;
        }
        offset += c;
      }
      return;
    }
  }
  if (din) written_[src0] = 1;
}

}  // namespace kestrel::trainer
