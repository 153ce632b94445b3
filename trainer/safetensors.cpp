// Reader and writer of the safetensors format, following the published specification
// (huggingface/safetensors README) and the checks of its reference reader.
#include "trainer/safetensors.hpp"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.hpp"

namespace kestrel::trainer {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader copies bytes as they are");

namespace {

// The reference reader refuses headers above 100 MB; so do we (a corrupt length would
// otherwise make us allocate whatever the first 8 bytes say).
constexpr uint64_t kMaxHeader = 100'000'000;

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      // Subnormal half: normalise into a float.
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3FF) << 13;
    }
  } else if (exp == 0x1F) {
    bits = sign | 0x7F800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  return std::bit_cast<float>(bits);
}

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "F16" || dtype == "BF16") return 2;
  if (dtype == "F64") return 8;
  return 0;
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorView*> order;
  std::set<std::string> names;
  for (const TensorView& t : tensors) {
    if (t.name.empty()) throw ConfigError("safetensors: empty tensor name");
    if (t.name == "__metadata__") throw ConfigError("safetensors: '__metadata__' is reserved");
    if (!names.insert(t.name).second)
      throw ConfigError("safetensors: duplicate tensor '" + t.name + "'");
    int64_t count = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw ConfigError("safetensors: negative dimension in '" + t.name + "'");
      count *= d;
    }
    if (count > 0 && t.data == nullptr)
      throw ConfigError("safetensors: no data for '" + t.name + "'");
    order.push_back(&t);
  }
  // The reference writer orders by dtype alignment, then name; with one dtype that is by name.
  std::sort(order.begin(), order.end(),
            [](const TensorView* a, const TensorView* b) { return a->name < b->name; });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  uint64_t offset = 0;
  for (const TensorView* t : order) {
    uint64_t bytes = 4;
    for (int64_t d : t->shape) bytes *= static_cast<uint64_t>(d);
    header[t->name] = {
        {"dtype", "F32"}, {"shape", t->shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  text.append((8 - (text.size() % 8)) % 8, ' ');
  const uint64_t header_len = text.size();

  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path tmp =
      target.parent_path() / (target.filename().string() + ".tmp." + std::to_string(::getpid()));
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw DataError(path + ": cannot write (" + std::strerror(errno) + ")");
  bool ok = std::fwrite(&header_len, 8, 1, f) == 1 &&
            std::fwrite(text.data(), 1, text.size(), f) == text.size();
  for (const TensorView* t : order) {
    if (!ok) break;
    size_t count = 1;
    for (int64_t d : t->shape) count *= static_cast<size_t>(d);
    if (count > 0) ok = std::fwrite(t->data, sizeof(float), count, f) == count;
  }
  // Flush to the disk before the rename, so a crash leaves either the old file or the new one.
  ok = ok && std::fflush(f) == 0 && ::fsync(::fileno(f)) == 0;
  const int saved_errno = errno;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw DataError(path + ": write failed (" + std::strerror(saved_errno) + ")");
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw DataError(path + ": cannot rename the temporary file into place (" + ec.message() + ")");
  }
}

SafetensorsFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open safetensors file");
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (file_size < 8) throw DataError(path + ": truncated (shorter than the 8-byte header length)");
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  if (header_len > kMaxHeader) {
    throw DataError(path + ": header length " + std::to_string(header_len) +
                    " is implausible (corrupt file or not safetensors)");
  }
  if (header_len > file_size - 8) {
    throw DataError(path + ": truncated (header of " + std::to_string(header_len) +
                    " bytes announced, " + std::to_string(file_size - 8) + " present)");
  }
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw DataError(path + ": header is not valid JSON (" + e.what() + ")");
  }
  if (!header.is_object()) throw DataError(path + ": header is not a JSON object");

  const uint64_t data_size = file_size - 8 - header_len;
  SafetensorsFile out;
  struct Span {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Span> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw DataError(path + ": __metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string())
          throw DataError(path + ": metadata value of '" + k + "' is not a string");
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor '" + name + "'";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets")) {
      throw DataError(where + " lacks dtype, shape or data_offsets");
    }
    const auto& jd = entry["dtype"];
    const auto& js = entry["shape"];
    const auto& jo = entry["data_offsets"];
    if (!jd.is_string() || !js.is_array() || !jo.is_array() || jo.size() != 2 ||
        !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned()) {
      throw DataError(where + " has a malformed dtype, shape or data_offsets");
    }
    LoadedTensor t;
    t.dtype = jd.get<std::string>();
    const size_t es = dtype_size(t.dtype);
    if (es == 0) {
      throw DataError(where + " has dtype " + t.dtype + " (supported: F32, F16, BF16, F64)");
    }
    uint64_t count = 1;
    for (const auto& d : js) {
      if (!d.is_number_unsigned())
        throw DataError(where + " has a negative or non-integer dimension");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && count > (uint64_t{1} << 48) / dim)
        throw DataError(where + " has an absurd shape");
      count *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const uint64_t begin = jo[0].get<uint64_t>(), end = jo[1].get<uint64_t>();
    if (begin > end || end > data_size) {
      throw DataError(where + " has data_offsets [" + std::to_string(begin) + ", " +
                      std::to_string(end) + "] outside the data buffer of " +
                      std::to_string(data_size) + " bytes (truncated file?)");
    }
    if (end - begin != count * es) {
      throw DataError(where + " has shape of " + std::to_string(count) + " elements but " +
                      std::to_string(end - begin) + " bytes of " + t.dtype + " data");
    }
    t.data.resize(count);
    if (count > 0) {
      std::vector<char> raw(end - begin);
      in.seekg(static_cast<std::streamoff>(8 + header_len + begin));
      in.read(raw.data(), static_cast<std::streamsize>(raw.size()));
      if (!in) throw DataError(where + ": read failed");
      if (t.dtype == "F32") {
        std::memcpy(t.data.data(), raw.data(), raw.size());
      } else if (t.dtype == "F64") {
        for (uint64_t i = 0; i < count; ++i) {
          double v;
          std::memcpy(&v, raw.data() + 8 * i, 8);
          t.data[i] = static_cast<float>(v);
        }
      } else {
        const bool bf16 = t.dtype == "BF16";
        for (uint64_t i = 0; i < count; ++i) {
          uint16_t v;
          std::memcpy(&v, raw.data() + 2 * i, 2);
          t.data[i] =
              bf16 ? std::bit_cast<float>(static_cast<uint32_t>(v) << 16) : half_to_float(v);
        }
      }
    }
    spans.push_back({begin, end, name});
    out.tensors.emplace(name, std::move(t));
  }
  // The reference reader demands that the tensors tile the data buffer exactly: no overlap, no
  // hole, nothing after the last one.
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  for (const Span& s : spans) {
    if (s.begin != cursor) {
      throw DataError(path + ": tensor '" + s.name + "' starts at byte " + std::to_string(s.begin) +
                      ", expected " + std::to_string(cursor) + " (overlapping or gap in the data)");
    }
    cursor = s.end;
  }
  if (cursor != data_size) {
    throw DataError(path + ": " + std::to_string(data_size - cursor) +
                    " bytes after the last tensor (corrupt file)");
  }
  return out;
}

}  // namespace kestrel::trainer
