#pragma once
// SentencePiece BPE models (.model files, a protobuf ModelProto), as LLaMA-2 uses them. Encoding
// follows sentencepiece's bpe_model.cc (highest-score pair merged first, ties to the left) and gives
// the same ids as spm_encode on valid UTF-8; decoding gives what spm_decode gives. One difference,
// so that decode(encode(x)) == x for any bytes: invalid UTF-8 is kept as bytes (byte fallback
// pieces) where sentencepiece would replace it with U+FFFD.
#include <filesystem>
#include <memory>

#include "tokenizer/tokenizer.hpp"

namespace ld::tok {

// Reads a SentencePiece .model file. Only model_type BPE is supported; other model types, a
// normalizer other than "identity" and malformed or truncated files throw ld::Error naming the file.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::filesystem::path& path);

}  // namespace ld::tok
