// Graph construction, shape inference, parameter naming, parameter/FLOP counts and the YAML reader
// for model descriptions.
#include "trainer/graph.hpp"

#include <map>
#include <set>

#include "common/error.hpp"

namespace kestrel::trainer {
namespace {

struct OpNameEntry {
  OpKind kind;
  const char* name;
};
constexpr OpNameEntry kOpNames[] = {
    {OpKind::kInput, "input"},        {OpKind::kLinear, "linear"},
    {OpKind::kConv2d, "conv2d"},      {OpKind::kMaxPool, "max_pool"},
    {OpKind::kAvgPool, "avg_pool"},   {OpKind::kGlobalAvgPool, "global_avg_pool"},
    {OpKind::kBatchNorm, "batch_norm"}, {OpKind::kDropout, "dropout"},
    {OpKind::kReLU, "relu"},          {OpKind::kLeakyReLU, "leaky_relu"},
    {OpKind::kGELU, "gelu"},          {OpKind::kTanh, "tanh"},
    {OpKind::kSigmoid, "sigmoid"},    {OpKind::kFlatten, "flatten"},
    {OpKind::kAdd, "add"},            {OpKind::kConcat, "concat"},
    {OpKind::kIdentity, "identity"},  {OpKind::kZero, "zero"},
};

std::string where(const std::string& file, const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.line < 0) return file;
  return file + ":" + std::to_string(m.line + 1);
}

}  // namespace

const char* op_name(OpKind kind) {
  for (const auto& e : kOpNames)
    if (e.kind == kind) return e.name;
  return "?";
}

InitKind parse_init(const std::string& name) {
  if (name == "torch_default" || name == "default") return InitKind::kTorchDefault;
  if (name == "xavier_uniform" || name == "glorot_uniform") return InitKind::kXavierUniform;
  if (name == "xavier_normal" || name == "glorot_normal") return InitKind::kXavierNormal;
  if (name == "kaiming_uniform" || name == "he_uniform") return InitKind::kKaimingUniform;
  if (name == "kaiming_normal" || name == "he_normal") return InitKind::kKaimingNormal;
  throw ConfigError("unknown init '" + name +
                    "' (expected torch_default, xavier_uniform, xavier_normal, kaiming_uniform, kaiming_normal)");
}

const char* init_name(InitKind kind) {
  switch (kind) {
    case InitKind::kTorchDefault: return "torch_default";
    case InitKind::kXavierUniform: return "xavier_uniform";
    case InitKind::kXavierNormal: return "xavier_normal";
    case InitKind::kKaimingUniform: return "kaiming_uniform";
    case InitKind::kKaimingNormal: return "kaiming_normal";
  }
  return "?";
}

namespace ops {
namespace {
Op make(OpKind k) {
  Op o;
  o.kind = k;
  return o;
}
}  // namespace
Op linear(int out, bool bias) {
  Op o = make(OpKind::kLinear);
  o.out = out;
  o.bias = bias;
  return o;
}
Op conv2d(int out, int kernel, int stride, int padding, int groups, bool bias) {
  Op o = make(OpKind::kConv2d);
  o.out = out;
  o.kernel = kernel;
  o.stride = stride;
  o.padding = padding;
  o.groups = groups;
  o.bias = bias;
  return o;
}
Op max_pool(int kernel, int stride, int padding) {
  Op o = make(OpKind::kMaxPool);
  o.kernel = kernel;
  o.stride = stride;
  o.padding = padding;
  return o;
}
Op avg_pool(int kernel, int stride, int padding) {
  Op o = max_pool(kernel, stride, padding);
  o.kind = OpKind::kAvgPool;
  return o;
}
Op global_avg_pool() { return make(OpKind::kGlobalAvgPool); }
Op batch_norm(float eps, float momentum, bool affine) {
  Op o = make(OpKind::kBatchNorm);
  o.eps = eps;
  o.momentum = momentum;
  o.bias = affine;
  return o;
}
Op dropout(float p) {
  Op o = make(OpKind::kDropout);
  o.p = p;
  return o;
}
Op relu() { return make(OpKind::kReLU); }
Op leaky_relu(float slope) {
  Op o = make(OpKind::kLeakyReLU);
  o.alpha = slope;
  return o;
}
Op gelu() { return make(OpKind::kGELU); }
Op tanh() { return make(OpKind::kTanh); }
Op sigmoid() { return make(OpKind::kSigmoid); }
Op flatten() { return make(OpKind::kFlatten); }
Op add() { return make(OpKind::kAdd); }
Op concat() { return make(OpKind::kConcat); }
Op identity() { return make(OpKind::kIdentity); }
Op zero() { return make(OpKind::kZero); }
}  // namespace ops

