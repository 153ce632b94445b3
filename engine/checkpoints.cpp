// Checkpoint lifecycle: folders, manifests (sizes + FNV-1a hashes, kept in the store so a deleted folder is noticed),
// restore resolution with clear failure reasons, pins and keep-best-k retention.
#include "engine/checkpoints.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "engine/study.hpp"
#include "tuners/multifidelity.hpp"

namespace kestrel::engine {

namespace fs = std::filesystem;

namespace {

// FNV-1a (64 bit): enough to catch truncation and bit rot, and it needs no extra library in the engine's link line
// (zlib's crc32 would); it is not meant to resist tampering.
std::string fnv1a_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw EvalError("cannot read " + p.string());
  uint64_t h = 0xcbf29ce484222325ULL;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h ^= static_cast<unsigned char>(buf[static_cast<size_t>(i)]);
      h *= 0x100000001b3ULL;
    }
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

std::optional<int64_t> parse_number(const std::string& s) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

const search::Trial* find_trial(const std::vector<search::Trial>& trials, int64_t number) {
  for (const auto& t : trials)
    if (t.number == number) return &t;
  return nullptr;
}

bool non_empty_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::directory_iterator(p, ec) != fs::directory_iterator();
}

}  // namespace

Checkpoints::Checkpoints(std::string root, CheckpointPolicy policy)
    : root_(fs::absolute(fs::path(root)).lexically_normal().string()), policy_(policy) {}

std::string Checkpoints::dir_of(int64_t number) const {
  return (fs::path(root_) / ("trial_" + std::to_string(number)) / "checkpoint").string();
}

CheckpointLaunch Checkpoints::prepare(const search::Trial& t, const std::vector<search::Trial>& trials) const {
  CheckpointLaunch out;
  out.checkpoint_dir = dir_of(t.number);
  std::error_code ec;
  fs::remove_all(out.checkpoint_dir, ec);  // a previous attempt's partial files must not pass for this one's
  fs::create_directories(out.checkpoint_dir, ec);
  if (ec) throw EvalError("cannot create checkpoint folder " + out.checkpoint_dir + ": " + ec.message());
  out.env[kCheckpointDirEnv] = out.checkpoint_dir;

  auto it = t.attrs.find(tuners::kAttrRestoreFrom);
  if (it == t.attrs.end()) return out;
  auto number = parse_number(it->second);
  if (!number) throw EvalError("restore_from '" + it->second + "' is not a trial number");
  const search::Trial* parent = find_trial(trials, *number);
  const std::string who = "cannot restore from trial " + std::to_string(*number) + ": ";
  if (!parent) throw EvalError(who + "no such trial in this study");
  if (auto d = parent->attrs.find(kAttrCheckpointDeleted); d != parent->attrs.end())
    throw EvalError(who + "its checkpoint was deleted (" + d->second + ")");
  auto m = parent->attrs.find(kAttrCheckpoint);
  const std::string pdir = dir_of(*number);
  if (m == parent->attrs.end()) {
    if (non_empty_dir(pdir))
      throw EvalError(who + "its checkpoint in " + pdir + " was never sealed (the trial ended " +
                      search::to_string(parent->state) + " before its files were recorded), so it cannot be trusted");
    return out;  // the evaluator writes no checkpoints: rerun from scratch with the larger budget
  }
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(m->second);
  } catch (const nlohmann::json::exception&) {
    throw EvalError(who + "its stored checkpoint manifest is not valid JSON");
  }
  if (!manifest.contains("files") || manifest["files"].empty()) return out;
  verify(*parent);
  out.restore_from = pdir;
  out.env[kRestoreFromEnv] = pdir;
  return out;
}

std::string Checkpoints::seal(int64_t number) const {
  const fs::path dir = dir_of(number);
  nlohmann::json files = nlohmann::json::array();
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    std::vector<fs::path> paths;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      if (it->is_regular_file()) paths.push_back(it->path());
    std::sort(paths.begin(), paths.end());
    for (const auto& p : paths)
      files.push_back({{"path", fs::relative(p, dir).generic_string()},
                       {"size", static_cast<int64_t>(fs::file_size(p))},
                       {"fnv1a", fnv1a_file(p)}});
  }
  return nlohmann::json{{"files", files}}.dump();
}

