// CellSpace: decisions, Boost.Graph validity (topological order, reachability both ways), canonical strings, the
// NAS-Bench-201 isomorphism rule, one-hot and path encodings, and compilation into a trainer graph.
#include "nas/cell.hpp"

#include <algorithm>
#include <functional>
#include <set>

#include <boost/graph/reverse_graph.hpp>
#include <boost/graph/topological_sort.hpp>

#include "common/error.hpp"

namespace kestrel::nas {
namespace {

// Kernel size of "nor_conv_KxK" / "avg_pool_KxK" / "max_pool_KxK"; 0 when `name` is not of that family.
int family_kernel(const std::string& name, const std::string& family) {
  if (name.rfind(family, 0) != 0) return 0;
  const std::string rest = name.substr(family.size());
  const auto x = rest.find('x');
  if (x == std::string::npos) return 0;
  try {
    const int k1 = std::stoi(rest.substr(0, x)), k2 = std::stoi(rest.substr(x + 1));
    if (k1 != k2 || k1 < 1 || k1 % 2 == 0 || std::to_string(k1) + "x" + std::to_string(k2) != rest) return 0;
    return k1;
  } catch (const std::exception&) {
    return 0;
  }
}

// Nodes reachable from `start` in `g` over edges whose op is not `none`.
template <class G>
std::vector<char> reachable(const G& g, int start, int none) {
  // A graph search over the cell's own Boost.Graph (forward or reversed view), skipping "none" edges; a BGL
  // filtered_graph + breadth_first_search would do the same with more machinery for a graph of a few nodes.
  std::vector<char> seen(boost::num_vertices(g), 0);
  std::vector<int> queue{start};
  seen[start] = 1;
  while (!queue.empty()) {
    const int v = queue.back();
    queue.pop_back();
    for (auto [e, end] = boost::out_edges(v, g); e != end; ++e) {
      if (g[*e].op == none) continue;
      const int w = static_cast<int>(boost::target(*e, g));
      if (!seen[w]) {
        seen[w] = 1;
        queue.push_back(w);
      }
    }
  }
  return seen;
}

}  // namespace

CellSpace::CellSpace(int nodes, std::vector<std::string> ops, std::string prefix) : nodes_(nodes), ops_(std::move(ops)) {
  prefix_ = std::move(prefix);
  if (nodes_ < 2 || nodes_ > 12) throw ConfigError("cell space: nodes must be in [2, 12] (got " + std::to_string(nodes_) + ")");
  if (ops_.empty()) throw ConfigError("cell space: the op list is empty");
  if (prefix_.empty()) throw ConfigError("cell space: the parameter prefix is empty");
  std::set<std::string> seen;
  for (size_t k = 0; k < ops_.size(); ++k) {
    const std::string& op = ops_[k];
    if (!seen.insert(op).second) throw ConfigError("cell space: op '" + op + "' is listed twice");
    if (op == "none") none_ = static_cast<int>(k);
    else if (op == "skip_connect") skip_ = static_cast<int>(k);
    else if (!family_kernel(op, "nor_conv_") && !family_kernel(op, "avg_pool_") && !family_kernel(op, "max_pool_"))
      throw ConfigError("cell space: unknown op '" + op +
                        "'; valid ops are none, skip_connect, nor_conv_KxK, avg_pool_KxK, max_pool_KxK (K odd)");
  }
  std::vector<search::Value> choices(ops_.begin(), ops_.end());
  for (int j = 1; j < nodes_; ++j)
    for (int i = 0; i < j; ++i) {
      edges_.emplace_back(j, i);
      add_decision(prefix_ + "_" + std::to_string(j) + "_" + std::to_string(i), choices);
    }
}

std::shared_ptr<const CellSpace> CellSpace::from_json(const nlohmann::json& j) {
  int nodes = 4;
  std::vector<std::string> ops = kNasBench201Ops;
  std::string prefix = "arch";
  if (!j.is_null() && !j.is_object()) throw ConfigError("cell space: expected an object");
  if (j.is_object())
    for (const auto& [key, v] : j.items()) {
      try {
        if (key == "type") continue;
        else if (key == "nodes") nodes = v.get<int>();
        else if (key == "ops") ops = v.get<std::vector<std::string>>();
        else if (key == "prefix") prefix = v.get<std::string>();
        else throw ConfigError("cell space: unknown key '" + key + "'; valid keys are type, nodes, ops, prefix");
      } catch (const nlohmann::json::exception&) {
        throw ConfigError("cell space: key '" + key + "' has the wrong type");
      }
    }
  return std::make_shared<CellSpace>(nodes, ops, prefix);
}

int CellSpace::op_index(const std::string& name) const {
  for (size_t k = 0; k < ops_.size(); ++k)
    if (ops_[k] == name) return static_cast<int>(k);
  return -1;
}

CellGraph CellSpace::graph(const Arch& a) const {
  CellGraph g(nodes_);
  for (size_t e = 0; e < edges_.size() && e < a.size(); ++e)
    boost::add_edge(edges_[e].second, edges_[e].first, EdgeOp{a[e]}, g);
  return g;
}

Validity CellSpace::check(const Arch& a) const {
  Validity v;
  if (a.size() != edges_.size()) {
    v.valid = false;
    v.reason = "a cell of " + std::to_string(nodes_) + " nodes has " + std::to_string(edges_.size()) +
               " edges, got " + std::to_string(a.size()) + " choices";
    return v;
  }
  for (size_t e = 0; e < a.size(); ++e)
    if (a[e] < 0 || a[e] >= static_cast<int>(ops_.size())) {
      v.valid = false;
      v.reason = "edge " + param_name(e) + " has op index " + std::to_string(a[e]) + ", outside [0, " +
                 std::to_string(ops_.size()) + ")";
      return v;
    }
  const CellGraph g = graph(a);
  try {
    std::vector<CellGraph::vertex_descriptor> order;
    boost::topological_sort(g, std::back_inserter(order));
  } catch (const boost::not_a_dag&) {
    v.valid = false;
    v.reason = "the cell has a cycle";
    return v;
  }
  const std::vector<char> from_in = reachable(g, 0, none_);
  const std::vector<char> to_out = reachable(boost::make_reverse_graph(g), nodes_ - 1, none_);
  for (size_t e = 0; e < edges_.size(); ++e) {
    const auto [j, i] = edges_[e];
    // An edge matters only when it lies on an input -> output path of real edges.
    if (a[e] == none_ || !from_in[i] || !to_out[j]) v.dead.push_back(e);
  }
  if (!from_in[nodes_ - 1]) {
    v.valid = false;
    v.degenerate = true;
    v.reason = "degenerate cell: the output node " + std::to_string(nodes_ - 1) +
               " is not reachable from the input through edges other than 'none' (it outputs zeros)";
  }
  return v;
}

std::string CellSpace::canonical(const Arch& a) const {
  std::string s;
  size_t e = 0;
  for (int j = 1; j < nodes_; ++j) {
    if (j > 1) s += "+";
    s += "|";
    for (int i = 0; i < j; ++i, ++e) {
      const int op = e < a.size() ? a[e] : 0;
      s += (op >= 0 && op < static_cast<int>(ops_.size()) ? ops_[op] : "?") + "~" + std::to_string(i) + "|";
    }
  }
  return s;
}

Arch CellSpace::parse(const std::string& s) const {
  auto bad = [&](const std::string& why) -> ConfigError {
    return ConfigError("cell '" + s + "': " + why + " (expected the form |op~0|+|op~0|op~1|+...)");
  };
  // Split into node groups at "+" between "|...|" groups.
  std::vector<std::string> groups;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t plus = s.find("|+|", pos);
    const size_t end = plus == std::string::npos ? s.size() : plus + 1;
    groups.push_back(s.substr(pos, end - pos));
    if (plus == std::string::npos) break;
    pos = plus + 2;
  }
  if (static_cast<int>(groups.size()) != nodes_ - 1)
    throw bad(std::to_string(groups.size()) + " node groups for a cell of " + std::to_string(nodes_) + " nodes");
  Arch a;
  for (int j = 1; j < nodes_; ++j) {
    const std::string& g = groups[j - 1];
    if (g.size() < 2 || g.front() != '|' || g.back() != '|') throw bad("node " + std::to_string(j) + " group is not |...|");
    std::vector<std::string> items;
    size_t p = 1;
    while (p < g.size()) {
      const size_t q = g.find('|', p);
      items.push_back(g.substr(p, q - p));
      p = q + 1;
    }
    if (static_cast<int>(items.size()) != j)
      throw bad("node " + std::to_string(j) + " has " + std::to_string(items.size()) + " inputs, expected " + std::to_string(j));
    for (int i = 0; i < j; ++i) {
      const std::string& it = items[i];
      const size_t t = it.rfind('~');
      if (t == std::string::npos || it.substr(t + 1) != std::to_string(i))
        throw bad("node " + std::to_string(j) + " input " + std::to_string(i) + " is '" + it + "', expected op~" + std::to_string(i));
      const int op = op_index(it.substr(0, t));
      if (op < 0) throw bad("unknown op '" + it.substr(0, t) + "'");
      a.push_back(op);
    }
  }
  return a;
}

