#pragma once
// A minimal reader of the protobuf wire format (varints, fixed32/64, length-delimited fields), enough
// to read SentencePiece's ModelProto without libprotobuf. Malformed input throws ld::Error naming
// `source` (the file the bytes came from).
#include <cstdint>
#include <cstring>
#include <string_view>

#include "core/error.hpp"

namespace ld::tok::proto {

enum class WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

struct Field {
  uint32_t number = 0;
  WireType type = WireType::kVarint;
  uint64_t varint = 0;     // kVarint, and the raw bits of kFixed64 / kFixed32
  std::string_view bytes;  // kLengthDelimited: the payload (a string or a nested message)

  float as_float() const {
    const auto bits = static_cast<uint32_t>(varint);
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }
  // int32 fields are encoded as sign-extended 64-bit varints.
  int32_t as_int32() const { return static_cast<int32_t>(static_cast<int64_t>(varint)); }
  bool as_bool() const { return varint != 0; }
};

class Reader {
 public:
  // `source` must outlive the reader (a path string or a literal).
  Reader(std::string_view data, std::string_view source) : data_(data), source_(source) {}

  // Reads the next field; false at the end of the message.
  bool next(Field& field) {
    if (pos_ == data_.size()) return false;
    const uint64_t key = read_varint();
    field.number = static_cast<uint32_t>(key >> 3);
    const auto wire = static_cast<uint8_t>(key & 7);
    LD_CHECK(field.number != 0, source_, ": malformed protobuf (field number 0 at byte ", pos_, ")");
    switch (wire) {
      case 0:
        field.type = WireType::kVarint;
        field.varint = read_varint();
        break;
      case 1:
        field.type = WireType::kFixed64;
        field.varint = read_fixed(8);
        break;
      case 2: {
        field.type = WireType::kLengthDelimited;
        const uint64_t len = read_varint();
        LD_CHECK(len <= data_.size() - pos_, source_, ": truncated or malformed protobuf (a field of ", len,
                 " bytes at byte ", pos_, " runs past the end)");
        field.bytes = data_.substr(pos_, static_cast<size_t>(len));
        pos_ += static_cast<size_t>(len);
        break;
      }
      case 5:
        field.type = WireType::kFixed32;
        field.varint = read_fixed(4);
        break;
      default:
        LD_FAIL(source_, ": malformed protobuf (unsupported wire type ", int{wire}, " at byte ", pos_, ")");
    }
    return true;
  }

 private:
  uint64_t read_varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      LD_CHECK(pos_ < data_.size(), source_, ": truncated protobuf (a varint runs past the end)");
      const auto byte = static_cast<uint8_t>(data_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    LD_FAIL(source_, ": malformed protobuf (a varint longer than 10 bytes at byte ", pos_, ")");
  }

  uint64_t read_fixed(size_t width) {
    LD_CHECK(width <= data_.size() - pos_, source_, ": truncated protobuf (a fixed-width field runs past the end)");
    uint64_t value = 0;
    for (size_t i = 0; i < width; ++i) value |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += width;
    return value;
  }

  std::string_view data_;
  std::string_view source_;
  size_t pos_ = 0;
};

}  // namespace ld::tok::proto
