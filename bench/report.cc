// bench/report.cc: results.json, report.md, the terminal table, and writing them out.
#include "bench/report.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "runtime/json/json.h"

namespace ephemera::bench {
namespace {

// Milliseconds rounded to microseconds: enough for any timing here, and short in the file.
double Round3(double ms) {
  return std::round(ms * 1000.0) / 1000.0;
}

// printf into a string of whatever length the text needs.
std::string F(const char* fmt, double a, double b = 0, double c = 0) {
  int n = std::snprintf(nullptr, 0, fmt, a, b, c);
  if (n <= 0) return "";
  std::string out(static_cast<size_t>(n) + 1, '\0');
  std::snprintf(out.data(), out.size(), fmt, a, b, c);
  out.resize(static_cast<size_t>(n));
  return out;
}

cJSON* SummaryJson(const Summary& s) {
  cJSON* o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "n", static_cast<double>(s.n));
  cJSON_AddNumberToObject(o, "min", Round3(s.min));
  cJSON_AddNumberToObject(o, "p50", Round3(s.p50));
  cJSON_AddNumberToObject(o, "p90", Round3(s.p90));
  cJSON_AddNumberToObject(o, "p99", Round3(s.p99));
  cJSON_AddNumberToObject(o, "max", Round3(s.max));
  cJSON_AddNumberToObject(o, "mean", Round3(s.mean));
  cJSON_AddNumberToObject(o, "sd", Round3(s.sd));
  return o;
}

cJSON* IntervalJson(const Interval& i) {
  cJSON* o = cJSON_CreateObject();
  if (!i.valid) {
    cJSON_AddNullToObject(o, "estimate");
    return o;
  }
  cJSON_AddNumberToObject(o, "estimate", std::round(i.estimate * 1e4) / 1e4);
  cJSON_AddNumberToObject(o, "low", std::round(i.low * 1e4) / 1e4);
  cJSON_AddNumberToObject(o, "high", std::round(i.high * 1e4) / 1e4);
  cJSON_AddNumberToObject(o, "confidence", 0.95);
  return o;
}

cJSON* RejectsJson(const Rejects& r) {
  cJSON* o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "warmups_discarded", r.warmups_discarded);
  cJSON_AddNumberToObject(o, "wrong_class_dropped", r.wrong_class_dropped);
  cJSON_AddNumberToObject(o, "failed", r.failed);
  json::AddStringArray(o, "messages", r.messages);
  return o;
}

cJSON* SamplesJson(const std::vector<Sample>& samples) {
  cJSON* arr = cJSON_CreateArray();
  for (const Sample& s : samples) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", s.index);
    cJSON_AddNumberToObject(o, "concurrency", s.concurrency);
    if (s.position >= 0) cJSON_AddNumberToObject(o, "position", s.position);
    cJSON_AddNumberToObject(o, "start_ms", Round3(s.start_ms));
    cJSON_AddNumberToObject(o, "latency_ms", Round3(s.latency_ms));
    cJSON* ph = cJSON_AddObjectToObject(o, "phases");
    for (const auto& [name, ms] : s.phases) cJSON_AddNumberToObject(ph, name.c_str(), Round3(ms));
    if (!s.request_id.empty()) cJSON_AddStringToObject(o, "request_id", s.request_id.c_str());
    cJSON_AddItemToArray(arr, o);
  }
  return arr;
}

std::string Ms(double ms) {
  return F(ms >= 100 ? "%.0f" : "%.1f", ms);
}

std::string Verdict(const TargetVerdict& t) {
  if (!t.evaluated) return "not evaluated";
  return t.met ? "**met**" : "**missed**";
}

}  // namespace

std::string SeriesLabel(const RunResult& run, const std::string& key) {
  if (const Series* s = run.Find(key); s != nullptr && !s->label.empty()) return s->label;
  if (key == kEphemera) return "ephemera cold";
  if (key == kRawFloor) return "raw Docker floor";
  if (key == kDockerRun) return "docker run --rm";
  return key;
}

