// bench/svg.cc: the three charts, drawn as plain SVG 1.1 text (no plotting dependency).
//
// Every chart is a fixed-size canvas with a title, axes with "nice" ticks (1, 2, 5 x 10^k),
// and a legend. Text is XML-escaped; numbers are printed with one decimal, so the files are
// small, well-formed and diff reasonably between runs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

#include "bench/report.h"

namespace ephemera::bench {
namespace {

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

// The charts draw the series that start a container per sample; warm and pool samples
// (under a millisecond) would sit on the y axis of a cold-start scale.
bool Charted(const std::string& key) {
  return key != kWarm && key != kPool;
}

const char* SeriesColor(const std::string& key) {
  if (key == kEphemera) return "#1f77b4";
  if (key == kRawFloor) return "#ff7f0e";
  if (key == kDockerRun) return "#2ca02c";
  return "#7f7f7f";
}

const char* PhaseColor(const std::string& phase) {
  static const std::map<std::string, const char*> colors = {
      {"image", "#c7c7c7"},  {"create", "#9467bd"},    {"start", "#d62728"},
      {"init", "#ff9896"},   {"handler", "#17becf"},   {"overhead", "#8c564b"},
      {"client", "#e377c2"}, {"whole run", "#2ca02c"},
  };
  auto it = colors.find(phase);
  return it == colors.end() ? "#7f7f7f" : it->second;
}

// Ticks at 1, 2 or 5 x 10^k covering [0, max]; the last tick is >= max.
std::vector<double> NiceTicks(double max, int target = 6) {
  if (!(max > 0)) max = 1;
  double raw = max / target;
  double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  }
  std::vector<double> ticks;
  for (double t = 0; t < max + step * 0.999; t += step) ticks.push_back(t);
  return ticks;
}

std::string TickLabel(double v) {
  char buf[32];
  if (v == std::floor(v)) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%g", v);
  }
  return buf;
}

class Canvas {
 public:
  Canvas(int w, int h, const std::string& title) : w_(w), h_(h) {
    out_ =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
        "width=\"" +
        std::to_string(w) + "\" height=\"" + std::to_string(h) + "\" viewBox=\"0 0 " +
        std::to_string(w) + " " + std::to_string(h) +
        "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    out_ += "<title>" + Escape(title) + "</title>\n";
    out_ += "<rect x=\"0\" y=\"0\" width=\"" + std::to_string(w) + "\" height=\"" +
            std::to_string(h) + "\" fill=\"white\"/>\n";
    Text(w / 2.0, 22, title, "middle", 15, "bold");
  }
  void Text(double x, double y, const std::string& s, const char* anchor = "start", int size = 12,
            const char* weight = "normal", const char* rotate = nullptr) {
    out_ += "<text x=\"" + Num(x) + "\" y=\"" + Num(y) + "\" text-anchor=\"" + anchor +
            "\" font-size=\"" + std::to_string(size) + "\" font-weight=\"" + weight + "\"";
    if (rotate != nullptr) {
      out_ += std::string(" transform=\"rotate(") + rotate + " " + Num(x) + " " + Num(y) + ")\"";
    }
    // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, a false positive) on
    // "literal" + std::string temporaries here, which -Werror turns into a build failure.
    out_ += '>';
    out_ += Escape(s);
    out_ += "</text>\n";
  }
  void Line(double x1, double y1, double x2, double y2, const char* color, double width = 1,
            const char* dash = nullptr) {
    out_ += "<line x1=\"" + Num(x1) + "\" y1=\"" + Num(y1) + "\" x2=\"" + Num(x2) + "\" y2=\"" +
            Num(y2) + "\" stroke=\"" + color + "\" stroke-width=\"" + Num(width) + "\"";
    if (dash != nullptr) out_ += std::string(" stroke-dasharray=\"") + dash + "\"";
    out_ += "/>\n";
  }
  void Rect(double x, double y, double w, double h, const char* fill, const std::string& tip = "") {
    out_ += "<rect x=\"" + Num(x) + "\" y=\"" + Num(y) + "\" width=\"" + Num(std::max(w, 0.0)) +
            "\" height=\"" + Num(h) + "\" fill=\"" + fill + "\"";
    if (tip.empty()) {
      out_ += "/>\n";
    } else {
      out_ += "><title>" + Escape(tip) + "</title></rect>\n";
    }
  }
  void Polyline(const std::vector<std::pair<double, double>>& pts, const char* color,
                double width = 2, const char* dash = nullptr) {
    if (pts.empty()) return;
    out_ += "<polyline fill=\"none\" stroke=\"" + std::string(color) + "\" stroke-width=\"" +
            Num(width) + "\"";
    if (dash != nullptr) out_ += std::string(" stroke-dasharray=\"") + dash + "\"";
    out_ += " points=\"";
    for (size_t i = 0; i < pts.size(); ++i) {
      if (i != 0) out_ += ' ';
      out_ += Num(pts[i].first);
      out_ += ',';
      out_ += Num(pts[i].second);
    }
    out_ += "\"/>\n";
  }
  void Circle(double x, double y, double r, const char* color) {
    out_ += "<circle cx=\"" + Num(x) + "\" cy=\"" + Num(y) + "\" r=\"" + Num(r) + "\" fill=\"" +
            color + "\"/>\n";
  }
  std::string Finish() { return out_ + "</svg>\n"; }

