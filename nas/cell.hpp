// CellSpace: DAG cells of N nodes whose every edge (i -> j, i < j) takes one operation (NAS-Bench-201 when N = 4
// with none / skip_connect / nor_conv_1x1 / nor_conv_3x3 / avg_pool_3x3), held as a Boost.Graph adjacency list.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <boost/graph/adjacency_list.hpp>

#include "nas/arch_space.hpp"

namespace kestrel::nas {

// Operations a cell edge may take. "none" (no edge) and "skip_connect" (identity) are special for validity and
// isomorphism; the others are ReLU-Conv-BN blocks (nor_conv_KxK, K odd) or pools (avg_pool_KxK, max_pool_KxK).
inline const std::vector<std::string> kNasBench201Ops = {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                                         "avg_pool_3x3"};

// Edge property of the cell graph: the index of the operation in the space's op list.
struct EdgeOp {
  int op = 0;
};
using CellGraph = boost::adjacency_list<boost::vecS, boost::vecS, boost::bidirectionalS, boost::no_property, EdgeOp>;

// What this represents: the cell space. Node 0 is the cell input, node N-1 its output; node j sums its incoming
// edges. Decision order is NAS-Bench-201's: node 1's edge from 0, node 2's edges from 0 and 1, node 3's from 0,
// 1, 2, ...; decision (j, i) is the parameter "<prefix>_<j>_<i>" with the op names as choices.
// Canonical string: "|op~0|+|op~0|op~1|+|op~0|op~1|op~2|" (one |...| group per node j >= 1, "op~i" per input i).
// Validity: acyclic (always, by construction; still checked on the graph), and the output reachable from the input
// through edges that are not "none"; a cell whose output is unreachable is degenerate (it outputs zeros).
// Isomorphism: the NAS-Bench-201 rule (Dong and Yang 2020, Structure.to_unique_str(consider_zero=True)): each node
// gets an expression bottom-up, where an edge with "none" or from a node whose expression is "#" gives "#",
// skip_connect passes its input's expression and any other op gives "(expr)@op"; a node is the sorted "+"-join of
// its incoming terms; the output node's expression is the key. This rule assumes every non-skip op is not
// the identity and that summation is commutative, which is what makes it sound.
// Thread safety: immutable; const methods may be called concurrently.
class CellSpace : public ArchSpace {
 public:
  // Throws ConfigError: nodes < 2, ops empty or duplicated, "none" missing is allowed, unknown op families.
  CellSpace(int nodes = 4, std::vector<std::string> ops = kNasBench201Ops, std::string prefix = "arch");
  // {"type": "cell", "nodes": 4, "ops": [...], "prefix": "arch"}; unknown keys throw ConfigError.
  static std::shared_ptr<const CellSpace> from_json(const nlohmann::json& j);

  std::string kind() const override { return "cell"; }
  int nodes() const { return nodes_; }
  const std::vector<std::string>& ops() const { return ops_; }
  size_t num_edges() const { return edges_.size(); }
  // Decision index -> (to, from).
  const std::pair<int, int>& edge(size_t i) const { return edges_.at(i); }
  int op_index(const std::string& name) const;  // -1 when absent

  CellGraph graph(const Arch& a) const;  // every edge, "none" included (its op index says so)
  Validity check(const Arch& a) const override;
  std::string canonical(const Arch& a) const override;
  Arch parse(const std::string& s) const override;
  std::string iso_key(const Arch& a) const override;
  // iso_key with zeros simplified: a node whose terms are all zero is "#" itself, and zero terms are dropped from
  // sums with a non-zero term. The NAS-Bench-201 rule keeps "#+#" apart from "#", so a skip_connect from an all-zero
  // node and a "none" edge get different iso_keys although both add nothing; this key merges them.
  std::string function_key(const Arch& a) const override;
  std::vector<double> features(const Arch& a, const std::string& encoding) const override;
  std::vector<std::string> encodings() const override { return {"onehot", "path"}; }
  trainer::Graph compile(const Arch& a, const CompileOptions& o) const override;

  // Every cell of the space, in mixed-radix order (decision 0 least significant). Throws ConfigError above
  // 5,000,000 cells.
  std::vector<Arch> enumerate() const;
  // Mixed-radix index of a cell and its inverse.
  int64_t index_of(const Arch& a) const;
  Arch from_index(int64_t idx) const;

 private:
  int nodes_;
  std::vector<std::string> ops_;
  std::vector<std::pair<int, int>> edges_;
  int none_ = -1, skip_ = -1;
};

}  // namespace kestrel::nas