std::string CellSpace::iso_key(const Arch& a) const {
  // Literal transcription of the NAS-Bench-201 rule (see the class comment); note that a node whose inputs are
  // all zero becomes "#+#...", not "#", exactly as in the reference implementation that gives the 6,466 count.
  std::vector<std::string> expr(nodes_);
  expr[0] = "0";
  size_t e = 0;
  for (int j = 1; j < nodes_; ++j) {
    std::vector<std::string> terms;
    for (int i = 0; i < j; ++i, ++e) {
      const int op = a.at(e);
      if (op == none_ || expr[i] == "#") terms.push_back("#");
      else if (op == skip_) terms.push_back(expr[i]);
      else terms.push_back("(" + expr[i] + ")@" + ops_[op]);
    }
    std::sort(terms.begin(), terms.end());
    std::string node;
    for (size_t k = 0; k < terms.size(); ++k) node += (k ? "+" : "") + terms[k];
    expr[j] = node;
  }
  return expr[nodes_ - 1];
}

std::string CellSpace::function_key(const Arch& a) const {
  std::vector<std::string> expr(nodes_);
  expr[0] = "0";
  size_t e = 0;
  for (int j = 1; j < nodes_; ++j) {
    std::vector<std::string> terms;
    for (int i = 0; i < j; ++i, ++e) {
      const int op = a.at(e);
      if (op == none_ || expr[i] == "#") continue;
      terms.push_back(op == skip_ ? expr[i] : "(" + expr[i] + ")@" + ops_[op]);
    }
    std::sort(terms.begin(), terms.end());
    std::string node;
    for (size_t k = 0; k < terms.size(); ++k) node += (k ? "+" : "") + terms[k];
    expr[j] = terms.empty() ? "#" : node;
  }
  return expr[nodes_ - 1];
}

