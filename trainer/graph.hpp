// Model descriptions as directed acyclic graphs of layer nodes, built from code or from YAML.
// A Graph only describes (shapes, parameter names, counts, FLOPs); trainer/model.hpp runs it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace kestrel::trainer {

enum class OpKind {
  kInput, kLinear, kConv2d, kMaxPool, kAvgPool, kGlobalAvgPool, kBatchNorm, kDropout,
  kReLU, kLeakyReLU, kGELU, kTanh, kSigmoid, kFlatten, kAdd, kConcat, kIdentity, kZero,
};

// Lower-case name used in model files ("linear", "conv2d", "max_pool", ...).
const char* op_name(OpKind kind);

// Parameter initialisation. kTorchDefault is PyTorch's default for Linear and Conv2d
// (weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))); the Xavier/Glorot and He/Kaiming
// variants (Kaiming with the ReLU gain, fan_in mode) set biases to zero.
enum class InitKind { kTorchDefault, kXavierUniform, kXavierNormal, kKaimingUniform, kKaimingNormal };
InitKind parse_init(const std::string& name);  // throws ConfigError on an unknown name
const char* init_name(InitKind kind);

// One layer and its attributes; only the attributes of its kind are read.
struct Op {
  OpKind kind = OpKind::kIdentity;
  int out = 0;                 // Linear: out_features; Conv2d: out_channels
  int kernel = 1;              // Conv2d and pools (square)
  int stride = 0;              // Conv2d default 1; pools default = kernel
  int padding = 0;
  int groups = 1;              // Conv2d
  bool bias = true;            // Linear, Conv2d; BatchNorm: learnable affine
  float alpha = 0.01f;         // LeakyReLU negative slope
  float p = 0.5f;              // Dropout probability
  float eps = 1e-5f;           // BatchNorm
  float momentum = 0.1f;       // BatchNorm running-statistics update
  std::optional<InitKind> init;  // overrides the graph's default initialisation for this node
};

// Builders for Op, so code reads like a model file: g.add(ops::conv2d(32, 3), x).
namespace ops {
Op linear(int out, bool bias = true);
Op conv2d(int out, int kernel, int stride = 1, int padding = 0, int groups = 1, bool bias = true);
Op max_pool(int kernel, int stride = 0, int padding = 0);
Op avg_pool(int kernel, int stride = 0, int padding = 0);
Op global_avg_pool();
Op batch_norm(float eps = 1e-5f, float momentum = 0.1f, bool affine = true);
Op dropout(float p);
Op relu();
Op leaky_relu(float slope = 0.01f);
Op gelu();
Op tanh();
Op sigmoid();
Op flatten();
Op add();
Op concat();
Op identity();
Op zero();
}  // namespace ops

// Per-sample tensor shape (channels, height, width); vectors are (n, 1, 1).
struct Shape {
  int c = 1, h = 1, w = 1;
  int64_t size() const { return static_cast<int64_t>(c) * h * w; }
  bool operator==(const Shape&) const = default;
};

struct Node {
  Op op;
  std::string name;
  std::vector<int> inputs;
  Shape shape;  // output shape
};

// A learnable parameter or a state buffer (BatchNorm running statistics) of one node.
struct TensorInfo {
  std::string name;             // "<node>.weight", "<node>.bias", "<node>.running_mean", ...
  int node = 0;
  std::vector<int64_t> shape;   // PyTorch's layout: Linear [out, in], Conv2d [out, in/groups, k, k]
  int64_t size = 0;
};

// What it represents: a DAG of nodes in insertion order; node 0 is the input. Because a node may
// only read nodes added before it, insertion order is a topological order and cycles cannot occur.
// The output is the last node added unless set_output() says otherwise.
// Linear reads its input flattened (c*h*w features), so an explicit Flatten is optional.
// Thread safety: a value type; const methods may be called concurrently.
class Graph {
 public:
  explicit Graph(Shape input, InitKind init = InitKind::kTorchDefault);

  // requires: every input id exists; the op's shape rules hold (Add: equal shapes; Concat: equal
  //   h and w; Conv2d: channels divisible by groups, kernel fits; names unique).
  // ensures: returns the new node's id; its output shape is inferred.
  // throws TrainError naming the node and the rule it breaks.
  int add_node(const Op& op, const std::vector<int>& inputs, const std::string& name = "");
  int add(const Op& op, int input, const std::string& name = "") { return add_node(op, {input}, name); }
  void set_output(int id);

  int input() const { return 0; }
  int output() const { return output_ < 0 ? static_cast<int>(nodes_.size()) - 1 : output_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const Node& node(int id) const { return nodes_.at(id); }
  int find(const std::string& name) const;  // -1 when absent
  Shape input_shape() const { return nodes_[0].shape; }
  Shape output_shape() const { return nodes_[output()].shape; }
  InitKind init() const { return init_; }
  void set_init(InitKind init) { init_ = init; }

  std::vector<TensorInfo> params() const;   // learnable, in node order (weight before bias)
  std::vector<TensorInfo> buffers() const;  // running statistics, in node order
  int64_t param_count() const;
  // Forward FLOPs for one sample: 2 x the multiply-accumulates of Linear and Conv2d (the
  // convention of fvcore and most papers; pointwise layers are memory-bound and not counted).
  int64_t flops_per_sample() const;

 private:
  std::vector<Node> nodes_;
  int output_ = -1;
  InitKind init_;
};

// Builds a graph from a model description (docs/model-file.md):
//   input: [c, h, w]          (or [features])
//   init: torch_default       (optional)
//   nodes: [{op: conv2d, out: 32, kernel: 3, name: c1, inputs: [input]}, ...]
//   output: name              (optional; default the last node)
// A node's inputs default to the node before it. `file` is used in messages only.
// throws ConfigError with file, line and key for anything it cannot accept.
Graph parse_model(const YAML::Node& model, const std::string& file);
// Reads a YAML file whose top level is either the model description or has it under `model:`.
Graph load_model_file(const std::string& path);

}  // namespace kestrel::trainer
