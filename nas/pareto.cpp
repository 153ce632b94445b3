// Fast non-dominated sort and crowding distance (Deb et al. 2002).
#include "nas/pareto.hpp"

#include <algorithm>
#include <limits>
#include <numeric>

namespace kestrel::nas {
namespace {

bool dominates(const std::vector<double>& a, const std::vector<double>& b) {
  bool strictly = false;
  for (size_t k = 0; k < a.size(); ++k) {
    if (a[k] > b[k]) return false;
    if (a[k] < b[k]) strictly = true;
  }
  return strictly;
}

}  // namespace

std::vector<int> nondominated_ranks(const std::vector<std::vector<double>>& p) {
  const size_t n = p.size();
  std::vector<int> rank(n, -1), count(n, 0);
  std::vector<std::vector<size_t>> dominated(n);
  std::vector<size_t> front;
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < n; ++j) {
      if (i == j) continue;
      if (dominates(p[i], p[j])) dominated[i].push_back(j);
      else if (dominates(p[j], p[i])) ++count[i];
    }
    if (count[i] == 0) {
      rank[i] = 0;
      front.push_back(i);
    }
  }
  for (int r = 0; !front.empty(); ++r) {
    std::vector<size_t> next;
    for (size_t i : front)
      for (size_t j : dominated[i])
        if (--count[j] == 0) {
          rank[j] = r + 1;
          next.push_back(j);
        }
    front = std::move(next);
  }
  return rank;
}

std::vector<double> crowding_distances(const std::vector<std::vector<double>>& p, const std::vector<int>& rank) {
  const size_t n = p.size();
  std::vector<double> d(n, 0.0);
  if (n == 0) return d;
  const size_t m = p[0].size();
  const int max_rank = *std::max_element(rank.begin(), rank.end());
  for (int r = 0; r <= max_rank; ++r) {
    std::vector<size_t> f;
    for (size_t i = 0; i < n; ++i)
      if (rank[i] == r) f.push_back(i);
    if (f.size() <= 2) {
      for (size_t i : f) d[i] = std::numeric_limits<double>::infinity();
      continue;
    }
    for (size_t k = 0; k < m; ++k) {
      std::sort(f.begin(), f.end(), [&](size_t a, size_t b) { return p[a][k] != p[b][k] ? p[a][k] < p[b][k] : a < b; });
      const double span = p[f.back()][k] - p[f.front()][k];
      d[f.front()] = d[f.back()] = std::numeric_limits<double>::infinity();
      if (span <= 0) continue;
      for (size_t t = 1; t + 1 < f.size(); ++t) d[f[t]] += (p[f[t + 1]][k] - p[f[t - 1]][k]) / span;
    }
  }
  return d;
}

}  // namespace kestrel::nas
