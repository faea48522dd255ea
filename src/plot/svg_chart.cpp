// render_svg: the chart as SVG text, one element per axis line, grid line, label and series.
#include <algorithm>
#include <cstdio>
#include <sstream>

#include "plot/chart.hpp"

namespace ld::plot {

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string color(Rgb c) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

void line(std::ostream& os, double x1, double y1, double x2, double y2, Rgb c, double width) {
  os << "<line x1=\"" << num(x1) << "\" y1=\"" << num(y1) << "\" x2=\"" << num(x2) << "\" y2=\"" << num(y2)
     << "\" stroke=\"" << color(c) << "\" stroke-width=\"" << num(width) << "\"/>\n";
}

void text(std::ostream& os, double x, double y, const std::string& s, int size, const char* anchor,
          const std::string& extra = "") {
  os << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\" font-size=\"" << size << "\" text-anchor=\"" << anchor
     << "\"" << extra << ">" << escape(s) << "</text>\n";
}

void axes(std::ostream& os, const Layout& l) {
  const auto xl = tick_labels(l.x_ticks), yl = tick_labels(l.y_ticks);
  for (size_t i = 0; i < l.x_ticks.values.size(); ++i) {
    const double x = l.px(l.x_ticks.values[i]);
    line(os, x, l.top, x, l.bottom, style::kGrid, 1);
    line(os, x, l.bottom, x, l.bottom + 5, style::kAxis, 1);
    text(os, x, l.bottom + 20, xl[i], 12, "middle");
  }
  for (size_t i = 0; i < l.y_ticks.values.size(); ++i) {
    const double y = l.py(l.y_ticks.values[i]);
    line(os, l.left, y, l.right, y, style::kGrid, 1);
    line(os, l.left - 5, y, l.left, y, style::kAxis, 1);
    text(os, l.left - 8, y + 4, yl[i], 12, "end");
  }
  line(os, l.left, l.bottom, l.right, l.bottom, style::kAxis, 1.5);
  line(os, l.left, l.top, l.left, l.bottom, style::kAxis, 1.5);
}

void series(std::ostream& os, const Series& s, const Layout& l) {
  const auto pts = pixel_points(s, l);
  os << "<g clip-path=\"url(#plot-area)\" opacity=\"" << num(s.opacity) << "\">\n";
  if (s.line && !pts.empty()) {
    os << "<polyline fill=\"none\" stroke=\"" << color(s.color) << "\" stroke-width=\"" << num(style::kLineWidth)
       << "\" stroke-linejoin=\"round\" points=\"";
    for (size_t i = 0; i < pts.size(); ++i) os << (i ? " " : "") << num(pts[i].x) << "," << num(pts[i].y);
    os << "\"/>\n";
  }
  if (s.markers || pts.size() == 1)  // a lone point needs a marker to be seen
    for (const Point& p : pts)
      os << "<circle cx=\"" << num(p.x) << "\" cy=\"" << num(p.y) << "\" r=\"" << num(style::kMarkerRadius)
         << "\" fill=\"" << color(s.color) << "\"/>\n";
  os << "</g>\n";
}

void legend(std::ostream& os, const Chart& chart, const Layout& l) {
  std::vector<const Series*> shown;
  size_t longest = 0;
  for (const Series& s : chart.series)
    if (!s.name.empty()) {
      shown.push_back(&s);
      longest = std::max(longest, s.name.size());
    }
  if (shown.empty()) return;
  const double row = 20, w = 44 + 7.5 * longest, h = row * shown.size() + 8;
  const double x0 = l.legend_right ? l.right - w - 10 : l.left + 10;
  const double y0 = l.legend_top ? l.top + 10 : l.bottom - h - 10;
  os << "<rect x=\"" << num(x0) << "\" y=\"" << num(y0) << "\" width=\"" << num(w) << "\" height=\"" << num(h)
     << "\" fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"#bbbbbb\"/>\n";
  for (size_t i = 0; i < shown.size(); ++i) {
    const double y = y0 + 4 + row * (i + 0.5);
    if (shown[i]->line) line(os, x0 + 8, y, x0 + 32, y, shown[i]->color, style::kLineWidth);
    if (shown[i]->markers)
      os << "<circle cx=\"" << num(x0 + 20) << "\" cy=\"" << num(y) << "\" r=\"" << num(style::kMarkerRadius)
         << "\" fill=\"" << color(shown[i]->color) << "\"/>\n";
    text(os, x0 + 38, y + 4, shown[i]->name, 12, "start");
  }
}

}  // namespace

std::string render_svg(const Chart& chart) {
  const Layout l = layout_chart(chart);
  std::ostringstream os;
  os << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
     << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << chart.width << "\" height=\"" << chart.height
     << "\" viewBox=\"0 0 " << chart.width << " " << chart.height << "\" font-family=\"sans-serif\" fill=\""
     << color(style::kText) << "\">\n"
     << "<defs><clipPath id=\"plot-area\"><rect x=\"" << num(l.left) << "\" y=\"" << num(l.top) << "\" width=\""
     << num(l.right - l.left) << "\" height=\"" << num(l.bottom - l.top) << "\"/></clipPath></defs>\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"" << color(style::kBackground) << "\"/>\n";
  axes(os, l);
  for (const Series& s : chart.series) series(os, s, l);
  legend(os, chart, l);
  text(os, (l.left + l.right) / 2, 26, chart.title, 16, "middle", " font-weight=\"bold\"");
  text(os, (l.left + l.right) / 2, chart.height - 14, chart.x_label, 14, "middle");
  const double cy = (l.top + l.bottom) / 2;
  text(os, 20, cy, chart.y_label, 14, "middle",
       " transform=\"rotate(-90 20 " + num(cy) + ")\"");
  os << "</svg>\n";
  return os.str();
}

}  // namespace ld::plot
