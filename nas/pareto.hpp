// Non-dominated sorting and crowding distance (Deb et al. 2002, NSGA-II) over minimized objective vectors,
// used by the evolution controller's multi-objective selection.
#pragma once

#include <vector>

namespace kestrel::nas {

// Front rank of every point (0 = non-dominated), all objectives minimized. O(m n^2).
// Requires: every point has the same number of objectives.
std::vector<int> nondominated_ranks(const std::vector<std::vector<double>>& points);

// Crowding distance of every point within its own front (boundary points: +infinity).
std::vector<double> crowding_distances(const std::vector<std::vector<double>>& points, const std::vector<int>& ranks);

// NSGA-II's crowded comparison: lower rank first, then larger crowding distance.
inline bool crowded_less(int rank_a, double crowd_a, int rank_b, double crowd_b) {
  return rank_a != rank_b ? rank_a < rank_b : crowd_a > crowd_b;
}

}  // namespace kestrel::nas