 private:
  int w_, h_;
  std::string out_;
};

// A plot area inside a canvas with linear axes.
struct Frame {
  double left, top, width, height;
  double x_max, y_max;
  double X(double v) const { return left + v / x_max * width; }
  double Y(double v) const { return top + height - v / y_max * height; }
};

void DrawAxes(Canvas& c, const Frame& f, const std::vector<double>& xt,
              const std::vector<double>& yt, const std::string& x_label, const std::string& y_label,
              std::string (*x_fmt)(double) = TickLabel) {
  for (double t : yt) {
    c.Line(f.left, f.Y(t), f.left + f.width, f.Y(t), "#e0e0e0");
    c.Text(f.left - 6, f.Y(t) + 4, TickLabel(t), "end", 11);
  }
  for (double t : xt) {
    c.Line(f.X(t), f.top, f.X(t), f.top + f.height, "#f0f0f0");
    c.Text(f.X(t), f.top + f.height + 16, x_fmt(t), "middle", 11);
  }
  c.Line(f.left, f.top + f.height, f.left + f.width, f.top + f.height, "#333333");
  c.Line(f.left, f.top, f.left, f.top + f.height, "#333333");
  c.Text(f.left + f.width / 2, f.top + f.height + 36, x_label, "middle");
  c.Text(f.left - 42, f.top + f.height / 2, y_label, "middle", 12, "normal", "-90");
}

}  // namespace

std::string CdfSvg(const RunResult& run) {
  Canvas c(760, 440, "Cold-start latency CDF, function " + run.config.function);
  double max = 0;
  size_t charted = 0;
  for (const Series& s : run.series) {
    if (!Charted(s.key)) continue;
    ++charted;
    for (const Sample& x : s.samples) max = std::max(max, x.latency_ms);
  }
  std::vector<double> xt = NiceTicks(max * 1.02, 8);
  Frame f{70, 45, 650, 330, xt.back(), 1.0};
  DrawAxes(c, f, xt, {0, 0.25, 0.5, 0.75, 1.0}, "latency (ms)", "fraction of samples <= x");
  double ly = f.top + f.height - 12 - 18.0 * static_cast<double>(charted);
  for (const Series& s : run.series) {
    if (!Charted(s.key)) continue;
    auto cdf = EmpiricalCdf(s.latencies());
    std::vector<std::pair<double, double>> pts;
    double prev = 0;
    for (const auto& [x, y] : cdf) {  // a step function: up at each sample
      pts.emplace_back(f.X(x), f.Y(prev));
      pts.emplace_back(f.X(x), f.Y(y));
      prev = y;
    }
    c.Polyline(pts, SeriesColor(s.key));
    double x0 = f.left + f.width - 250;
    c.Line(x0, ly - 4, x0 + 24, ly - 4, SeriesColor(s.key), 3);
    char label[160];
    std::snprintf(label, sizeof label, "%s (n=%zu, p50 %.1f ms)", s.label.c_str(), s.samples.size(),
                  Median(s.latencies()));
    c.Text(x0 + 30, ly, label);
    ly += 18;
  }
  c.Line(f.left, f.Y(0.5), f.left + f.width, f.Y(0.5), "#999999", 1, "4,3");
  return c.Finish();
}

