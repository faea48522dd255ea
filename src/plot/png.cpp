#include "plot/png.hpp"

#include <zlib.h>

#include "core/error.hpp"

namespace ld::plot {

namespace {

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

// length, type, data, CRC-32 of type+data
void put_chunk(std::string& out, const char type[4], const std::string& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  put_u32(out, static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

std::string deflate_bytes(const std::string& raw) {
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string out(size, '\0');
  const int rc = compress2(reinterpret_cast<Bytef*>(out.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                           static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION);
  LD_ASSERT(rc == Z_OK, "zlib compress2 failed: ", rc);
  out.resize(size);
  return out;
}

}  // namespace

std::string encode_png(int width, int height, const std::vector<uint8_t>& rgb) {
  LD_ASSERT(width > 0 && height > 0 && rgb.size() == static_cast<size_t>(width) * height * 3);
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put_u32(ihdr, static_cast<uint32_t>(width));
  put_u32(ihdr, static_cast<uint32_t>(height));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // bit depth 8, colour type 2 (RGB), deflate, filter 0, no interlace
  put_chunk(png, "IHDR", ihdr);

  std::string scanlines;
  const size_t row_bytes = static_cast<size_t>(width) * 3;
  scanlines.reserve((row_bytes + 1) * height);
  for (int y = 0; y < height; ++y) {
    scanlines.push_back('\0');  // filter type 0 (None)
    scanlines.append(reinterpret_cast<const char*>(rgb.data()) + y * row_bytes, row_bytes);
  }
  put_chunk(png, "IDAT", deflate_bytes(scanlines));
  put_chunk(png, "IEND", "");
  return png;
}

}  // namespace ld::plot
