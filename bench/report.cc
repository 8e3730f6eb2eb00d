// bench/report.cc: results.json, report.md, the terminal table, and writing them out.
#include "bench/report.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "bench/runner.h"
#include "bench/stats.h"
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
    if (!s.start_kind.empty()) cJSON_AddStringToObject(o, "start", s.start_kind.c_str());
    if (!s.environment_id.empty())
      cJSON_AddStringToObject(o, "environment_id", s.environment_id.c_str());
    if (s.block >= 0) cJSON_AddNumberToObject(o, "block", s.block);
    cJSON_AddItemToArray(arr, o);
  }
  return arr;
}

std::string Ms(double ms) {
  return F(ms >= 100 ? "%.0f" : ms >= 10 ? "%.1f" : "%.2f", ms);
}

cJSON* IntArray(const std::vector<int>& v) {
  cJSON* a = cJSON_CreateArray();
  for (int x : v) cJSON_AddItemToArray(a, cJSON_CreateNumber(x));
  return a;
}

std::string Us(double us) {
  return us < 0 ? "–" : F("%.0f", us);
}

std::string CiText(const Interval& i, const char* fmt = "%.2f") {
  if (!i.valid) return "–";
  return F(fmt, i.low) + "–" + F(fmt, i.high);
}

std::string Verdict(const TargetVerdict& t) {
  if (!t.evaluated) return "not evaluated";
  return t.met ? "**met**" : "**missed**";
}

// The raw floor's network arrangement and, for an isolated function, its holders: how
// many, what one cost, how often they were reused.
std::string FloorArrangementText(const RunResult& run) {
  const FloorArrangement& f = run.floor;
  std::string t = "**The raw floor's network arrangement**: ";
  if (!f.isolated) {
    t += "network " + (f.network.empty() ? std::string("?") : f.network) +
         ", as the function's; each sample's first /next reached the benchmark on " + f.listener +
         ".";
  } else {
    Summary h = Summarize(f.holder_start_ms);
    t += "isolated, as the function: each sample's container joined the network namespace of "
         "a holder (NetworkMode container:<holder>) and its first /next arrived on " +
         f.listener +
         ". Holders are prepared ahead and reused: " + std::to_string(f.holders_prepared) +
         " made before the first sample, " + std::to_string(f.holders_made) + " in all (" +
         std::to_string(f.holders_on_demand) +
         " made when a sample found none ready, before its clock started; " +
         std::to_string(f.holders_failed) + " failed), serving " + std::to_string(f.holder_uses) +
         " floor samples (warm-ups and sweep included).";
    if (h.n > 0) {
      t += " One holder's create + start: " + Ms(h.p50) + " ms median (" + Ms(h.min) + "–" +
           Ms(h.max) + ", n " + std::to_string(h.n) +
           "), not part of any floor sample; ephemera's cold starts take theirs from the "
           "daemon's own pool, made ahead too.";
    }
    if (!f.holder_error.empty()) t += " Last holder error: " + f.holder_error + ".";
  }
  if (!f.docker_run_network.empty()) t += " docker run: network " + f.docker_run_network + ".";
  return t;
}

