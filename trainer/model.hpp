// A Graph made runnable on a Backend: parameters, planned activation buffers, forward and backward.
// Also parameter initialisation (init_tensor) and freezing by name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "trainer/backend.hpp"
#include "trainer/graph.hpp"
#include "trainer/optim.hpp"

namespace kestrel::trainer {

class SplitMix64;

// Fills `out` (info.size floats, host memory) with the initial value of a parameter of `node`.
// Weights follow `kind`; biases follow PyTorch's default for kTorchDefault and are zero otherwise;
// BatchNorm weights are 1 and biases 0. Draws only from rng, so a seed fixes the result.
void init_tensor(float* out, const TensorInfo& info, const Node& node, const Shape& input_shape,
                 InitKind kind, SplitMix64& rng);

// What it represents: one model instance on one backend: a Graph, its parameters (one contiguous
// device buffer, in Graph::params() order), their gradients (a second one), the BatchNorm running
// statistics, and activation/gradient buffers planned for a maximum batch size.
// Memory: plan(batch) allocates everything a forward/backward needs; forward() and backward()
// never allocate. A smaller batch (the last one of an epoch) reuses the plan.
// Gradients: backward() overwrites the gradients of all trainable parameters (a parameter that
// does not influence the output gets zeros); frozen parameters' gradients stay zero and their
// backward work is skipped, as is any input gradient nobody needs.
// Thread safety: none (one training thread); the backend parallelises inside each op.
// Ownership: the backend must outlive the model; pointers returned point into the model.
class Model {
 public:
  // Allocates and initialises parameters from seed (graph.init() unless a node overrides it).
  Model(Graph graph, Backend& backend, uint64_t seed);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const Graph& graph() const { return graph_; }
  Backend& backend() { return *backend_; }

  // Plans buffers for batches of up to max_batch samples (re-plans only when it grows).
  void plan(int max_batch);
  int planned_batch() const { return batch_; }

  // requires: 1 <= n <= planned batch (plan() is called automatically when n is larger);
  //   input holds n * input_shape().size() floats in backend memory and stays valid until
  //   backward() returns.
  // train: BatchNorm uses batch statistics and updates running ones; Dropout draws a mask.
  // returns the output activations (n * output size floats, backend memory, valid until the next
  // forward).
  const float* forward(const float* input, int n, bool train);
  // Backpropagates dout (gradient of the loss w.r.t. the output of the last forward, backend
  // memory). When want_input_grad, input_grad() afterwards holds d loss / d input.
  void backward(const float* dout, bool want_input_grad = false);
  const float* input_grad() const { return input_grad_; }

  // ---- parameters ----
  const std::vector<TensorInfo>& params() const { return params_; }
  const std::vector<TensorInfo>& buffers() const { return buffers_; }
  float* param_data(size_t i) { return param_buf_ + param_offset_[i]; }
  float* grad_data(size_t i) { return grad_buf_ + param_offset_[i]; }
  float* buffer_data(size_t i) { return state_buf_ + buffer_offset_[i]; }
  int64_t param_count() const { return total_params_; }
  int64_t trainable_param_count() const;
  int64_t flops_per_sample() const { return graph_.flops_per_sample(); }

  // Freezes (or unfreezes) every parameter whose name equals pattern, starts with pattern + "."
  // (a node name freezes all its parameters) or matches it as a shell glob ("conv*").
  // returns how many parameters changed state; throws ConfigError when the pattern matches none.
  int set_frozen(const std::string& pattern, bool frozen = true);
  bool frozen(size_t i) const { return frozen_[i]; }

  // Views for the optimizer: one ParamRef per parameter (frozen flag included; biases and
  // BatchNorm parameters have decay = true, as in PyTorch's default param group).
  std::vector<ParamRef>& param_refs() { return refs_; }

  // Host copies by name, for checkpoints, transfer learning and tests. Names cover parameters and
  // buffers. set_tensor throws ConfigError on an unknown name or a size mismatch.
  std::map<std::string, std::vector<float>> state_dict();
  std::vector<float> tensor(const std::string& name);
  void set_tensor(const std::string& name, const std::vector<float>& values);

  // Dropout draws depend on (seed, counter); the counter advances once per training forward and
  // is part of a checkpoint's RNG state.
  uint64_t dropout_seed() const { return dropout_seed_; }
  uint64_t dropout_counter() const { return dropout_counter_; }
  void set_dropout_counter(uint64_t c) { dropout_counter_ = c; }

 private:
  struct NodeBuffers {
    float* out = nullptr;
    float* grad = nullptr;
    float* aux = nullptr;  // BatchNorm saved mean + invstd; Dropout mask
    std::vector<int> params;  // indices into params_ (weight, bias)
    int buffer0 = -1;         // index of running_mean in buffers_
  };
  void release_plan();
  void forward_node(int id, int n, bool train);
  void backward_node(int id, int n);

  Graph graph_;
  Backend* backend_;
  std::vector<TensorInfo> params_, buffers_;
  std::vector<size_t> param_offset_, buffer_offset_;
  std::vector<char> frozen_;
  std::vector<ParamRef> refs_;
  int64_t total_params_ = 0;
  float* param_buf_ = nullptr;
  float* grad_buf_ = nullptr;
  float* state_buf_ = nullptr;
  std::vector<NodeBuffers> nb_;
  float* workspace_ = nullptr;
  float* input_grad_ = nullptr;
  std::vector<char> needs_grad_, written_;  // per node, reused by every backward()
  // Linear/Conv2d nodes whose only reader is a ReLU write the ReLU's output directly (one pass
  // over the activations less); fused_relu_[producer] is that ReLU's id, -1 otherwise.
  std::vector<int> fused_relu_;
  std::vector<char> relu_fused_;  // per node: a ReLU computed by its producer
  // MaxPool nodes reading a ReLU that nothing else reads backpropagate through both at once
  // (the ReLU's backward pass is skipped): relu_before_pool_[pool] is that ReLU's id, -1 otherwise.
  std::vector<int> relu_before_pool_;
  std::vector<char> backward_done_;  // per node, per backward(): already handled by a fused node
  int batch_ = 0;
  int last_n_ = 0;
  bool last_train_ = false;
  const float* last_input_ = nullptr;
  const float* dout_ = nullptr;
  uint64_t dropout_seed_ = 0;
  uint64_t dropout_counter_ = 0;
};

}  // namespace kestrel::trainer
