#pragma once
// A line chart described once and drawn twice: as SVG text (render_svg) and as a PNG
// (render_png), from one layout so both pictures agree. Axes with 1-2-5 ticks, grid lines, axis
// labels, a title and a legend; series drawn as lines, markers, or both.
#include <string>
#include <vector>

#include "plot/raster.hpp"
#include "plot/ticks.hpp"

namespace ld::plot {

struct Series {
  std::string name;           // legend text; empty: not in the legend
  std::vector<double> x, y;   // same length; non-finite points are left out
  Rgb color;
  bool line = true;
  bool markers = false;
  double opacity = 1.0;       // < 1 for a faint background curve (the raw curve under a smoothed one)
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log_y = false;  // needs every y > 0
  int width = 800, height = 500;
};

// Where everything goes: the plot area in pixels and the data ranges it shows.
struct Layout {
  double left = 0, top = 0, right = 0, bottom = 0;  // plot area (the axes' box), pixels (y grows down)
  double inset = 8;  // the end ticks sit this far inside the box, so a curve on its minimum (or a
                     // marker on the last step) is not drawn over the axis line
  Ticks x_ticks, y_ticks;
  bool log_y = false;
  bool legend_right = true, legend_top = true;  // the corner of the plot area the legend sits in

  double px(double x) const;  // data -> pixel
  double py(double y) const;
};

Layout layout_chart(const Chart& chart);

// The legend's box as the PNG draws it (the larger of the two renderers'): its width and height.
Point legend_size(const Chart& chart);

// A series' drawable points in pixels: non-finite points (and y <= 0 on a log axis) left out, and
// points sharing a pixel column reduced to that column's first, lowest, highest and last.
std::vector<Point> pixel_points(const Series& s, const Layout& l);

// The look both renderers share.
namespace style {
inline constexpr Rgb kBackground{255, 255, 255}, kGrid{228, 228, 228}, kAxis{60, 60, 60}, kText{30, 30, 30};
inline constexpr double kLineWidth = 2.0, kMarkerRadius = 4.0;
}  // namespace style

std::string render_svg(const Chart& chart);
std::string render_png(const Chart& chart);  // the PNG file's bytes

}  // namespace ld::plot
