#include "plot/raster.hpp"

#include <algorithm>
#include <cmath>

#include "plot/font5x7.hpp"

namespace ld::plot {

namespace {

double distance_to_segment(double px, double py, Point a, Point b) {
  const double dx = b.x - a.x, dy = b.y - a.y;
  const double len2 = dx * dx + dy * dy;
  double t = len2 > 0 ? ((px - a.x) * dx + (py - a.y) * dy) / len2 : 0;
  t = std::clamp(t, 0.0, 1.0);
  const double cx = a.x + t * dx - px, cy = a.y + t * dy - py;
  return std::sqrt(cx * cx + cy * cy);
}

}  // namespace

Image::Image(int width, int height, Rgb background) : width_(width), height_(height) {
  pixels_.resize(static_cast<size_t>(width) * height * 3);
  for (size_t i = 0; i < pixels_.size(); i += 3) {
    pixels_[i] = background.r;
    pixels_[i + 1] = background.g;
    pixels_[i + 2] = background.b;
  }
}

Rgb Image::pixel(int x, int y) const {
  const size_t i = (static_cast<size_t>(y) * width_ + x) * 3;
  return {pixels_[i], pixels_[i + 1], pixels_[i + 2]};
}

void Image::blend(int x, int y, Rgb color, double alpha) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_ || alpha <= 0) return;
  alpha = std::min(alpha, 1.0);
  uint8_t* p = &pixels_[(static_cast<size_t>(y) * width_ + x) * 3];
  const uint8_t c[3] = {color.r, color.g, color.b};
  for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::lround(p[k] + (c[k] - p[k]) * alpha));
}

void Image::fill_rect(int x0, int y0, int x1, int y1, Rgb color) {
  for (int y = std::max(0, y0); y < std::min(height_, y1); ++y)
    for (int x = std::max(0, x0); x < std::min(width_, x1); ++x) blend(x, y, color, 1.0);
}

void Image::polyline(const std::vector<Point>& points, double width, Rgb color, double opacity, const ClipRect& clip) {
  if (points.empty()) return;
  const double reach = width / 2 + 1;
  const int cx0 = std::max(0, static_cast<int>(std::floor(clip.x0))), cy0 = std::max(0, static_cast<int>(std::floor(clip.y0)));
  const int cx1 = std::min(width_, static_cast<int>(std::ceil(clip.x1))), cy1 = std::min(height_, static_cast<int>(std::ceil(clip.y1)));
  if (cx1 <= cx0 || cy1 <= cy0) return;
  // Coverage per pixel of the clip box, max over segments, then one blend per pixel.
  const int bw = cx1 - cx0, bh = cy1 - cy0;
  std::vector<float> coverage(static_cast<size_t>(bw) * bh, 0.0f);
  const size_t segments = points.size() == 1 ? 1 : points.size() - 1;
  for (size_t i = 0; i < segments; ++i) {
    const Point a = points[i], b = points[std::min(i + 1, points.size() - 1)];
    const int x0 = std::max(cx0, static_cast<int>(std::floor(std::min(a.x, b.x) - reach)));
    const int x1 = std::min(cx1 - 1, static_cast<int>(std::ceil(std::max(a.x, b.x) + reach)));
    const int y0 = std::max(cy0, static_cast<int>(std::floor(std::min(a.y, b.y) - reach)));
    const int y1 = std::min(cy1 - 1, static_cast<int>(std::ceil(std::max(a.y, b.y) + reach)));
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) {
        const double d = distance_to_segment(x + 0.5, y + 0.5, a, b);
        const float c = static_cast<float>(std::clamp(width / 2 + 0.5 - d, 0.0, 1.0));
        float& slot = coverage[static_cast<size_t>(y - cy0) * bw + (x - cx0)];
        slot = std::max(slot, c);
      }
  }
  for (int y = cy0; y < cy1; ++y)
    for (int x = cx0; x < cx1; ++x) {
      const float c = coverage[static_cast<size_t>(y - cy0) * bw + (x - cx0)];
      if (c > 0) blend(x, y, color, c * opacity);
    }
}

void Image::circle(Point centre, double radius, Rgb color) {
  const int x0 = static_cast<int>(std::floor(centre.x - radius - 1)), x1 = static_cast<int>(std::ceil(centre.x + radius + 1));
  const int y0 = static_cast<int>(std::floor(centre.y - radius - 1)), y1 = static_cast<int>(std::ceil(centre.y + radius + 1));
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) {
      const double d = std::hypot(x + 0.5 - centre.x, y + 0.5 - centre.y);
      blend(x, y, color, std::clamp(radius + 0.5 - d, 0.0, 1.0));
    }
}

void Image::text(int x, int y, const std::string& s, int scale, Rgb color, bool rotated) {
  for (size_t i = 0; i < s.size(); ++i)
    for (int row = 0; row < kGlyphHeight; ++row)
      for (int col = 0; col < kGlyphWidth; ++col) {
        if (!glyph_pixel(s[i], col, row)) continue;
        const int along = (static_cast<int>(i) * kGlyphAdvance + col) * scale;  // distance along the text
        const int across = row * scale;                                          // distance down the glyph
        for (int dy = 0; dy < scale; ++dy)
          for (int dx = 0; dx < scale; ++dx) {
            if (rotated)
              blend(x + across + dy, y - along - dx - 1, color, 1.0);
            else
              blend(x + along + dx, y + across + dy, color, 1.0);
          }
      }
}

int text_width(const std::string& s, int scale) {
  return s.empty() ? 0 : (static_cast<int>(s.size()) * kGlyphAdvance - 1) * scale;
}

int text_height(int scale) { return kGlyphHeight * scale; }

}  // namespace ld::plot