// ---- results.json ----

std::string JsonReport(const RunResult& run, const Analysis& a) {
  json::Json root = json::NewObject();
  cJSON* r = root.get();
  cJSON_AddStringToObject(r, "schema", kJsonSchema);

  const RunConfig& c = run.config;
  cJSON* cfg = cJSON_AddObjectToObject(r, "config");
  cJSON_AddStringToObject(cfg, "function", c.function.c_str());
  cJSON_AddStringToObject(cfg, "mode", c.mode.c_str());
  cJSON_AddStringToObject(cfg, "image", c.image.c_str());
  cJSON_AddStringToObject(cfg, "endpoint", c.endpoint.c_str());
  cJSON_AddBoolToObject(cfg, "own_daemon", c.own_daemon);
  cJSON_AddNumberToObject(cfg, "samples", c.samples);
  cJSON_AddNumberToObject(cfg, "warmups", c.warmups);
  cJSON_AddNumberToObject(cfg, "sweep_samples", c.sweep_samples);
  cJSON* levels = cJSON_AddArrayToObject(cfg, "sweep_levels");
  for (int l : c.sweep_levels) cJSON_AddItemToArray(levels, cJSON_CreateNumber(l));
  cJSON_AddBoolToObject(cfg, "quick", c.quick);
  cJSON_AddStringToObject(cfg, "payload", c.payload.c_str());
  cJSON_AddStringToObject(cfg, "started_at", c.started_at.c_str());
  cJSON_AddNumberToObject(cfg, "duration_s", std::round(c.duration_s * 10) / 10);
  cJSON_AddStringToObject(cfg, "command_line", c.command_line.c_str());

  cJSON* env = cJSON_AddObjectToObject(r, "environment");
  for (const auto& [k, v] : run.environment) cJSON_AddStringToObject(env, k.c_str(), v.c_str());

  cJSON* series = cJSON_AddArrayToObject(r, "series");
  for (const Series& s : run.series) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "key", s.key.c_str());
    cJSON_AddStringToObject(o, "label", s.label.c_str());
    cJSON_AddStringToObject(o, "what", s.what.c_str());
    cJSON_AddItemToObject(o, "rejects", RejectsJson(s.rejects));
    if (const SeriesStats* st = a.Find(s.key)) {
      cJSON_AddItemToObject(o, "summary", SummaryJson(st->summary));
      cJSON_AddItemToObject(o, "median_ci", IntervalJson(st->median_ci));
      cJSON* ph = cJSON_AddObjectToObject(o, "phases");
      for (const auto& [name, sum] : st->phases)
        cJSON_AddItemToObject(ph, name.c_str(), SummaryJson(sum));
    }
    cJSON_AddItemToObject(o, "samples", SamplesJson(s.samples));
    cJSON_AddItemToArray(series, o);
  }

  cJSON* ratios = cJSON_AddArrayToObject(r, "ratios");
  for (const RatioStats& x : a.ratios) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", x.name.c_str());
    cJSON_AddStringToObject(o, "numerator", x.numerator.c_str());
    cJSON_AddStringToObject(o, "denominator", x.denominator.c_str());
    cJSON_AddItemToObject(o, "median_ratio", IntervalJson(x.ci));
    cJSON_AddItemToArray(ratios, o);
  }

  cJSON* targets = cJSON_AddArrayToObject(r, "targets");
  for (const TargetVerdict& t : a.targets) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", t.name.c_str());
    cJSON_AddBoolToObject(o, "evaluated", t.evaluated);
    if (t.evaluated) {
      cJSON_AddBoolToObject(o, "met", t.met);
    } else {
      cJSON_AddNullToObject(o, "met");
    }
    cJSON_AddStringToObject(o, "measured", t.measured.c_str());
    cJSON_AddStringToObject(o, "margin", t.margin.c_str());
    cJSON_AddItemToArray(targets, o);
  }
  json::AddStringArray(r, "time_budget", a.time_budget);

  cJSON* sweep = cJSON_AddArrayToObject(r, "sweep");
  for (size_t i = 0; i < run.sweep.size(); ++i) {
    const SweepLevel& l = run.sweep[i];
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "series", l.series.c_str());
    cJSON_AddNumberToObject(o, "concurrency", l.concurrency);
    cJSON_AddNumberToObject(o, "wall_ms", Round3(l.wall_ms));
    cJSON_AddNumberToObject(o, "cold_starts_per_second", std::round(l.per_second() * 100) / 100);
    cJSON_AddItemToObject(o, "rejects", RejectsJson(l.rejects));
    cJSON_AddItemToObject(o, "summary", SummaryJson(a.sweep.at(i).summary));
    cJSON_AddItemToObject(o, "samples", SamplesJson(l.samples));
    cJSON_AddItemToArray(sweep, o);
  }

  cJSON* micro = cJSON_AddArrayToObject(r, "microbench");
  for (const MicrobenchResult& m : run.microbench) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", m.name.c_str());
    cJSON_AddNumberToObject(o, "items_per_second", std::round(m.items_per_second));
    cJSON_AddNumberToObject(o, "ns_per_item", std::round(m.ns_per_item * 10) / 10);
    cJSON_AddStringToObject(o, "label", m.label.c_str());
    cJSON_AddItemToArray(micro, o);
  }
  json::AddStringArray(r, "notes", run.notes);

  char* text = cJSON_Print(r);
  std::string out = text != nullptr ? text : "{}";
  cJSON_free(text);
  return out + "\n";
}

