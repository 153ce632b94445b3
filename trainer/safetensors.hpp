// Reader and writer of the safetensors format (Hugging Face): an 8-byte little-endian header
// length, a JSON header (dtype, shape, data_offsets per tensor; "__metadata__"), then raw data.
#pragma once

// Why hand-written: Debian 12 packages no C++ safetensors library (apt-cache search safetensors
// finds nothing) and the format is small; nlohmann-json parses the header.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kestrel::trainer {

// One float32 tensor to write. data points to product(shape) floats owned by the caller
// (a scalar has an empty shape and one float).
struct TensorView {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
};

// One tensor read back, converted to float32.
struct LoadedTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  std::string dtype;  // dtype in the file ("F32", "F16", "BF16", "F64")
};

// The contents of a safetensors file.
struct SafetensorsFile {
  std::map<std::string, LoadedTensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Writes the tensors as dtype "F32" (little-endian) with the metadata as "__metadata__"
// (omitted when empty), laid out as the reference implementation does: tensors ordered by name,
// contiguous data, header padded with spaces to a multiple of 8 bytes. The file appears
// atomically: it is written to a temporary file in the same folder, flushed, then renamed.
// throws ConfigError for an empty or duplicate name, a name "__metadata__", a negative dimension
// or a null data pointer with a non-empty shape; DataError when the file cannot be written.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Reads a safetensors file. F32 tensors are read as is; F16, BF16 and F64 are converted to
// float32 (so pretrained weights saved in half precision can be loaded).
// throws DataError naming the file and the problem for a missing file, a truncated file, a
// header that is not valid JSON or not an object, an unsupported dtype, a shape whose size does
// not match data_offsets, offsets out of range, overlapping or leaving holes in the data buffer,
// or non-string metadata.
SafetensorsFile read_safetensors(const std::string& path);

}  // namespace kestrel::trainer