std::string PhasesSvg(const RunResult& run, const Analysis& a) {
  // One bar per series: the medians of its phases, stacked, and a tick at its p50 latency.
  struct Bar {
    std::string key;
    std::vector<std::pair<std::string, double>> parts;
    double p50 = 0;
  };
  std::vector<Bar> bars;
  double max = 0;
  for (const SeriesStats& s : a.series) {
    if (!Charted(s.key)) continue;
    Bar b;
    b.key = s.key;
    b.p50 = s.summary.p50;
    static const char* kOrder[] = {"image",   "create",   "start", "init",
                                   "handler", "overhead", "client"};
    for (const char* name : kOrder) {
      auto it = s.phases.find(name);
      if (it != s.phases.end() && it->second.n > 0) b.parts.emplace_back(name, it->second.p50);
    }
    if (b.parts.empty()) b.parts.emplace_back("whole run", s.summary.p50);
    double sum = 0;
    for (const auto& p : b.parts) sum += p.second;
    max = std::max({max, sum, b.p50});
    bars.push_back(std::move(b));
  }
  int h = 150 + 60 * static_cast<int>(bars.size());
  Canvas c(760, h, "Where the time goes: median of each phase, function " + run.config.function);
  std::vector<double> xt = NiceTicks(max * 1.02, 8);
  double plot_h = 60.0 * static_cast<double>(bars.size());
  Frame f{150, 45, 580, plot_h, xt.back(), 1};
  for (double t : xt) {
    c.Line(f.X(t), f.top, f.X(t), f.top + f.height, "#e8e8e8");
    c.Text(f.X(t), f.top + f.height + 16, TickLabel(t), "middle", 11);
  }
  c.Line(f.left, f.top + f.height, f.left + f.width, f.top + f.height, "#333333");
  c.Text(f.left + f.width / 2, f.top + f.height + 36,
         "milliseconds (medians; black tick = p50 of the whole sample)", "middle");
  std::vector<std::string> legend;
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    double y = f.top + 12 + 60.0 * static_cast<double>(i);
    c.Text(f.left - 8, y + 22, SeriesLabel(run, b.key), "end");
    double x = 0;
    for (const auto& [name, ms] : b.parts) {
      char tip[96];
      std::snprintf(tip, sizeof tip, "%s: %.2f ms", name.c_str(), ms);
      c.Rect(f.X(x), y, f.X(x + ms) - f.X(x), 34, PhaseColor(name), tip);
      if (f.X(x + ms) - f.X(x) > 40) {
        c.Text((f.X(x) + f.X(x + ms)) / 2, y + 21, name, "middle", 10);
      }
      x += ms;
      if (std::find(legend.begin(), legend.end(), name) == legend.end()) legend.push_back(name);
    }
    c.Line(f.X(b.p50), y - 4, f.X(b.p50), y + 38, "#000000", 2);
  }
  double lx = 20, ly = h - 20;
  for (const std::string& name : legend) {
    c.Rect(lx, ly - 10, 12, 12, PhaseColor(name));
    c.Text(lx + 16, ly, name);
    lx += 24 + 7.0 * static_cast<double>(name.size()) + 12;
  }
  return c.Finish();
}

std::string SweepSvg(const Analysis& a) {
  Canvas c(760, 400, "Concurrency sweep: cold starts at parallelism N");
  std::map<std::string, std::vector<const SweepStats*>> by_series;
  double max_lat = 0, max_rate = 0;
  int max_c = 1;
  for (const SweepStats& s : a.sweep) {
    by_series[s.series].push_back(&s);
    max_lat = std::max(max_lat, s.summary.p90);
    max_rate = std::max(max_rate, s.per_second);
    max_c = std::max(max_c, s.concurrency);
  }
  if (a.sweep.empty()) {
    c.Text(380, 200, "no sweep in this run", "middle");
    return c.Finish();
  }
  std::vector<double> xt;
  for (int n = 1; n <= max_c; n *= 2) xt.push_back(n);
  // x is log2(concurrency), mapped onto the frame through a linear [0, log2(max_c)] axis.
  auto lx = [](double n) { return std::log2(n); };
  double x_max = std::max(1.0, std::log2(static_cast<double>(max_c)));
  std::vector<double> lat_t = NiceTicks(max_lat * 1.05, 6), rate_t = NiceTicks(max_rate * 1.05, 6);
  Frame left{70, 50, 280, 270, x_max, lat_t.back()};
  Frame right{450, 50, 280, 270, x_max, rate_t.back()};
  std::vector<double> lxt;
  for (double t : xt) lxt.push_back(lx(t));
  auto pow2 = [](double v) { return TickLabel(std::round(std::pow(2, v))); };
  DrawAxes(c, left, lxt, lat_t, "concurrency", "latency (ms): p50 solid, p90 dashed", pow2);
  DrawAxes(c, right, lxt, rate_t, "concurrency", "successful cold starts per second", pow2);
  double legend_y = 380;
  double legend_x = 70;
  for (const auto& [series, levels] : by_series) {
    std::vector<std::pair<double, double>> p50, p90, rate;
    for (const SweepStats* s : levels) {
      double x = lx(s->concurrency);
      p50.emplace_back(left.X(x), left.Y(s->summary.p50));
      p90.emplace_back(left.X(x), left.Y(s->summary.p90));
      rate.emplace_back(right.X(x), right.Y(s->per_second));
    }
    const char* color = SeriesColor(series);
    c.Polyline(p50, color);
    c.Polyline(p90, color, 1.5, "5,3");
    c.Polyline(rate, color);
    for (const auto& [x, y] : p50) c.Circle(x, y, 3, color);
    for (const auto& [x, y] : rate) c.Circle(x, y, 3, color);
    c.Line(legend_x, legend_y - 4, legend_x + 24, legend_y - 4, color, 3);
    std::string label = series == kEphemera   ? "ephemera cold"
                        : series == kRawFloor ? "raw Docker floor"
                                              : series;
    c.Text(legend_x + 30, legend_y, label);
    legend_x += 200;
  }
  return c.Finish();
}

}  // namespace ephemera::bench
