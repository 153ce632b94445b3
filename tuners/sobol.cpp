// Sobol' sequence generation from Joe-Kuo direction numbers, and the SobolTuner on top of it.
// Points are computed directly from the Gray code of the index (no state), which is what makes resume exact.
#include "tuners/sobol.hpp"

#include <array>
#include <unordered_set>

#include "tuners/params.hpp"
#include "tuners/support.hpp"

namespace kestrel::tuners {
namespace {

// Direction numbers for dimensions 2..32 from S. Joe and F. Y. Kuo, "Constructing Sobol sequences with better
// two-dimensional projections", SIAM J. Sci. Comput. 30 (2008) 2635-2654; file new-joe-kuo-6.21201 published at
// https://web.maths.unsw.edu.au/~fkuo/sobol/ (columns: d, s = degree of the primitive polynomial, a = its
// coefficients, m_1..m_s = initial direction numbers). Dimension 1 uses m_k = 1 for all k.
struct JoeKuoRow {
  uint32_t s;
  uint32_t a;
  std::array<uint32_t, 7> m;
};
constexpr std::array<JoeKuoRow, kSobolMaxDims - 1> kJoeKuo = {{
    {1, 0, {1}},
    {2, 1, {1, 3}},
    {3, 1, {1, 3, 1}},
    {3, 2, {1, 1, 1}},
    {4, 1, {1, 1, 3, 3}},
    {4, 4, {1, 3, 5, 13}},
    {5, 2, {1, 1, 5, 5, 17}},
    {5, 4, {1, 1, 5, 5, 5}},
    {5, 7, {1, 1, 7, 11, 19}},
    {5, 11, {1, 1, 5, 1, 1}},
    {5, 13, {1, 1, 1, 3, 11}},
    {5, 14, {1, 3, 5, 5, 31}},
    {6, 1, {1, 3, 3, 9, 7, 49}},
    {6, 13, {1, 1, 1, 15, 21, 21}},
    {6, 16, {1, 3, 1, 13, 27, 49}},
    {6, 19, {1, 1, 1, 15, 7, 5}},
    {6, 22, {1, 3, 1, 15, 13, 25}},
    {6, 25, {1, 1, 5, 5, 19, 61}},
    {7, 1, {1, 3, 7, 11, 23, 15, 103}},
    {7, 4, {1, 3, 7, 13, 13, 15, 69}},
    {7, 7, {1, 1, 3, 13, 7, 35, 63}},
    {7, 8, {1, 3, 5, 9, 1, 25, 53}},
    {7, 14, {1, 3, 1, 13, 9, 35, 107}},
    {7, 19, {1, 3, 1, 5, 27, 61, 31}},
    {7, 21, {1, 1, 5, 11, 19, 41, 61}},
    {7, 28, {1, 3, 5, 3, 3, 13, 69}},
    {7, 31, {1, 1, 7, 13, 1, 19, 1}},
    {7, 32, {1, 3, 7, 5, 13, 19, 59}},
    {7, 37, {1, 1, 3, 9, 25, 29, 41}},
    {7, 41, {1, 3, 5, 13, 23, 1, 55}},
    {7, 42, {1, 3, 7, 3, 13, 59, 17}},
}};

constexpr int kBits = 32;

}  // namespace

SobolDirections sobol_directions(size_t d) {
  SobolDirections v(d);
  if (d == 0) return v;
  for (int k = 1; k <= kBits; ++k) v[0][k - 1] = 1u << (kBits - k);
  for (size_t j = 1; j < d; ++j) {
    const auto& row = kJoeKuo[j - 1];
    const int s = static_cast<int>(row.s);
    for (int k = 1; k <= kBits; ++k) {
      if (k <= s) {
        v[j][k - 1] = row.m[k - 1] << (kBits - k);
      } else {
        uint32_t x = v[j][k - s - 1] ^ (v[j][k - s - 1] >> s);
        for (int l = 1; l < s; ++l)
          if ((row.a >> (s - 1 - l)) & 1u) x ^= v[j][k - l - 1];
        v[j][k - 1] = x;
      }
    }
  }
  return v;
}

SobolDirections scramble_directions(const SobolDirections& base, uint64_t seed) {
  Rng rng(seed);
  SobolDirections out(base.size());
  for (size_t j = 0; j < base.size(); ++j) {
    // Row i of the matrix gives output digit i (bit 31 - i) as the parity of the masked input digits 0..i.
    std::array<uint32_t, kBits> rows;
    for (int i = 0; i < kBits; ++i) {
      uint32_t upper = i == 0 ? 0u : ~0u << (kBits - i);
      rows[i] = (static_cast<uint32_t>(rng.bits() >> 32) & upper) | (1u << (kBits - 1 - i));
    }
    for (int k = 0; k < kBits; ++k) {
      uint32_t v = base[j][k], x = 0;
      for (int i = 0; i < kBits; ++i) x |= static_cast<uint32_t>(__builtin_parity(rows[i] & v)) << (kBits - 1 - i);
      out[j][k] = x;
    }
  }
  return out;
}

std::vector<double> sobol_point(uint64_t index, const SobolDirections& dirs, const std::vector<uint32_t>* shift) {
  const size_t d = dirs.size();
  uint64_t gray = index ^ (index >> 1);
  std::vector<uint32_t> x(d, 0);
  for (int k = 0; k < kBits && gray; ++k, gray >>= 1)
    if (gray & 1u)
      for (size_t j = 0; j < d; ++j) x[j] ^= dirs[j][k];
  std::vector<double> u(d);
  for (size_t j = 0; j < d; ++j) {
    uint32_t b = x[j] ^ (shift ? (*shift)[j] : 0u);
    // Scrambled points take the midpoint of their 2^-32 cell so that no coordinate is exactly 0.
    u[j] = (static_cast<double>(b) + (shift ? 0.5 : 0.0)) * 0x1.0p-32;
  }
  return u;
}

std::vector<double> sobol_point(uint64_t index, size_t d) { return sobol_point(index, sobol_directions(d)); }

SobolParams SobolParams::from_json(const nlohmann::json& j) {
  SobolParams p;
  ParamReader r("tuner 'sobol'", j);
  r.get("scramble", p.scramble);
  r.get("skip", p.skip);
  r.finish();
  r.require(p.skip >= 0, "skip", "must be >= 0");
  return p;
}

SobolTuner::SobolTuner(SobolParams params, uint64_t seed) : params_(params), seed_(seed) {
  dirs_ = sobol_directions(kSobolMaxDims);
  if (params_.scramble) {
    dirs_ = scramble_directions(dirs_, derive_seed(seed_, -1, 0x736f626f6c));  // "sobol"
    Rng rng(derive_seed(seed_, -2, 0x736f626f6c));
    shift_.resize(kSobolMaxDims);
    for (auto& s : shift_) s = static_cast<uint32_t>(rng.bits() >> 32);
  }
}

Proposal SobolTuner::ask(const History& h, int64_t number) {
  const SearchSpace& space = *h.space;
  const size_t d = space.size();
  auto u = sobol_point(static_cast<uint64_t>(number + params_.skip), dirs_, params_.scramble ? &shift_ : nullptr);
  u.resize(d, 0.5);
  if (d > kSobolMaxDims) {
    Rng extra(derive_seed(seed_, number, 1));
    for (size_t j = kSobolMaxDims; j < d; ++j) u[j] = extra.uniform();
  }
  Config c = space.decode(u);
  if (space.is_finite()) {
    auto seen = seen_keys(h);
    if (seen.count(space.key(c))) {
      Rng rng(derive_seed(seed_, number, 2));
      auto alt = random_unseen(space, seen, rng);
      if (!alt) throw SpaceExhausted("sobol: every one of the space's configurations is already in the study");
      c = std::move(*alt);
    }
  }
  return Proposal{std::move(c), {}, std::nullopt};
}

std::unique_ptr<Tuner> make_sobol_tuner(const nlohmann::json& params, uint64_t seed) {
  return std::make_unique<SobolTuner>(SobolParams::from_json(params), seed);
}

}  // namespace kestrel::tuners
