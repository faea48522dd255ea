#pragma once
// A built-in 5x7 bitmap font for printable ASCII (32..126), so PNG text needs no font library.
// Capitals and digits are 7 rows tall; descenders use an eighth row.
#include <cstdint>

namespace ld::plot {

inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 8;  // 7 rows + 1 for descenders
inline constexpr int kGlyphAdvance = 6;  // one blank column between letters

// Whether pixel (col, row) of character c is set; row 0 is the top. Characters outside 32..126
// are drawn as '?'.
bool glyph_pixel(char c, int col, int row);

}  // namespace ld::plot