// ---- report.md ----

std::string MarkdownReport(const RunResult& run, const Analysis& a) {
  const RunConfig& c = run.config;
  std::string md;
  md += "# ephemera cold-start benchmark\n\n";
  md += "Function `" + c.function + "` (image `" + c.image + "`, mode " + c.mode + "), run " +
        c.started_at + F(", %.0f s. ", c.duration_s) +
        F("%.0f kept samples wanted per series (after %.0f discarded warm-up rounds), ", c.samples,
          c.warmups) +
        "interleaved round by round, the order rotating each round (A B C, B C A, C A B, ...), "
        "each sample starting once the previous sample's container is gone. " +
        (c.quick ? "**Quick run (`--quick`): too few samples for firm conclusions.** " : "") +
        "Command: `" + c.command_line + "`.\n\n";
  md +=
      "All times are milliseconds, measured on the machine described at the end, with other "
      "work possibly running; compare the series with each other (they ran interleaved in "
      "the same minutes), not with other machines.\n\n";

  md += "## Headline\n\n";
  md += "| series | n | p50 | p50 95% CI | p90 | p99 | max | mean ± sd |\n";
  md += "|---|---:|---:|---|---:|---:|---:|---|\n";
  for (const SeriesStats& s : a.series) {
    const Summary& m = s.summary;
    md += "| " + SeriesLabel(run, s.key) + " | " + std::to_string(m.n) + " | " + Ms(m.p50) + " | " +
          (s.median_ci.valid ? Ms(s.median_ci.low) + "–" + Ms(s.median_ci.high) : "–") + " | " +
          Ms(m.p90) + " | " + Ms(m.p99) + " | " + Ms(m.max) + " | " + Ms(m.mean) + " ± " +
          Ms(m.sd) + " |\n";
  }
  md += "\n";
  if (!a.ratios.empty()) {
    md += "| ratio of medians | estimate | 95% CI (bootstrap) |\n|---|---:|---|\n";
    for (const RatioStats& r : a.ratios) {
      md += "| " + r.name + " | " + F("%.3f", r.ci.estimate) + " | " +
            F("%.3f – %.3f", r.ci.low, r.ci.high) + " |\n";
    }
    md += "\n";
  }
  md += "![latency CDF per series](cdf.svg)\n\n";

  md += "## Targets\n\n| target | measured | verdict | margin |\n|---|---|---|---|\n";
  for (const TargetVerdict& t : a.targets) {
    md += "| " + t.name + " | " + t.measured + " | " + Verdict(t) + " | " + t.margin + " |\n";
  }
  md += "\n";

  md += "## Where the time goes\n\n";
  for (const std::string& line : a.time_budget) md += "- " + line + "\n";
  if (!a.time_budget.empty()) md += "\n";
  md +=
      "Median of each phase (phases are medians on their own, so they need not add up to the "
      "median total):\n\n| series | phase | p50 | p90 | max |\n|---|---|---:|---:|---:|\n";
  for (const SeriesStats& s : a.series) {
    for (const auto& [name, sum] : s.phases) {
      md += "| " + SeriesLabel(run, s.key) + " | " + name + " | " + F("%.2f", sum.p50) + " | " +
            F("%.2f", sum.p90) + " | " + F("%.2f", sum.max) + " |\n";
    }
  }
  md += "\n![median phases](phases.svg)\n\n";

  if (!a.sweep.empty()) {
    md += "## Concurrency sweep\n\n";
    md +=
        F("Each level runs %.0f cold starts per series with N workers issuing them back to "
          "back (closed loop), in blocks of at least 4 x N samples that alternate between "
          "the two series, so a burst of other work on the machine lands on both. Every "
          "block starts on a settled engine; within it containers are removed in the "
          "background, as the daemon does. Cold starts/s = successful samples / the "
          "level's wall time (summed over its blocks).\n\n",
          c.sweep_samples);
    md += "| series | concurrency | n | failed | p50 | p90 | p99 | max | cold starts/s |\n";
    md += "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const SweepStats& s : a.sweep) {
      md += "| " + SeriesLabel(run, s.series) + " | " + std::to_string(s.concurrency) + " | " +
            std::to_string(s.summary.n) + " | " + std::to_string(s.failed) + " | " +
            Ms(s.summary.p50) + " | " + Ms(s.summary.p90) + " | " + Ms(s.summary.p99) + " | " +
            Ms(s.summary.max) + " | " + F("%.2f", s.per_second) + " |\n";
    }
    md += "\n![concurrency sweep](sweep.svg)\n\n";
  }

  {
    bool any = false;
    for (const SeriesStats& s : a.series) any = any || s.by_position.size() > 1;
    if (any) {
      md +=
          "## Order effects\n\nMedian latency by the sample's place in its round (the order "
          "rotates every round, so each series ran in each place about equally often). A "
          "series that is much slower in one place points at work the engine was still doing "
          "for the previous sample.\n\n| series | place | n | p50 |\n|---|---:|---:|---:|\n";
      for (const SeriesStats& s : a.series) {
        for (const auto& [pos, sum] : s.by_position) {
          md += "| " + SeriesLabel(run, s.key) + " | " + std::to_string(pos + 1) + " | " +
                std::to_string(sum.n) + " | " + Ms(sum.p50) + " |\n";
        }
      }
      md += "\n";
    }
  }
  md +=
      "## Samples not kept\n\n| series | warm-ups discarded | wrong class dropped | failed | "
      "first reasons |\n|---|---:|---:|---:|---|\n";
  auto rejects_row = [&](const std::string& name, const Rejects& r) {
    std::string why;
    for (const std::string& m : r.messages) why += (why.empty() ? "" : "; ") + m;
    for (char& ch : why) {
      if (ch == '|' || ch == '\n') ch = ' ';
    }
    md += "| " + name + " | " + std::to_string(r.warmups_discarded) + " | " +
          std::to_string(r.wrong_class_dropped) + " | " + std::to_string(r.failed) + " | " + why +
          " |\n";
  };
  for (const Series& s : run.series) rejects_row(s.label, s.rejects);
  for (const SweepLevel& l : run.sweep) {
    rejects_row(SeriesLabel(run, l.series) + " @" + std::to_string(l.concurrency), l.rejects);
  }
  md += "\n";

  if (!run.microbench.empty()) {
    md +=
        "## Microbenchmarks (one core, no Docker)\n\n| benchmark | what one item is | items/s | "
        "time per item |\n|---|---|---:|---:|\n";
    for (const MicrobenchResult& m : run.microbench) {
      md += "| " + m.name + " | " + m.label + " | " + F("%.0f", m.items_per_second) + " | " +
            F(m.ns_per_item >= 10000 ? "%.1f µs" : "%.0f ns",
              m.ns_per_item >= 10000 ? m.ns_per_item / 1000 : m.ns_per_item) +
            " |\n";
    }
    md += "\n";
  }

  md += "## What each series runs\n\n";
  for (const Series& s : run.series) md += "- **" + s.label + "**: " + s.what + "\n";
  md += "\n";
  if (!run.notes.empty()) {
    md += "## Notes\n\n";
    for (const std::string& n : run.notes) md += "- " + n + "\n";
    md += "\n";
  }
  md += "## Environment\n\n| | |\n|---|---|\n";
  for (const auto& [k, v] : run.environment) md += "| " + k + " | " + v + " |\n";
  md += "\nEvery sample is in `results.json` (schema `" + std::string(kJsonSchema) +
        "`, see bench/README.md).\n";
  return md;
}