Graph::Graph(Shape input, InitKind init) : init_(init) {
  if (input.c < 1 || input.h < 1 || input.w < 1) throw TrainError("graph input shape must be positive");
  Node n;
  n.op.kind = OpKind::kInput;
  n.name = "input";
  n.shape = input;
  nodes_.push_back(n);
}

int Graph::find(const std::string& name) const {
  for (size_t i = 0; i < nodes_.size(); ++i)
    if (nodes_[i].name == name) return static_cast<int>(i);
  return -1;
}

void Graph::set_output(int id) {
  if (id < 0 || id >= static_cast<int>(nodes_.size())) throw TrainError("output node id out of range");
  output_ = id;
}

int Graph::add_node(const Op& op_in, const std::vector<int>& inputs, const std::string& name_in) {
  const int id = static_cast<int>(nodes_.size());
  Node n;
  n.op = op_in;
  n.inputs = inputs;
  n.name = name_in.empty() ? std::string(op_name(op_in.kind)) + std::to_string(id) : name_in;
  const std::string who = "node '" + n.name + "' (" + op_name(op_in.kind) + ")";
  auto fail = [&](const std::string& why) { throw TrainError(who + ": " + why); };
  if (op_in.kind == OpKind::kInput) fail("only the graph has an input node");
  if (find(n.name) >= 0) fail("name already used");
  if (n.name.find('.') != std::string::npos) fail("names may not contain '.'");
  for (int i : inputs)
    if (i < 0 || i >= id) fail("input id " + std::to_string(i) + " does not exist yet");
  const bool multi = op_in.kind == OpKind::kAdd || op_in.kind == OpKind::kConcat;
  if (multi ? inputs.empty() : inputs.size() != 1)
    fail(multi ? "needs at least one input" : "needs exactly one input");
  const Shape in = nodes_[inputs[0]].shape;
  Op& op = n.op;
  switch (op.kind) {
    case OpKind::kLinear:
      if (op.out < 1) fail("out must be >= 1");
      n.shape = {op.out, 1, 1};
      break;
    case OpKind::kConv2d: {
      if (op.stride == 0) op.stride = 1;
      if (op.out < 1 || op.kernel < 1 || op.stride < 1 || op.padding < 0 || op.groups < 1)
        fail("out, kernel, stride, groups must be >= 1 and padding >= 0");
      if (in.c % op.groups || op.out % op.groups)
        fail("input channels (" + std::to_string(in.c) + ") and out (" + std::to_string(op.out) +
             ") must be divisible by groups (" + std::to_string(op.groups) + ")");
      const int ho = (in.h + 2 * op.padding - op.kernel) / op.stride + 1;
      const int wo = (in.w + 2 * op.padding - op.kernel) / op.stride + 1;
      if (in.h + 2 * op.padding < op.kernel || in.w + 2 * op.padding < op.kernel || ho < 1 || wo < 1)
        fail("kernel larger than the padded input " + std::to_string(in.h) + "x" + std::to_string(in.w));
      n.shape = {op.out, ho, wo};
      break;
    }
    case OpKind::kMaxPool:
    case OpKind::kAvgPool: {
      if (op.stride == 0) op.stride = op.kernel;
      if (op.kernel < 1 || op.stride < 1 || op.padding < 0) fail("kernel, stride must be >= 1");
      if (2 * op.padding > op.kernel) fail("padding must be at most half the kernel");
      if (in.h + 2 * op.padding < op.kernel || in.w + 2 * op.padding < op.kernel)
        fail("kernel larger than the padded input");
      n.shape = {in.c, (in.h + 2 * op.padding - op.kernel) / op.stride + 1,
                 (in.w + 2 * op.padding - op.kernel) / op.stride + 1};
      break;
    }
    case OpKind::kGlobalAvgPool: n.shape = {in.c, 1, 1}; break;
    case OpKind::kFlatten: n.shape = {static_cast<int>(in.size()), 1, 1}; break;
    case OpKind::kDropout:
      if (!(op.p >= 0.0f && op.p < 1.0f)) fail("p must be in [0, 1)");
      n.shape = in;
      break;
    case OpKind::kBatchNorm:
      if (!(op.eps > 0.0f) || !(op.momentum >= 0.0f && op.momentum <= 1.0f)) fail("eps > 0 and momentum in [0, 1]");
      n.shape = in;
      break;
    case OpKind::kAdd:
      for (int i : inputs)
        if (!(nodes_[i].shape == in)) fail("inputs of add must have equal shapes");
      n.shape = in;
      break;
    case OpKind::kConcat: {
      int c = 0;
      for (int i : inputs) {
        const Shape s = nodes_[i].shape;
        if (s.h != in.h || s.w != in.w) fail("inputs of concat must have equal height and width");
        c += s.c;
      }
      n.shape = {c, in.h, in.w};
      break;
    }
    default: n.shape = in; break;
  }
  nodes_.push_back(std::move(n));
  return id;
}

