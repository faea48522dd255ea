// render_png: the chart rasterized with the built-in rasterizer and font, then PNG-encoded.
#include <algorithm>
#include <cmath>

#include "plot/chart.hpp"
#include "plot/png.hpp"

namespace ld::plot {

namespace {

constexpr int kTextScale = 2;                     // 5x7 font doubled: 10x14 pixels a letter
constexpr int kCapHeight = 7 * kTextScale;        // what vertical centring centres (descenders hang below)

int round_px(double v) { return static_cast<int>(std::lround(v)); }

// A crisp 1-pixel horizontal or vertical line.
void hline(Image& img, double x0, double x1, double y, Rgb c, int thickness = 1) {
  const int yi = static_cast<int>(std::floor(y));
  img.fill_rect(round_px(x0), yi, round_px(x1) + 1, yi + thickness, c);
}
void vline(Image& img, double x, double y0, double y1, Rgb c, int thickness = 1) {
  const int xi = static_cast<int>(std::floor(x));
  img.fill_rect(xi, round_px(y0), xi + thickness, round_px(y1) + 1, c);
}

void centred_text(Image& img, double cx, int y, const std::string& s, Rgb c) {
  img.text(round_px(cx - text_width(s, kTextScale) / 2.0), y, s, kTextScale, c);
}

void axes(Image& img, const Layout& l) {
  const auto xl = tick_labels(l.x_ticks), yl = tick_labels(l.y_ticks);
  for (size_t i = 0; i < l.x_ticks.values.size(); ++i) {
    const double x = l.px(l.x_ticks.values[i]);
    vline(img, x, l.top, l.bottom, style::kGrid);
    vline(img, x, l.bottom, l.bottom + 5, style::kAxis);
    centred_text(img, x, round_px(l.bottom) + 9, xl[i], style::kText);
  }
  for (size_t i = 0; i < l.y_ticks.values.size(); ++i) {
    const double y = l.py(l.y_ticks.values[i]);
    hline(img, l.left, l.right, y, style::kGrid);
    hline(img, l.left - 5, l.left, y, style::kAxis);
    img.text(round_px(l.left - 9 - text_width(yl[i], kTextScale)), round_px(y - kCapHeight / 2.0), yl[i],
             kTextScale, style::kText);
  }
  hline(img, l.left, l.right, l.bottom, style::kAxis, 2);
  vline(img, l.left - 1, l.top, l.bottom + 1, style::kAxis, 2);
}

void series(Image& img, const Series& s, const Layout& l) {
  const auto pts = pixel_points(s, l);
  const ClipRect clip{l.left, l.top - style::kLineWidth, l.right + 1, l.bottom + 1};
  if (s.line) img.polyline(pts, style::kLineWidth, s.color, s.opacity, clip);
  if (s.markers || pts.size() == 1)  // a lone point needs a marker to be seen
    for (const Point& p : pts) {
      img.circle(p, style::kMarkerRadius + 1, style::kBackground);  // a white ring keeps markers apart from lines
      img.circle(p, style::kMarkerRadius, s.color);
    }
}

void legend(Image& img, const Chart& chart, const Layout& l) {
  std::vector<const Series*> shown;
  int longest = 0;
  for (const Series& s : chart.series)
    if (!s.name.empty()) {
      shown.push_back(&s);
      longest = std::max(longest, text_width(s.name, kTextScale));
    }
  if (shown.empty()) return;
  const int row = 22, w = 48 + longest, h = row * static_cast<int>(shown.size()) + 8;
  const int x0 = l.legend_right ? round_px(l.right) - w - 10 : round_px(l.left) + 10;
  const int y0 = l.legend_top ? round_px(l.top) + 10 : round_px(l.bottom) - h - 10;
  img.fill_rect(x0, y0, x0 + w, y0 + h, style::kBackground);
  hline(img, x0, x0 + w, y0, {187, 187, 187});
  hline(img, x0, x0 + w, y0 + h, {187, 187, 187});
  vline(img, x0, y0, y0 + h, {187, 187, 187});
  vline(img, x0 + w, y0, y0 + h, {187, 187, 187});
  for (size_t i = 0; i < shown.size(); ++i) {
    const double y = y0 + 4 + row * (i + 0.5);
    if (shown[i]->line)
      img.polyline({{x0 + 8.0, y}, {x0 + 34.0, y}}, style::kLineWidth, shown[i]->color, 1.0,
                   {0, 0, double(img.width()), double(img.height())});
    if (shown[i]->markers) img.circle({x0 + 21.0, y}, style::kMarkerRadius, shown[i]->color);
    img.text(x0 + 40, round_px(y - kCapHeight / 2.0), shown[i]->name, kTextScale, style::kText);
  }
}

}  // namespace

std::string render_png(const Chart& chart) {
  const Layout l = layout_chart(chart);
  Image img(chart.width, chart.height, style::kBackground);
  axes(img, l);
  for (const Series& s : chart.series) series(img, s, l);
  legend(img, chart, l);
  centred_text(img, (l.left + l.right) / 2, 14, chart.title, style::kText);  // twice, one pixel apart: bold
  centred_text(img, (l.left + l.right) / 2 + 1, 14, chart.title, style::kText);
  centred_text(img, (l.left + l.right) / 2, chart.height - 22, chart.x_label, style::kText);
  const int label_len = text_width(chart.y_label, kTextScale);
  img.text(10, round_px((l.top + l.bottom) / 2 + label_len / 2.0), chart.y_label, kTextScale, style::kText, true);
  return encode_png(img.width(), img.height(), img.rgb());
}

}  // namespace ld::plot