void Checkpoints::verify(const search::Trial& parent) const {
  const std::string who = "cannot restore from trial " + std::to_string(parent.number) + ": ";
  auto m = parent.attrs.find(kAttrCheckpoint);
  if (m == parent.attrs.end()) throw EvalError(who + "it has no sealed checkpoint");
  const fs::path dir = dir_of(parent.number);
  nlohmann::json manifest = nlohmann::json::parse(m->second, nullptr, false);
  if (manifest.is_discarded() || !manifest.contains("files")) throw EvalError(who + "its checkpoint manifest is corrupt");
  std::error_code ec;
  if (!manifest["files"].empty() && !fs::is_directory(dir, ec))
    throw EvalError(who + "its checkpoint is missing (" + dir.string() + " does not exist)");
  for (const auto& f : manifest["files"]) {
    const fs::path p = dir / f.at("path").get<std::string>();
    if (!fs::is_regular_file(p, ec))
      throw EvalError(who + "its checkpoint is missing file " + p.string());
    const auto size = static_cast<int64_t>(fs::file_size(p, ec));
    if (size != f.at("size").get<int64_t>())
      throw EvalError(who + "its checkpoint is corrupt: " + p.string() + " has " + std::to_string(size) +
                      " bytes, " + std::to_string(f.at("size").get<int64_t>()) + " were written");
    if (fnv1a_file(p) != f.at("fnv1a").get<std::string>())
      throw EvalError(who + "its checkpoint is corrupt: " + p.string() + " changed since the trial wrote it");
  }
}

std::set<int64_t> Checkpoints::pinned(const std::vector<search::Trial>& trials, const std::set<int64_t>& future) const {
  std::set<int64_t> out = future;
  for (const auto& t : trials) {
    if (auto p = t.attrs.find(kAttrCheckpointPinned); p != t.attrs.end() && p->second == "1") out.insert(t.number);
    if (search::is_finished(t.state)) continue;
    if (auto r = t.attrs.find(tuners::kAttrRestoreFrom); r != t.attrs.end())
      if (auto n = parse_number(r->second)) out.insert(*n);
  }
  return out;
}

std::vector<int64_t> Checkpoints::apply_retention(const std::vector<search::Trial>& trials,
                                                  const search::Objective& objective,
                                                  const std::set<int64_t>& future) const {
  std::vector<int64_t> deleted;
  if (policy_.keep_best <= 0) return deleted;
  const std::set<int64_t> pins = pinned(trials, future);
  std::vector<const search::Trial*> complete;
  for (const auto& t : trials)
    if (t.state == search::TrialState::Complete && !t.values.empty()) complete.push_back(&t);
  const double sign = search::minimize_sign(objective.direction);
  std::sort(complete.begin(), complete.end(), [&](const search::Trial* a, const search::Trial* b) {
    if (sign * a->values[0] != sign * b->values[0]) return sign * a->values[0] < sign * b->values[0];
    return a->number < b->number;
  });
  std::set<int64_t> best;
  for (size_t i = 0; i < complete.size() && static_cast<int64_t>(i) < policy_.keep_best; ++i)
    best.insert(complete[i]->number);
  for (const auto& t : trials) {
    if (!search::is_finished(t.state) || pins.count(t.number) || best.count(t.number)) continue;
    if (t.attrs.count(kAttrCheckpointDeleted)) continue;
    const fs::path dir = dir_of(t.number);
    std::error_code ec;
    if (!fs::exists(dir, ec)) continue;
    fs::remove_all(dir, ec);
    if (!ec) deleted.push_back(t.number);
  }
  return deleted;
}

std::vector<int64_t> Checkpoints::apply_retention(Study& study, const std::set<int64_t>& future) const {
  auto trials = study.trials();
  auto deleted = apply_retention(trials, study.options().objectives.at(0), future);
  const std::string reason = "retention: not among the best " + std::to_string(policy_.keep_best) + " and not pinned";
  for (int64_t n : deleted)
    if (const search::Trial* t = find_trial(trials, n)) study.store().set_trial_attr(t->id, kAttrCheckpointDeleted, reason);
  return deleted;
}

}  // namespace kestrel::engine
