// Trial reports of the `kestrel` command: table, JSON, CSV and the inline forms used in log lines.
// Column widths are computed from the data so the table stays readable with long parameter names.
#include "cli/output.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iomanip>
#include <set>
#include <sstream>

#include "engine/constraints.hpp"

namespace kestrel::cli {

std::string short_number(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", x);
  return buf;
}

std::string short_duration(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "-";
  char buf[64];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.2f s", s);
    return buf;
  }
  auto total = static_cast<long long>(std::llround(s));
  long long h = total / 3600, m = (total / 60) % 60, sec = total % 60;
  if (h > 0) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", h, m, sec);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", m, sec);
  return buf;
}

namespace {

std::string value_text(const search::Value& v) {
  if (std::holds_alternative<double>(v)) return short_number(std::get<double>(v));
  return search::to_string(v);
}

std::string full_number(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

// "src#3": the study and trial a warm-start prior was copied from; "" for the study's own trials.
std::string prior_of(const Trial& t) {
  auto it = t.attrs.find(search::kAttrWarmStart);
  if (it == t.attrs.end()) return "";
  auto j = nlohmann::json::parse(it->second, nullptr, false);
  if (!j.is_object()) return "prior";
  return j.value("study", std::string("?")) + "#" + std::to_string(j.value("number", int64_t{-1}));
}

double duration_of(const Trial& t) {
  if (t.start_time <= 0 || t.end_time <= 0) return -1;
  return t.end_time - t.start_time;
}

std::string one_line(std::string s, size_t max) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

}  // namespace

std::string params_inline(const search::Config& c) {
  std::string out;
  for (const auto& [k, v] : c) out += (out.empty() ? "" : " ") + k + "=" + value_text(v);
  return out;
}

std::string values_inline(const Trial& t, const std::vector<Objective>& objectives) {
  std::string out;
  for (size_t i = 0; i < t.values.size(); ++i) {
    std::string name = i < objectives.size() ? objectives[i].name : "value" + std::to_string(i);
    out += (out.empty() ? "" : " ") + name + "=" + short_number(t.values[i]);
  }
  return out;
}

std::vector<std::string> param_names(const std::vector<Trial>& trials) {
  std::set<std::string> names;
  for (const auto& t : trials)
    for (const auto& [k, v] : t.config) names.insert(k);
  return {names.begin(), names.end()};
}

void print_table(std::ostream& os, const std::vector<Trial>& trials, const std::vector<Objective>& objectives) {
  auto params = param_names(trials);
  // Columns shown only when some trial needs them: feasibility under the sweep's constraints, and the origin of
  // warm-start priors (copied from another study, not run here).
  bool any_constraints = false, any_prior = false;
  for (const auto& t : trials) {
    any_constraints = any_constraints || t.attrs.count(search::kAttrConstraints);
    any_prior = any_prior || t.attrs.count(search::kAttrWarmStart);
  }
  std::vector<std::string> header = {"#", "state"};
  for (const auto& o : objectives) header.push_back(o.name);
  if (any_constraints) header.push_back("feasible");
  if (any_prior) header.push_back("prior");
  for (const auto& p : params) header.push_back(p);
  header.push_back("duration");
  header.push_back("reason");
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : trials) {
    std::vector<std::string> r = {std::to_string(t.number), search::to_string(t.state)};
    for (size_t i = 0; i < objectives.size(); ++i) r.push_back(i < t.values.size() ? short_number(t.values[i]) : "-");
    if (any_constraints)
      r.push_back(!t.attrs.count(search::kAttrConstraints) ? "-" : engine::is_feasible(t) ? "yes" : "no");
    if (any_prior) {
      const std::string from = prior_of(t);
      r.push_back(from.empty() ? "-" : from);
    }
    for (const auto& p : params) {
      auto it = t.config.find(p);
      r.push_back(it == t.config.end() ? "-" : value_text(it->second));
    }
    double d = duration_of(t);
    r.push_back(d < 0 ? "-" : short_duration(d));
    r.push_back(one_line(t.fail_reason, 60));
    rows.push_back(std::move(r));
  }
  std::vector<size_t> width(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    width[c] = header[c].size();
    for (const auto& r : rows) width[c] = std::max(width[c], r[c].size());
  }
  auto print_row = [&](const std::vector<std::string>& r) {
    std::string line;
    for (size_t c = 0; c < r.size(); ++c) {
      bool last = c + 1 == r.size();
      // Numbers read best right-aligned; text left-aligned.
      bool right = c == 0 || (c >= 2 && c < 2 + objectives.size());
      std::string cell = r[c];
      if (!last || right) {
        std::string pad(width[c] - cell.size(), ' ');
        cell = right ? pad + cell : cell + pad;
      }
      line += cell + (last ? "" : "  ");
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    os << line << "\n";
  };
  print_row(header);
  for (const auto& r : rows) print_row(r);
}

nlohmann::json trial_json(const Trial& t, const std::vector<Objective>& objectives, bool full) {
  nlohmann::json j;
  j["number"] = t.number;
  j["state"] = search::to_string(t.state);
  nlohmann::json values = nlohmann::json::object();
  for (size_t i = 0; i < t.values.size(); ++i) {
    std::string name = i < objectives.size() ? objectives[i].name : "value" + std::to_string(i);
    // JSON has no NaN; a finished COMPLETE trial never holds one, but be safe for odd stores.
    values[name] = std::isfinite(t.values[i]) ? nlohmann::json(t.values[i]) : nlohmann::json(nullptr);
  }
  j["values"] = values;
  j["params"] = search::config_to_json(t.config);
  if (t.attrs.count(search::kAttrConstraints)) {
    j["feasible"] = engine::is_feasible(t);
    auto v = engine::stored_violations(t);
    j["constraints"] = v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  }
  if (t.attrs.count(search::kAttrWarmStart)) {
    auto w = nlohmann::json::parse(t.attrs.at(search::kAttrWarmStart), nullptr, false);
    j["warm_start"] = w.is_discarded() ? nlohmann::json(nullptr) : w;
  }
  j["reason"] = t.fail_reason;
  j["worker"] = t.worker;
  j["start"] = t.start_time;
  j["end"] = t.end_time > 0 ? nlohmann::json(t.end_time) : nlohmann::json(nullptr);
  double d = duration_of(t);
  j["duration_s"] = d < 0 ? nlohmann::json(nullptr) : nlohmann::json(d);
  if (full) {
    auto reps = nlohmann::json::array();
    for (const auto& r : t.reports)
      reps.push_back({{"step", r.step},
                      {"metric", r.metric},
                      {"value", std::isfinite(r.value) ? nlohmann::json(r.value) : nlohmann::json(nullptr)}});
    j["reports"] = reps;
    j["attrs"] = t.attrs;
  }
  return j;
}

void write_csv(std::ostream& os, const std::vector<Trial>& trials, const std::vector<Objective>& objectives) {
  auto params = param_names(trials);
  std::vector<std::string> header = {"number", "state"};
  for (const auto& o : objectives) header.push_back(o.name);
  for (const auto& p : params) header.push_back("params." + p);
  for (const char* h : {"duration_s", "start", "end", "worker", "reason"}) header.push_back(h);
  for (size_t i = 0; i < header.size(); ++i) os << (i ? "," : "") << csv_field(header[i]);
  os << "\n";
  for (const auto& t : trials) {
    std::vector<std::string> r = {std::to_string(t.number), search::to_string(t.state)};
    for (size_t i = 0; i < objectives.size(); ++i) r.push_back(i < t.values.size() ? full_number(t.values[i]) : "");
    for (const auto& p : params) {
      auto it = t.config.find(p);
      if (it == t.config.end()) r.push_back("");
      else if (std::holds_alternative<double>(it->second)) r.push_back(full_number(std::get<double>(it->second)));
      else r.push_back(search::to_string(it->second));
    }
    double d = duration_of(t);
    r.push_back(d < 0 ? "" : full_number(d));
    r.push_back(t.start_time > 0 ? full_number(t.start_time) : "");
    r.push_back(t.end_time > 0 ? full_number(t.end_time) : "");
    r.push_back(t.worker);
    r.push_back(t.fail_reason);
    for (size_t i = 0; i < r.size(); ++i) os << (i ? "," : "") << csv_field(r[i]);
    os << "\n";
  }
}

}  // namespace kestrel::cli