std::vector<TensorInfo> Graph::params() const {
  std::vector<TensorInfo> out;
  for (size_t id = 0; id < nodes_.size(); ++id) {
    const Node& n = nodes_[id];
    const Shape in = n.inputs.empty() ? Shape{} : nodes_[n.inputs[0]].shape;
    auto push = [&](const std::string& suffix, std::vector<int64_t> shape) {
      int64_t size = 1;
      for (int64_t d : shape) size *= d;
      out.push_back({n.name + "." + suffix, static_cast<int>(id), std::move(shape), size});
    };
    if (n.op.kind == OpKind::kLinear) {
      push("weight", {n.op.out, in.size()});
      if (n.op.bias) push("bias", {n.op.out});
    } else if (n.op.kind == OpKind::kConv2d) {
      push("weight", {n.op.out, in.c / n.op.groups, n.op.kernel, n.op.kernel});
      if (n.op.bias) push("bias", {n.op.out});
    } else if (n.op.kind == OpKind::kBatchNorm && n.op.bias) {
      push("weight", {in.c});
      push("bias", {in.c});
    }
  }
  return out;
}

std::vector<TensorInfo> Graph::buffers() const {
  std::vector<TensorInfo> out;
  for (size_t id = 0; id < nodes_.size(); ++id) {
    const Node& n = nodes_[id];
    if (n.op.kind != OpKind::kBatchNorm) continue;
    const int c = n.shape.c;
    out.push_back({n.name + ".running_mean", static_cast<int>(id), {c}, c});
    out.push_back({n.name + ".running_var", static_cast<int>(id), {c}, c});
  }
  return out;
}

int64_t Graph::param_count() const {
  int64_t total = 0;
  for (const auto& p : params()) total += p.size;
  return total;
}

int64_t Graph::flops_per_sample() const {
  int64_t macs = 0;
  for (const Node& n : nodes_) {
    if (n.op.kind == OpKind::kLinear) {
      macs += nodes_[n.inputs[0]].shape.size() * n.op.out;
    } else if (n.op.kind == OpKind::kConv2d) {
      const Shape in = nodes_[n.inputs[0]].shape;
      macs += static_cast<int64_t>(n.shape.size()) * (in.c / n.op.groups) * n.op.kernel * n.op.kernel;
    }
  }
  return 2 * macs;
}

// ---------------------------------------------------------------- YAML

namespace {

template <typename T>
T get(const YAML::Node& map, const char* key, T fallback, const std::string& file) {
  const YAML::Node v = map[key];
  if (!v) return fallback;
  try {
    return v.as<T>();
  } catch (const YAML::Exception&) {
    throw ConfigError(where(file, v) + ": key '" + key + "': cannot read '" + YAML::Dump(v) + "'");
  }
}

OpKind parse_kind(const YAML::Node& v, const std::string& file) {
  const std::string name = v.as<std::string>();
  for (const auto& e : kOpNames)
    if (name == e.name && e.kind != OpKind::kInput) return e.kind;
  // Accept the PyTorch class names too, since people copy them.
  static const std::map<std::string, OpKind> aliases = {
      {"Linear", OpKind::kLinear}, {"Conv2d", OpKind::kConv2d}, {"MaxPool2d", OpKind::kMaxPool},
      {"maxpool", OpKind::kMaxPool}, {"AvgPool2d", OpKind::kAvgPool}, {"avgpool", OpKind::kAvgPool},
      {"BatchNorm2d", OpKind::kBatchNorm}, {"BatchNorm1d", OpKind::kBatchNorm},
      {"batchnorm", OpKind::kBatchNorm}, {"Dropout", OpKind::kDropout}, {"ReLU", OpKind::kReLU},
      {"LeakyReLU", OpKind::kLeakyReLU}, {"GELU", OpKind::kGELU}, {"Tanh", OpKind::kTanh},
      {"Sigmoid", OpKind::kSigmoid}, {"Flatten", OpKind::kFlatten}, {"Identity", OpKind::kIdentity},
      {"none", OpKind::kZero}, {"skip", OpKind::kIdentity}, {"global_avgpool", OpKind::kGlobalAvgPool}};
  auto it = aliases.find(name);
  if (it != aliases.end()) return it->second;
  throw ConfigError(where(file, v) + ": key 'op': unknown op '" + name + "'");
}

}  // namespace

