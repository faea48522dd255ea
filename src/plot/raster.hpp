#pragma once
// A small anti-aliased rasterizer for charts: RGB image, lines and polylines of any width with
// coverage-based anti-aliasing, filled circles, axis-aligned rectangles, and text in the built-in
// 5x7 font scaled by an integer factor (optionally rotated a quarter turn for y-axis labels).
#include <cstdint>
#include <string>
#include <vector>

namespace ld::plot {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

struct Point {
  double x = 0, y = 0;
};

struct ClipRect {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

class Image {
 public:
  Image(int width, int height, Rgb background);
  int width() const { return width_; }
  int height() const { return height_; }
  const std::vector<uint8_t>& rgb() const { return pixels_; }
  Rgb pixel(int x, int y) const;

  // Mix `color` into pixel (x, y) with weight `alpha` in [0, 1]; outside the image: nothing.
  void blend(int x, int y, Rgb color, double alpha);
  void fill_rect(int x0, int y0, int x1, int y1, Rgb color);  // [x0, x1) x [y0, y1)

  // A polyline of the given width; pixel centres are at (x + 0.5, y + 0.5). Joints are drawn once
  // (coverage is the max over segments, not a sum), so a translucent line has no dark knots.
  void polyline(const std::vector<Point>& points, double width, Rgb color, double opacity, const ClipRect& clip);
  void circle(Point centre, double radius, Rgb color);

  // Text with its top-left corner at (x, y); `scale` pixels per font pixel. Rotated text runs
  // bottom to top, with (x, y) its bottom-left corner.
  void text(int x, int y, const std::string& s, int scale, Rgb color, bool rotated = false);

 private:
  int width_, height_;
  std::vector<uint8_t> pixels_;
};

// Size in pixels of `s` drawn at `scale` (unrotated).
int text_width(const std::string& s, int scale);
int text_height(int scale);

}  // namespace ld::plot
