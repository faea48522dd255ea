#pragma once
// A minimal PNG encoder: 8-bit RGB, no interlace, filter type 0 on every scanline, one IDAT
// compressed with zlib. Enough for charts; any viewer reads it.
#include <cstdint>
#include <string>
#include <vector>

namespace ld::plot {

// `rgb` holds width*height pixels, 3 bytes each, rows top to bottom. Returns the file's bytes.
std::string encode_png(int width, int height, const std::vector<uint8_t>& rgb);

}  // namespace ld::plot