std::vector<double> CellSpace::features(const Arch& a, const std::string& encoding) const {
  if (encoding != "path") return ArchSpace::features(a, encoding);
  // BANANAS path encoding (White et al. 2021): one count per op sequence of an input -> output path through
  // non-none edges, for every path length 1 .. N-1. Sequences of length L over K real ops index K^L slots.
  int k = 0;
  std::vector<int> pos(ops_.size(), -1);
  for (size_t o = 0; o < ops_.size(); ++o)
    if (static_cast<int>(o) != none_) pos[o] = k++;
  std::vector<size_t> offset(nodes_, 0);  // offset[L] = first slot of length-L paths
  size_t total = 0, width = 1;
  for (int L = 1; L < nodes_; ++L) {
    width *= static_cast<size_t>(k);
    offset[L] = total;
    total += width;
  }
  std::vector<double> f(total, 0.0);
  // edge_op[j][i]
  std::vector<std::vector<int>> eop(nodes_, std::vector<int>(nodes_, -1));
  for (size_t e = 0; e < edges_.size(); ++e) eop[edges_[e].first][edges_[e].second] = a.at(e);
  std::function<void(int, int, size_t)> walk = [&](int v, int len, size_t code) {
    if (v == nodes_ - 1) {
      f[offset[len] + code] += 1.0;
      return;
    }
    for (int w = v + 1; w < nodes_; ++w) {
      const int op = eop[w][v];
      if (op == none_) continue;
      walk(w, len + 1, code * static_cast<size_t>(k) + static_cast<size_t>(pos[op]));
    }
  };
  walk(0, 0, 0);
  return f;
}

