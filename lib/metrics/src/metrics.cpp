// Registry: one mutex around a map of families; rendering copies nothing
// it does not print. Fast enough for per-request recording (a map lookup).
#include "mailgate/metrics/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <sstream>

namespace mailgate::metrics {

namespace {

std::string escape(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  std::ostringstream o;
  o.precision(17);
  o << v;
  return o.str();
}

std::string label_text(const Labels& labels, const std::string& extra_name = "", const std::string& extra = "") {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ",";
    first = false;
    out += k + "=\"" + escape(v) + "\"";
  }
  if (!extra_name.empty()) {
    if (!first) out += ",";
    out += extra_name + "=\"" + extra + "\"";
  }
  return out + "}";
}

}  // namespace

Registry& Registry::global() {
  static Registry r;
  return r;
}

Registry::Family* Registry::family(std::string_view name, std::string_view help, Type type,
                                   const std::vector<double>& buckets) {
  auto it = families_.find(name);
  if (it == families_.end()) {
    Family f{type, std::string(help), {}, {}};
    if (type == Type::Histogram) {
      f.buckets = buckets;
      std::sort(f.buckets.begin(), f.buckets.end());
    }
    it = families_.emplace(std::string(name), std::move(f)).first;
  }
  if (it->second.type != type) {
    std::cerr << "metrics: " << name << " used with two types; ignoring the second\n";
    return nullptr;
  }
  return &it->second;
}

void Registry::add(std::string_view name, std::string_view help, const Labels& labels, double by) {
  std::lock_guard lock(mu_);
  if (auto* f = family(name, help, Type::Counter, {}); f && by >= 0) f->series[labels].value += by;
}

void Registry::set(std::string_view name, std::string_view help, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  if (auto* f = family(name, help, Type::Gauge, {})) f->series[labels].value = value;
}

void Registry::observe(std::string_view name, std::string_view help, const Labels& labels, double value,
                       const std::vector<double>& buckets) {
  std::lock_guard lock(mu_);
  auto* f = family(name, help, Type::Histogram, buckets);
  if (!f) return;
  Series& s = f->series[labels];
  if (s.counts.empty()) s.counts.assign(f->buckets.size() + 1, 0);
  auto pos = std::lower_bound(f->buckets.begin(), f->buckets.end(), value) - f->buckets.begin();
  ++s.counts[static_cast<std::size_t>(pos)];
  ++s.count;
  s.value += value;
}

std::string Registry::render() const {
  std::lock_guard lock(mu_);
  std::ostringstream o;
  for (const auto& [name, f] : families_) {
    const char* type = f.type == Type::Counter ? "counter" : f.type == Type::Gauge ? "gauge" : "histogram";
    o << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << type << "\n";
    for (const auto& [labels, s] : f.series) {
      if (f.type != Type::Histogram) {
        o << name << label_text(labels) << " " << number(s.value) << "\n";
        continue;
      }
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i <= f.buckets.size(); ++i) {
        cumulative += s.counts[i];
        o << name << "_bucket" << label_text(labels, "le", i < f.buckets.size() ? number(f.buckets[i]) : "+Inf")
          << " " << cumulative << "\n";
      }
      o << name << "_sum" << label_text(labels) << " " << number(s.value) << "\n";
      o << name << "_count" << label_text(labels) << " " << s.count << "\n";
    }
  }
  return o.str();
}

std::optional<double> Registry::value(std::string_view name, const Labels& labels) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) return std::nullopt;
  auto s = it->second.series.find(labels);
  if (s == it->second.series.end()) return std::nullopt;
  if (it->second.type == Type::Histogram) return static_cast<double>(s->second.count);
  return s->second.value;
}

void Registry::clear() {
  std::lock_guard lock(mu_);
  families_.clear();
}

}  // namespace mailgate::metrics