// A series' CPU over its blocks (results.h BlockCpu), null when no block was measured.
cJSON* BlockCpuJson(const BlockCpu& c) {
  if (c.blocks == 0) return cJSON_CreateNull();
  cJSON* b = cJSON_CreateObject();
  cJSON_AddNumberToObject(b, "blocks", c.blocks);
  cJSON_AddNumberToObject(b, "containers", c.containers);
  for (const auto& [name, v] : {std::pair{"wall_ms", c.wall_ms},
                                {"machine_ms", c.machine_ms},
                                {"daemon_ms", c.daemon_ms},
                                {"benchmark_ms", c.bench_ms},
                                {"containers_ms", c.containers_ms},
                                {"redis_ms", c.redis_ms},
                                {"steal_ms", c.steal_ms},
                                {"rest_ms", c.rest_ms()}}) {
    cJSON_AddNumberToObject(b, name, Round3(v));
  }
  return b;
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
  cJSON_AddItemToObject(cfg, "knee_levels", IntArray(c.knee_levels));
  cJSON_AddItemToObject(cfg, "throughput_levels", IntArray(c.throughput_levels));
  cJSON_AddNumberToObject(cfg, "throughput_seconds", c.throughput_seconds);
  cJSON_AddNumberToObject(cfg, "max_starts", c.max_starts);
  cJSON_AddBoolToObject(cfg, "precreate", c.precreate);
  cJSON_AddNumberToObject(cfg, "pool_size", c.pool_size);
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
  if (c.precreate) {
    // Did the cold samples skip the create? (kept samples of the ephemera series)
    cJSON* pc = cJSON_AddObjectToObject(r, "precreate");
    cJSON_AddNumberToObject(pc, "cold_samples", a.cold_samples);
    cJSON_AddNumberToObject(pc, "cold_with_create", a.cold_with_create);
  }

  cJSON* sweep = cJSON_AddArrayToObject(r, "sweep");
  for (size_t i = 0; i < run.sweep.size(); ++i) {
    const SweepLevel& l = run.sweep[i];
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "series", l.series.c_str());
    cJSON_AddNumberToObject(o, "concurrency", l.concurrency);
    cJSON_AddNumberToObject(o, "wall_ms", Round3(l.wall_ms));
    cJSON_AddNumberToObject(o, "cold_starts_per_second", std::round(l.per_second() * 100) / 100);
    cJSON_AddItemToObject(o, "cold_starts_per_second_ci", IntervalJson(a.sweep.at(i).rate_ci));
    cJSON* bs = cJSON_AddArrayToObject(o, "block_starts_ms");
    for (double t : l.block_starts) cJSON_AddItemToArray(bs, cJSON_CreateNumber(Round3(t)));
    cJSON_AddItemToObject(o, "rejects", RejectsJson(l.rejects));
    cJSON_AddItemToObject(o, "cpu", BlockCpuJson(l.cpu));
    cJSON_AddItemToObject(o, "summary", SummaryJson(a.sweep.at(i).summary));
    cJSON_AddItemToObject(o, "samples", SamplesJson(l.samples));
    cJSON_AddItemToArray(sweep, o);
  }

  cJSON* rr = cJSON_AddArrayToObject(r, "cold_rate_ratios");
  for (const RateRatio& x : a.rate_ratios) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "concurrency", x.concurrency);
    cJSON_AddItemToObject(o, "ephemera_over_floor", IntervalJson(x.ci));
    cJSON_AddItemToArray(rr, o);
  }
  {
    cJSON* k = cJSON_AddObjectToObject(r, "knee");
    cJSON* lv = cJSON_AddArrayToObject(k, "floor_levels");
    for (const auto& [level, rate] : a.knee_rates) {
      cJSON* o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "starts_in_flight", level);
      cJSON_AddNumberToObject(o, "starts_per_second", std::round(rate * 100) / 100);
      cJSON_AddItemToArray(lv, o);
    }
    cJSON_AddNumberToObject(k, "knee", a.knee);
    cJSON_AddStringToObject(k, "rule",
                            "the fewest starts in flight whose rate is >= 0.95 x the best level's");
  }
  {
    const PoolRate& p = run.pool_rate;
    cJSON* o = cJSON_AddObjectToObject(r, "pool_rate");
    cJSON_AddNumberToObject(o, "pool_size", p.pool_size);
    cJSON_AddNumberToObject(o, "max_starts", p.max_starts);
    cJSON_AddNumberToObject(o, "fresh", p.fresh);
    cJSON_AddNumberToObject(o, "not_fresh", p.not_fresh);
    cJSON_AddNumberToObject(o, "failed", p.failed);
    cJSON_AddItemToObject(o, "fresh_per_second", IntervalJson(a.pool_rate));
    cJSON_AddNumberToObject(o, "floor_concurrency", a.pool_floor_concurrency);
    cJSON_AddNumberToObject(o, "floor_per_second", a.pool_floor_rate);
    cJSON_AddBoolToObject(o, "floor_interleaved", a.pool_floor_interleaved);
    cJSON_AddNumberToObject(o, "blocks", p.blocks);
    cJSON_AddItemToObject(o, "floor_samples", SamplesJson(p.floor.samples));
    cJSON_AddItemToObject(o, "over_floor", IntervalJson(a.pool_floor_ratio));
    cJSON_AddItemToObject(o, "rejects", RejectsJson(p.rejects));
    cJSON_AddItemToObject(o, "pool_cpu", BlockCpuJson(p.pool_cpu));
    cJSON_AddItemToObject(o, "floor_cpu", BlockCpuJson(p.floor.cpu));
    cJSON_AddNumberToObject(o, "polls", p.polls);
    cJSON_AddNumberToObject(o, "poll_basis_ms", p.poll_basis_ms);
    cJSON* refills = cJSON_AddArrayToObject(o, "refill_ms");
    for (double ms : p.refill_ms) cJSON_AddItemToArray(refills, cJSON_CreateNumber(ms));
    cJSON_AddItemToObject(o, "samples", SamplesJson(p.samples));
  }
  cJSON* tp = cJSON_AddArrayToObject(r, "throughput");
  for (size_t i = 0; i < run.throughput.size(); ++i) {
    const ThroughputLevel& l = run.throughput[i];
    const ThroughputStats& t = a.throughput.at(i);
    cJSON* o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "clients", l.concurrency);
    cJSON_AddNumberToObject(o, "window_ms", Round3(l.duration_ms));
    cJSON_AddNumberToObject(o, "completed", static_cast<double>(l.completed));
    cJSON_AddNumberToObject(o, "not_warm", static_cast<double>(l.not_warm));
    cJSON_AddNumberToObject(o, "errors", static_cast<double>(l.errors));
    cJSON_AddNumberToObject(o, "invokes_per_second", std::round(t.per_second));
    cJSON_AddItemToObject(o, "latency", SummaryJson(t.latency));
    cJSON_AddNumberToObject(o, "environments", l.environments);
    cJSON* cpu = cJSON_AddObjectToObject(o, "cpu_ms");
    cJSON_AddNumberToObject(cpu, "daemon", Round3(l.daemon_cpu_ms));
    cJSON_AddNumberToObject(cpu, "load_generator", Round3(l.loadgen_cpu_ms));
    cJSON_AddNumberToObject(cpu, "containers", Round3(l.containers_cpu_ms));
    cJSON_AddNumberToObject(cpu, "machine", Round3(l.machine_cpu_ms));
    cJSON_AddNumberToObject(cpu, "redis", Round3(l.redis_cpu_ms));
    cJSON_AddNumberToObject(cpu, "steal", Round3(l.steal_ms));
    cJSON* per = cJSON_AddObjectToObject(o, "cpu_us_per_invoke");
    cJSON_AddNumberToObject(per, "daemon", std::round(t.daemon_us * 10) / 10);
    cJSON_AddNumberToObject(per, "load_generator", std::round(t.loadgen_us * 10) / 10);
    cJSON_AddNumberToObject(per, "containers", std::round(t.containers_us * 10) / 10);
    cJSON_AddNumberToObject(per, "redis", std::round(t.redis_us * 10) / 10);
    cJSON_AddNumberToObject(per, "other", std::round(t.other_us * 10) / 10);
    cJSON_AddNumberToObject(per, "steal", std::round(t.steal_us * 10) / 10);
    cJSON_AddNumberToObject(o, "daemon_context_switches_per_invoke",
                            std::round(t.daemon_switches * 100) / 100);
    cJSON_AddItemToArray(tp, o);
  }
  json::AddStringArray(r, "throughput_profile", run.throughput_profile);
  {
    const FloorArrangement& f = run.floor;
    cJSON* o = cJSON_AddObjectToObject(r, "floor_arrangement");
    cJSON_AddStringToObject(o, "network", f.network.c_str());
    cJSON_AddStringToObject(o, "arrangement", f.isolated ? "isolated" : "own network");
    cJSON_AddStringToObject(o, "listener", f.listener.c_str());
    cJSON* h = cJSON_AddObjectToObject(o, "holders");
    cJSON_AddNumberToObject(h, "prepared", f.holders_prepared);
    cJSON_AddNumberToObject(h, "made", f.holders_made);
    cJSON_AddNumberToObject(h, "made_on_demand", f.holders_on_demand);
    cJSON_AddNumberToObject(h, "failed", f.holders_failed);
    cJSON_AddNumberToObject(h, "uses", static_cast<double>(f.holder_uses));
    cJSON_AddItemToObject(h, "create_start_ms", SummaryJson(Summarize(f.holder_start_ms)));
    cJSON* each = cJSON_AddArrayToObject(h, "each_create_start_ms");
    for (double ms : f.holder_start_ms) cJSON_AddItemToArray(each, cJSON_CreateNumber(Round3(ms)));
    if (!f.holder_error.empty()) cJSON_AddStringToObject(h, "last_error", f.holder_error.c_str());
    cJSON_AddStringToObject(o, "docker_run_network", f.docker_run_network.c_str());
  }
  cJSON* qm = cJSON_AddArrayToObject(r, "queue_memory");
  for (const QueueMemory& q : run.queue_memory) {
    cJSON* o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", q.kind.c_str());
    cJSON_AddNumberToObject(o, "wanted", q.wanted);
    cJSON_AddNumberToObject(o, "submitted", q.submitted);
    cJSON_AddNumberToObject(o, "queued", q.queued);
    cJSON_AddNumberToObject(o, "baseline_rss_kb", q.baseline_kb);
    cJSON_AddNumberToObject(o, "rss_kb", q.peak_kb);
    cJSON_AddNumberToObject(o, "hwm_kb", q.hwm_kb);
    cJSON_AddStringToObject(o, "note", q.note.c_str());
    cJSON_AddItemToArray(qm, o);
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

namespace {

// CPU per container started, one row per series (results.h BlockCpu); rows with no
// measured block are left out.
std::string CpuTable(const std::vector<std::pair<std::string, const BlockCpu*>>& rows) {
  std::string md =
      "| series | blocks | containers | wall ms | machine ms | cores busy | daemon | benchmark "
      "| inside containers | Redis | engine and the rest | steal |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  int n_rows = 0;
  for (const auto& [label, c] : rows) {
    if (c->blocks == 0 || c->containers == 0) continue;
    ++n_rows;
    double n = c->containers;
    auto per = [n](double ms) { return ms < 0 ? std::string("–") : F("%.1f", ms / n); };
    std::string busy =
        c->machine_ms >= 0 && c->wall_ms > 0 ? F("%.2f", c->machine_ms / c->wall_ms) : "–";
    md += "| " + label + " | " + std::to_string(c->blocks) + " | " + std::to_string(c->containers) +
          " | " + per(c->wall_ms) + " | " + per(c->machine_ms) + " | " + busy + " | " +
          per(c->daemon_ms) + " | " + per(c->bench_ms) + " | " + per(c->containers_ms) + " | " +
          per(c->redis_ms) + " | " + per(c->rest_ms()) + " | " + per(c->steal_ms) + " |\n";
  }
  return n_rows == 0 ? "" : md + "\n";
}

constexpr char kCpuTableIntro[] =
    "CPU per container started, from each block's start until the engine and daemon are quiet "
    "again (every container the block started is removed; the pool full again), in ms of CPU "
    "time per container; cores busy = the machine's busy time over the wall time (2 cores: "
    "below 2, cores sat idle between starts). \"Engine and the rest\" is the machine's busy "
    "time less the others and steal: dockerd, containerd, its shims and runc, and anything "
    "else running.\n\n";

}  // namespace

std::string MarkdownReport(const RunResult& run, const Analysis& a) {
  const RunConfig& c = run.config;
  std::string md;
  md += "# ephemera benchmark\n\n";
  md += "Function `" + c.function + "` (image `" + c.image + "`, mode " + c.mode + "), run " +
        c.started_at + F(", %.0f s. ", c.duration_s) +
        F("%.0f kept samples wanted per series (after %.0f discarded warm-up rounds), ", c.samples,
          c.warmups) +
        "interleaved round by round, the order rotating each round (A B C D E, B C D E A, ...), "
        "each sample starting once the engine and the daemon are quiet (the previous sample's "
        "container is gone, the pool is full). " +
        (c.quick ? "**Quick run (`--quick`): too few samples for firm conclusions.** " : "") +
        "Command: `" + c.command_line + "`.\n\n";
  if (c.precreate) {
    md +=
        "**The daemon ran with `--precreate`**: after each cold start it creates the "
        "function's next container ahead (created, never started), so a cold sample starts "
        "that container and skips the create; " +
        F("%.0f of %.0f kept cold samples had a create phase. ", a.cold_with_create,
          a.cold_samples) +
        "Settling between samples leaves that one created container in place.\n\n";
  }
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
  md += FloorArrangementText(run) + "\n\n";
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
    md +=
        "| series | concurrency | n | failed | p50 | p90 | p99 | max | cold starts/s | 95% CI |\n";
    md += "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n";
    for (const SweepStats& s : a.sweep) {
      md += "| " + SeriesLabel(run, s.series) + " | " + std::to_string(s.concurrency) + " | " +
            std::to_string(s.summary.n) + " | " + std::to_string(s.failed) + " | " +
            Ms(s.summary.p50) + " | " + Ms(s.summary.p90) + " | " + Ms(s.summary.p99) + " | " +
            Ms(s.summary.max) + " | " + F("%.2f", s.per_second) + " | " + CiText(s.rate_ci) +
            " |\n";
    }
    md +=
        "\nThe rate intervals resample the gaps between consecutive answers of a level (the "
        "first from its block's start), treating them as independent.\n\n";
    if (!a.rate_ratios.empty()) {
      md += "| concurrency | ephemera / floor cold starts/s | 95% CI |\n|---:|---:|---|\n";
      for (const RateRatio& x : a.rate_ratios) {
        md += "| " + std::to_string(x.concurrency) + " | " + F("%.3f", x.ci.estimate) + " | " +
              CiText(x.ci, "%.3f") + " |\n";
      }
      md += "\n";
    }
    std::vector<std::pair<std::string, const BlockCpu*>> rows;
    for (const SweepLevel& l : run.sweep) {
      rows.emplace_back(SeriesLabel(run, l.series) + " @" + std::to_string(l.concurrency), &l.cpu);
    }
    std::string cpu = CpuTable(rows);
    if (!cpu.empty()) md += kCpuTableIntro + cpu;
    md += "![concurrency sweep](sweep.svg)\n\n";
  }
  if (!a.knee_rates.empty()) {
    md += "## The engine's knee\n\n";
    md +=
        "Raw-floor starts per second with N starts in flight (N closed-loop workers, each "
        "create -> wait -> start -> first /next, containers removed in the background). The "
        "knee is the fewest starts in flight whose rate is at least 0.95 x the best level's: "
        "beyond it more parallelism only queues inside the engine. `ephemera serve "
        "--max-starts` should be set to it.\n\n| starts in flight | starts/s | 95% CI | p50 "
        "latency |\n|---:|---:|---|---:|\n";
    for (const SweepStats& s : a.sweep) {
      if (s.series != kRawFloor) continue;
      md += "| " + std::to_string(s.concurrency) + " | " + F("%.2f", s.per_second) + " | " +
            CiText(s.rate_ci) + " | " + Ms(s.summary.p50) + " |\n";
    }
    md += "\n**Knee: " + std::to_string(a.knee) + " starts in flight.**\n\n";
  }
  {
    const SeriesStats* w = a.Find(kWarm);
    const SeriesStats* p = a.Find(kPool);
    if (w != nullptr || p != nullptr) {
      md += "## Warm and pool invocations\n\n";
      md +=
          "Interleaved with the cold rounds above. `beyond handler` = client-observed latency - "
          "the Server-Timing `handler` phase: the client, the HTTP exchange with the daemon, "
          "the daemon and the hand-off to the runtime and back (Server-Timing has 0.1 ms "
          "resolution).\n\n| series | n | latency p50 | p99 | beyond handler p50 | p90 | p99 | "
          "max | handler p50 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
      for (const SeriesStats* s : {w, p}) {
        if (s == nullptr) continue;
        auto ph = [&](const char* name) {
          auto it = s->phases.find(name);
          return it == s->phases.end() ? Summary{} : it->second;
        };
        Summary b = ph("beyond_handler"), h = ph("handler");
        md += "| " + SeriesLabel(run, s->key) + " | " + std::to_string(s->summary.n) + " | " +
              Ms(s->summary.p50) + " | " + Ms(s->summary.p99) + " | " + F("%.2f", b.p50) + " | " +
              F("%.2f", b.p90) + " | " + F("%.2f", b.p99) + " | " + F("%.2f", b.max) + " | " +
              F("%.2f", h.p50) + " |\n";
      }
      md += "\n";
      if (const Series* ps = run.Find(kPool)) {
        md += "Pool samples not fresh (answered cold or by a used environment): " +
              std::to_string(ps->rejects.wrong_class_dropped) + " of " +
              std::to_string(ps->rejects.wrong_class_dropped + ps->samples.size()) +
              " kept rounds.\n\n";
      }
    }
  }
  if (run.pool_rate.fresh + run.pool_rate.not_fresh > 0) {
    const PoolRate& pr = run.pool_rate;
    md += "## Pool refill rate\n\n";
    md += "Pool invocations (pool of " + std::to_string(pr.pool_size) +
          "), each sent as soon as /healthz shows an idle pool environment, so the daemon "
          "refills as fast as it can (at most " +
          std::to_string(pr.in_flight()) +
          " container starts in flight: one per pool environment, under the daemon's cap of " +
          std::to_string(pr.max_starts) +
          "). Rate = fresh answers after the first pool-size ones of each block, "
          "over the time between them. " +
          (a.pool_floor_interleaved
               ? std::to_string(pr.blocks) +
                     " pool blocks alternate with blocks of the raw floor at as many starts in "
                     "flight (" +
                     std::to_string(pr.floor.samples.size()) +
                     " floor starts), each block on a settled engine and a full pool, so a "
                     "burst of other work lands on both; the floor's rate is that of its own "
                     "blocks.\n\n"
               : std::string("The floor's rate is its sweep level's.\n\n"));
    md += "| fresh | not fresh | failed | fresh containers/s | 95% CI | raw floor starts/s at " +
          std::to_string(a.pool_floor_concurrency) +
          " in flight | pool / floor | 95% CI |\n|---:|---:|---:|---:|---|---:|---:|---|\n";
    double floor_rate = a.pool_floor_rate;
    md += "| " + std::to_string(pr.fresh) + " | " + std::to_string(pr.not_fresh) + " | " +
          std::to_string(pr.failed) + " | " + F("%.2f", a.pool_rate.estimate) + " | " +
          CiText(a.pool_rate) + " | " + F("%.2f", floor_rate) + " | " +
          (a.pool_floor_ratio.valid ? F("%.3f", a.pool_floor_ratio.estimate) : "–") + " | " +
          CiText(a.pool_floor_ratio, "%.3f") + " |\n\n";
    if (pr.polls > 0) {
      const int answered = pr.fresh + pr.not_fresh + pr.failed;
      md +=
          F("Looking for an idle environment, the benchmark asked /healthz %.0f times "
            "(%.1f per invocation). ",
            pr.polls, answered > 0 ? double(pr.polls) / answered : 0.0);
      if (!pr.refill_ms.empty()) {
        md += F("Of the replacements it saw become idle right after a short poll, %.0f gave a "
                "time from their take: ",
                double(pr.refill_ms.size())) +
              F("p10 %.0f, p50 %.0f, p90 %.0f ms; ", Percentile(pr.refill_ms, 0.1),
                Percentile(pr.refill_ms, 0.5), Percentile(pr.refill_ms, 0.9)) +
              F("after a take it slept until %.2f x %.0f ms (their 20th percentile) had passed "
                "since the oldest take still waiting, then asked every 2 ms.",
                PoolPollPlan::kLead, pr.poll_basis_ms);
      }
      md += "\n\n";
    }
    std::string cpu = CpuTable({{"pool", &pr.pool_cpu}, {"raw floor", &pr.floor.cpu}});
    if (!cpu.empty()) md += kCpuTableIntro + cpu;
  }
  if (!a.throughput.empty()) {
    md += "## Warm throughput\n\n";
    md +=
        F("Closed loop: N keep-alive HTTP/1.1 connections from the benchmark's own load "
          "generator (bench/loadgen.h, one libuv thread), each sending the next warm invoke "
          "as soon as the previous reply is whole; %.0f s measured per level after a warm-up "
          "(first a batch of N simultaneous invokes until all are warm, so the level has N "
          "environments, then 2 s unmeasured). Each invoke is 3 HTTP exchanges: client -> "
          "daemon, the daemon's answer to the runtime's pending GET /next, the runtime's "
          "POST /response with the next GET /next in one write (the native runtime pipelines "
          "them; the daemon answers the 202 with the next event). CPU is per invoke, "
          "in µs of CPU time over the window: the daemon process, the load generator (this "
          "process), every container (the engine's cgroup, the echo runtimes), every "
          "redis-server (the daemon's invocation records: several writes per invoke), the "
          "rest of the machine (dockerd, kernel softirq, other users' work), and steal (time "
          "the hypervisor gave our vCPUs to other guests: counted busy by the kernel, not "
          "work done here, so not in other); daemon switches = its context switches "
          "(voluntary + involuntary) per invoke.\n\n",
          c.throughput_seconds);
    md +=
        "| clients | invokes/s | p50 ms | p90 | p99 | max | not warm | errors | daemon's "
        "environments | "
        "daemon µs | load gen µs | containers µs | Redis µs | other µs | steal µs | daemon "
        "switches |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (size_t i = 0; i < a.throughput.size(); ++i) {
      const ThroughputStats& t = a.throughput[i];
      const ThroughputLevel& l = run.throughput[i];
      md += "| " + std::to_string(t.concurrency) + " | " + F("%.0f", t.per_second) + " | " +
            F("%.3f", t.latency.p50) + " | " + F("%.3f", t.latency.p90) + " | " +
            F("%.3f", t.latency.p99) + " | " + F("%.2f", t.latency.max) + " | " +
            std::to_string(l.not_warm) + " | " + std::to_string(l.errors) + " | " +
            std::to_string(l.environments) + " | " + Us(t.daemon_us) + " | " + Us(t.loadgen_us) +
            " | " + Us(t.containers_us) + " | " + Us(t.redis_us) + " | " + Us(t.other_us) + " | " +
            Us(t.steal_us) + " | " + (t.daemon_switches < 0 ? "–" : F("%.2f", t.daemon_switches)) +
            " |\n";
    }
    md += "\n";
    if (!run.throughput_profile.empty()) {
      md +=
          "Profile of the daemon under the top level, not counted above: `perf stat` "
          "(system calls, context switches) and `perf record -g -F 999` over a 3 s window "
          "(self time by shared object and symbol, entries >= 1%); perf slows the daemon, so "
          "its rate here is lower than in the table:\n\n```\n";
      for (const std::string& line : run.throughput_profile) md += line + "\n";
      md += "```\n\n";
    }
  }
  if (!run.queue_memory.empty()) {
    md += "## Daemon memory with queued invocations\n\n";
    md +=
        "A function with concurrency 1 and a queue of N whose handler sleeps (ephemera/busybox "
        "`sleep 900`, exec mode): N + 1 invocations, one running, N waiting. First `event`: "
        "X-Amz-Invocation-Type: Event (202 once accepted, into Redis when the daemon has it, "
        "docs/decisions.md decision 9; they wait without a bound, and stay queued until the "
        "daemon stops; this row is what the daemon itself holds meanwhile); then `sync` on a "
        "second such function, each from its "
        "own client connection, held open, so the sync row's RSS holds both queues. VmRSS of "
        "the daemon from /proc.\n\n"
        "| kind | submitted | waiting (seen) | RSS before | RSS queued | peak RSS (VmHWM) | per "
        "queued invocation | note |\n|---|---:|---:|---:|---:|---:|---:|---|\n";
    for (const QueueMemory& q : run.queue_memory) {
      md += "| " + q.kind + " | " + std::to_string(q.submitted) + " | " + std::to_string(q.queued) +
            " | " + F("%.1f MB", q.baseline_kb / 1024) + " | " + F("%.1f MB", q.peak_kb / 1024) +
            " | " + F("%.1f MB", q.hwm_kb / 1024) + " | " +
            (q.queued > 0 ? F("%.1f KB", (q.peak_kb - q.baseline_kb) / q.queued) : "–") + " | " +
            q.note + " |\n";
    }
    md += "\n";
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
  if (run.pool_rate.fresh + run.pool_rate.not_fresh + run.pool_rate.failed > 0)
    rejects_row("pool refill rate", run.pool_rate.rejects);
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
  if (run.floor.isolated) {
    Summary h = Summarize(run.floor.holder_start_ms);
    std::snprintf(line, sizeof line,
                  "raw floor: isolated; %d holder(s) made ahead (%d in all), create + start "
                  "p50 %.1f ms, reused by %llu samples\n",
                  run.floor.holders_prepared, run.floor.holders_made, h.p50,
                  static_cast<unsigned long long>(run.floor.holder_uses));
    t += line;
  } else if (!run.floor.network.empty()) {
    t += "raw floor: network " + run.floor.network + "\n";
  }
  for (const SweepStats& s : a.sweep) {
    std::snprintf(line, sizeof line,
                  "sweep %-14s c=%d  n=%zu  p50 %.1f  p99 %.1f  %.2f cold starts/s\n",
                  SeriesLabel(run, s.series).c_str(), s.concurrency, s.summary.n, s.summary.p50,
                  s.summary.p99, s.per_second);
    t += line;
  }
  for (const auto& [level, rate] : a.knee_rates) {
    std::snprintf(line, sizeof line, "knee: raw floor %d in flight: %.2f starts/s\n", level, rate);
    t += line;
  }
  if (a.knee > 0) t += "knee: " + std::to_string(a.knee) + " starts in flight\n";
  for (const ThroughputStats& s : a.throughput) {
    std::snprintf(line, sizeof line,
                  "throughput c=%d: %.0f warm invokes/s, p50 %.3f ms, p99 %.3f ms, daemon %.0f "
                  "us/invoke\n",
                  s.concurrency, s.per_second, s.latency.p50, s.latency.p99, s.daemon_us);
    t += line;
  }
  if (run.config.precreate) {
    std::snprintf(line, sizeof line,
                  "precreate: %d of %d cold samples had a create phase (daemon ran with "
                  "--precreate)\n",
                  a.cold_with_create, a.cold_samples);
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