trainer::Graph CellSpace::compile(const Arch& a, const CompileOptions& o) const {
  const Validity v = check(a);
  if (!v.valid) throw ConfigError("cannot compile " + canonical(a) + ": " + v.reason);
  if (o.channels < 1 || o.stages < 1 || o.cells_per_stage < 1 || o.num_classes < 2)
    throw ConfigError("compile options: channels, stages, cells_per_stage >= 1 and num_classes >= 2 required");
  std::vector<char> dead(edges_.size(), 0);
  for (size_t e : v.dead) dead[e] = 1;
  namespace op = trainer::ops;
  trainer::Graph g(o.input, trainer::InitKind::kKaimingNormal);
  int c = o.channels;
  int x = g.add(op::conv2d(c, 3, 1, 1, 1, false), g.input(), "stem_conv");
  x = g.add(op::batch_norm(), x, "stem_bn");
  for (int s = 0; s < o.stages; ++s) {
    const std::string sp = "s" + std::to_string(s);
    if (s > 0) {
      c *= 2;
      x = g.add(op::relu(), x, sp + "_red_relu");
      x = g.add(op::conv2d(c, 3, 2, 1, 1, false), x, sp + "_red_conv");
      x = g.add(op::batch_norm(), x, sp + "_red_bn");
    }
    for (int cell = 0; cell < o.cells_per_stage; ++cell) {
      const std::string cp = sp + "c" + std::to_string(cell);
      std::vector<int> node(nodes_, -1);
      node[0] = x;
      size_t e = 0;
      for (int j = 1; j < nodes_; ++j) {
        std::vector<int> terms;
        for (int i = 0; i < j; ++i, ++e) {
          // Dead edges cannot change the output: leaving them out gives the same function for less work.
          if (dead[e] || node[i] < 0) continue;
          const std::string& name = ops_[a[e]];
          const std::string ep = cp + "_e" + std::to_string(j) + std::to_string(i);
          int t = node[i];
          if (a[e] == skip_) {
          } else if (int kc = family_kernel(name, "nor_conv_")) {
            t = g.add(op::relu(), t, ep + "_relu");
            t = g.add(op::conv2d(c, kc, 1, kc / 2, 1, false), t, ep + "_conv");
            t = g.add(op::batch_norm(), t, ep + "_bn");
          } else if (int ka = family_kernel(name, "avg_pool_")) {
            t = g.add(op::avg_pool(ka, 1, ka / 2), t, ep + "_pool");
          } else if (int km = family_kernel(name, "max_pool_")) {
            t = g.add(op::max_pool(km, 1, km / 2), t, ep + "_pool");
          }
          terms.push_back(t);
        }
        if (terms.size() == 1) node[j] = terms[0];
        else if (terms.size() > 1) node[j] = g.add_node(op::add(), terms, cp + "_n" + std::to_string(j));
      }
      x = node[nodes_ - 1];  // valid cell: the output is reached
    }
  }
  x = g.add(op::batch_norm(), x, "head_bn");
  x = g.add(op::relu(), x, "head_relu");
  x = g.add(op::global_avg_pool(), x, "head_pool");
  g.add(op::linear(o.num_classes), x, "classifier");
  return g;
}

std::vector<Arch> CellSpace::enumerate() const {
  const double n = size();
  if (n > 5e6) throw ConfigError("cell space: " + std::to_string(n) + " cells are too many to enumerate");
  std::vector<Arch> out;
  out.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) out.push_back(from_index(i));
  return out;
}

int64_t CellSpace::index_of(const Arch& a) const {
  int64_t idx = 0;
  for (size_t e = a.size(); e-- > 0;) idx = idx * static_cast<int64_t>(ops_.size()) + a[e];
  return idx;
}

Arch CellSpace::from_index(int64_t idx) const {
  Arch a(edges_.size());
  for (size_t e = 0; e < a.size(); ++e) {
    a[e] = static_cast<int>(idx % static_cast<int64_t>(ops_.size()));
    idx /= static_cast<int64_t>(ops_.size());
  }
  return a;
}

}  // namespace kestrel::nas