Graph parse_model(const YAML::Node& model, const std::string& file) {
  if (!model || !model.IsMap()) throw ConfigError(file + ": the model description must be a map");
  static const std::set<std::string> top_keys = {"input", "init", "nodes", "layers", "output", "name"};
  for (const auto& kv : model) {
    const std::string k = kv.first.as<std::string>();
    if (!top_keys.count(k)) throw ConfigError(where(file, kv.first) + ": unknown model key '" + k + "'");
  }
  const YAML::Node in = model["input"];
  if (!in || !in.IsSequence() || in.size() < 1 || in.size() > 3)
    throw ConfigError(where(file, in ? in : model) + ": key 'input': expected [c, h, w] or [features]");
  std::vector<int> dims;
  for (const auto& d : in) dims.push_back(d.as<int>());
  Shape shape;
  if (dims.size() == 1) shape = {dims[0], 1, 1};
  else if (dims.size() == 2) shape = {1, dims[0], dims[1]};
  else shape = {dims[0], dims[1], dims[2]};
  InitKind init = InitKind::kTorchDefault;
  if (model["init"]) {
    try {
      init = parse_init(model["init"].as<std::string>());
    } catch (const ConfigError& e) {
      throw ConfigError(where(file, model["init"]) + ": key 'init': " + e.what());
    }
  }
  Graph g(shape, init);
  const YAML::Node nodes = model["nodes"] ? model["nodes"] : model["layers"];
  if (!nodes || !nodes.IsSequence() || nodes.size() == 0)
    throw ConfigError(where(file, model) + ": key 'nodes': expected a non-empty list of nodes");
  static const std::set<std::string> node_keys = {"op", "name", "inputs", "input", "out", "kernel",
                                                  "stride", "padding", "groups", "bias", "slope",
                                                  "p", "eps", "momentum", "init", "affine"};
  int prev = 0;
  for (const auto& nd : nodes) {
    if (!nd.IsMap() || !nd["op"]) throw ConfigError(where(file, nd) + ": each node needs an 'op'");
    for (const auto& kv : nd) {
      const std::string k = kv.first.as<std::string>();
      if (!node_keys.count(k)) throw ConfigError(where(file, kv.first) + ": unknown node key '" + k + "'");
    }
    Op op;
    op.kind = parse_kind(nd["op"], file);
    op.out = get<int>(nd, "out", 0, file);
    op.kernel = get<int>(nd, "kernel", op.kind == OpKind::kConv2d ? 0 : 2, file);
    if (op.kind == OpKind::kConv2d && op.kernel == 0)
      throw ConfigError(where(file, nd) + ": conv2d needs 'kernel'");
    op.stride = get<int>(nd, "stride", 0, file);
    op.padding = get<int>(nd, "padding", 0, file);
    op.groups = get<int>(nd, "groups", 1, file);
    op.bias = get<bool>(nd, op.kind == OpKind::kBatchNorm ? "affine" : "bias", true, file);
    op.alpha = get<float>(nd, "slope", 0.01f, file);
    op.p = get<float>(nd, "p", 0.5f, file);
    op.eps = get<float>(nd, "eps", 1e-5f, file);
    op.momentum = get<float>(nd, "momentum", 0.1f, file);
    if (nd["init"]) {
      try {
        op.init = parse_init(nd["init"].as<std::string>());
      } catch (const ConfigError& e) {
        throw ConfigError(where(file, nd["init"]) + ": key 'init': " + e.what());
      }
    }
    std::vector<int> inputs;
    const YAML::Node ins = nd["inputs"] ? nd["inputs"] : nd["input"];
    if (ins) {
      std::vector<std::string> names;
      if (ins.IsSequence())
        for (const auto& s : ins) names.push_back(s.as<std::string>());
      else
        names.push_back(ins.as<std::string>());
      for (const auto& s : names) {
        const int id = g.find(s);
        if (id < 0)
          throw ConfigError(where(file, ins) + ": key 'inputs': no earlier node is named '" + s + "'");
        inputs.push_back(id);
      }
    } else {
      inputs.push_back(prev);
    }
    try {
      prev = g.add_node(op, inputs, get<std::string>(nd, "name", "", file));
    } catch (const TrainError& e) {
      throw ConfigError(where(file, nd) + ": " + e.what());
    }
  }
  if (model["output"]) {
    const int id = g.find(model["output"].as<std::string>());
    if (id < 0) throw ConfigError(where(file, model["output"]) + ": key 'output': no node of that name");
    g.set_output(id);
  }
  return g;
}

Graph load_model_file(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    throw ConfigError(path + ": cannot open the model file");
  } catch (const YAML::ParserException& e) {
    throw ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return parse_model(root["model"] ? root["model"] : root, path);
}

}  // namespace kestrel::trainer
