#include "plot/chart.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.hpp"

namespace ld::plot {

namespace {

constexpr double kYLabelRoom = 44;  // the rotated y-axis label, its gap, and the tick marks
constexpr double kMarginLeft = 78, kMarginRight = 30, kMarginTop = 44, kMarginBottom = 58;

// Data range over the finite points of all series (log axes: the positive ones).
void data_range(const Chart& chart, bool want_y, bool positive_only, double& lo, double& hi) {
  lo = std::numeric_limits<double>::infinity();
  hi = -lo;
  for (const Series& s : chart.series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      const double v = want_y ? s.y[i] : s.x[i];
      if (positive_only && v <= 0) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  if (lo > hi) lo = hi = positive_only ? 1.0 : 0.0;  // no data: an empty axis
}

// The corner whose legend box covers the fewest data points; top right on a tie (where a falling
// loss curve leaves room).
void place_legend(const Chart& chart, Layout& l) {
  const Point size = legend_size(chart);
  int best = -1;
  for (int corner = 0; corner < 4; ++corner) {
    const bool right = corner % 2 == 0, top = corner < 2;
    const double x0 = right ? l.right - 10 - size.x : l.left + 10, y0 = top ? l.top + 10 : l.bottom - 10 - size.y;
    int covered = 0;
    for (const Series& s : chart.series)
      for (const Point& p : pixel_points(s, l))
        covered += p.x >= x0 - 4 && p.x <= x0 + size.x + 4 && p.y >= y0 - 4 && p.y <= y0 + size.y + 4;
    if (best < 0 || covered < best) {
      best = covered;
      l.legend_right = right;
      l.legend_top = top;
    }
  }
}

}  // namespace

double Layout::px(double x) const {
  return left + inset + (x - x_ticks.lo) / (x_ticks.hi - x_ticks.lo) * (right - left - 2 * inset);
}

double Layout::py(double y) const {
  const double height = bottom - top - 2 * inset;
  if (log_y) {
    const double lo = std::log10(y_ticks.lo), hi = std::log10(y_ticks.hi);
    return bottom - inset - (std::log10(y) - lo) / (hi - lo) * height;
  }
  return bottom - inset - (y - y_ticks.lo) / (y_ticks.hi - y_ticks.lo) * height;
}

Layout layout_chart(const Chart& chart) {
  for (const Series& s : chart.series) LD_ASSERT(s.x.size() == s.y.size(), "series ", s.name);
  Layout l;
  l.left = kMarginLeft;
  l.top = kMarginTop;
  l.right = chart.width - kMarginRight;
  l.bottom = chart.height - kMarginBottom;
  double lo, hi;
  data_range(chart, false, false, lo, hi);
  l.x_ticks = nice_ticks(lo, hi, 8);
  l.log_y = chart.log_y;
  data_range(chart, true, chart.log_y, lo, hi);
  l.y_ticks = chart.log_y ? log_ticks(lo, hi) : nice_ticks(lo, hi, 6);
  // Room for the widest y tick label (at the PNG font's 12 pixels a character) right of the
  // rotated y-axis label.
  size_t widest = 0;
  for (const std::string& label : tick_labels(l.y_ticks)) widest = std::max(widest, label.size());
  l.left = std::max(kMarginLeft, kYLabelRoom + 12.0 * static_cast<double>(widest));
  place_legend(chart, l);
  return l;
}

Point legend_size(const Chart& chart) {
  size_t rows = 0, longest = 0;
  for (const Series& s : chart.series)
    if (!s.name.empty()) {
      ++rows;
      longest = std::max(longest, s.name.size());
    }
  return {48.0 + 12.0 * static_cast<double>(longest) - 2, 22.0 * static_cast<double>(rows) + 8};
}

std::vector<Point> pixel_points(const Series& s, const Layout& l) {
  std::vector<Point> all;
  for (size_t i = 0; i < s.x.size(); ++i) {
    if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || (l.log_y && s.y[i] <= 0)) continue;
    all.push_back({l.px(s.x[i]), l.py(s.y[i])});
  }
  // Long runs put many points in one pixel column; the first, lowest, highest and last of each
  // column draw the same picture, and keep a 100k-step SVG small.
  std::vector<Point> out;
  for (size_t begin = 0; begin < all.size();) {
    size_t end = begin + 1;
    while (end < all.size() && std::floor(all[end].x) == std::floor(all[begin].x)) ++end;
    if (end - begin <= 4) {
      out.insert(out.end(), all.begin() + begin, all.begin() + end);
    } else {
      auto [lo, hi] = std::minmax_element(all.begin() + begin, all.begin() + end,
                                          [](const Point& a, const Point& b) { return a.y < b.y; });
      if (hi < lo) std::swap(lo, hi);
      out.push_back(all[begin]);
      if (lo != all.begin() + begin) out.push_back(*lo);
      if (hi != lo && hi != all.begin() + end - 1) out.push_back(*hi);
      out.push_back(all[end - 1]);
    }
    begin = end;
  }
  return out;
}

}  // namespace ld::plot