// ---- terminal ----

std::string TerminalTable(const RunResult& run, const Analysis& a) {
  std::string t;
  char line[256];
  std::snprintf(line, sizeof line, "%-20s %5s %9s %19s %9s %9s %9s\n", "series", "n", "p50 ms",
                "p50 95% CI", "p90", "p99", "max");
  t += line;
  for (const SeriesStats& s : a.series) {
    std::snprintf(line, sizeof line, "%-20s %5zu %9.1f %8.1f - %8.1f %9.1f %9.1f %9.1f\n",
                  SeriesLabel(run, s.key).c_str(), s.summary.n, s.summary.p50, s.median_ci.low,
                  s.median_ci.high, s.summary.p90, s.summary.p99, s.summary.max);
    t += line;
  }
  for (const RatioStats& r : a.ratios) {
    std::snprintf(line, sizeof line, "%-27s %.3f (95%% CI %.3f - %.3f)\n", r.name.c_str(),
                  r.ci.estimate, r.ci.low, r.ci.high);
    t += line;
  }
  for (const SweepStats& s : a.sweep) {
    std::snprintf(line, sizeof line,
                  "sweep %-14s c=%d  n=%zu  p50 %.1f  p99 %.1f  %.2f cold starts/s\n",
                  SeriesLabel(run, s.series).c_str(), s.concurrency, s.summary.n, s.summary.p50,
                  s.summary.p99, s.per_second);
    t += line;
  }
  for (const TargetVerdict& v : a.targets) {
    t += (v.evaluated ? (v.met ? "[met]    " : "[MISSED] ") : "[n/a]    ") + v.name + ": " +
         v.measured + (v.margin.empty() ? "" : "; " + v.margin) + "\n";
  }
  return t;
}

// ---- files ----

Status WriteReports(const RunResult& run, const Analysis& a, const std::string& dir) {
  // mkdir -p
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (::mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
      return Status(StatusCode::kInternal, "cannot create " + part + ": " + std::strerror(errno));
    }
  }
  const std::pair<const char*, std::string> files[] = {
      {"results.json", JsonReport(run, a)},
      {"report.md", MarkdownReport(run, a)},
      {"cdf.svg", CdfSvg(run)},
      {"phases.svg", PhasesSvg(run, a)},
      {"sweep.svg", SweepSvg(a)},
  };
  for (const auto& [name, text] : files) {
    std::string path = dir + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) return Status(StatusCode::kInternal, "cannot write " + path);
  }
  return Status::Ok();
}

}  // namespace ephemera::bench
