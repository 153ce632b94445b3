// Data sets for the trainer: IDX and CSV readers, split/subset, normalization and the batch loader.
// See data.hpp for the contracts.
#include "trainer/data.hpp"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "common/error.hpp"

namespace kestrel::trainer {

// ---------------------------------------------------------------------------------------------
// Random numbers

uint64_t SplitMix64::below(uint64_t bound) {
  // Lemire's nearly divisionless method: unbiased, and the same numbers on every platform.
  uint64_t x = next();
  __uint128_t m = static_cast<__uint128_t>(x) * bound;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < bound) {
    const uint64_t threshold = (0 - bound) % bound;
    while (low < threshold) {
      x = next();
      m = static_cast<__uint128_t>(x) * bound;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

namespace {
uint64_t finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}
}  // namespace

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t h = finalize(a + 0x9E3779B97F4A7C15ULL);
  h = finalize(h ^ (b + 0x632BE59BD9B4E019ULL));
  h = finalize(h ^ (c + 0x85157AF5BBF1E4A3ULL));
  return h;
}

namespace {
void shuffle_in_place(std::vector<int64_t>& v, uint64_t seed) {
  SplitMix64 rng(seed);
  for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i) + 1));
    std::swap(v[i], v[j]);
  }
}
}  // namespace

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> v(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::iota(v.begin(), v.end(), 0);
  shuffle_in_place(v, seed);
  return v;
}

// ---------------------------------------------------------------------------------------------
// IDX

namespace {

// Reads a whole-or-gzip file through zlib; every failure names the file.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path) {
    if (!std::filesystem::exists(path)) throw DataError(path + ": file not found");
    file_ = gzopen(path.c_str(), "rb");
    if (!file_) throw DataError(path + ": cannot open (" + std::strerror(errno) + ")");
    gzbuffer(file_, 1 << 17);
  }
  ~GzReader() {
    if (file_) gzclose(file_);
  }
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;

  // Reads exactly len bytes or throws DataError saying what was being read.
  void read(void* dst, size_t len, const std::string& what) {
    auto* p = static_cast<unsigned char*>(dst);
    size_t done = 0;
    while (done < len) {
      const unsigned chunk = static_cast<unsigned>(std::min<size_t>(len - done, 1u << 30));
      const int got = gzread(file_, p + done, chunk);
      if (got < 0) {
        int code = 0;
        const char* msg = gzerror(file_, &code);
        throw DataError(path_ + ": corrupt compressed data while reading " + what + " (" +
                        (msg ? msg : "zlib error") + ")");
      }
      if (got == 0) {
        throw DataError(path_ + ": truncated: file ends after " + std::to_string(offset_ + done) +
                        " bytes while reading " + what + " (" + std::to_string(len - done) +
                        " more bytes expected)");
      }
      done += static_cast<size_t>(got);
    }
    offset_ += len;
  }

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  gzFile file_ = nullptr;
  size_t offset_ = 0;
};

uint32_t big_endian_u32(const unsigned char* b) {
  return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | uint32_t{b[3]};
}

struct IdxHeader {
  std::vector<uint32_t> dims;
};

IdxHeader read_idx_header(GzReader& in, const std::vector<int>& allowed_ndim, const char* kind) {
  unsigned char magic[4];
  in.read(magic, 4, "the IDX magic number");
  if (magic[0] != 0 || magic[1] != 0) {
    throw DataError(in.path() + ": not an IDX file (wrong magic number " +
                    std::to_string(magic[0]) + "," + std::to_string(magic[1]) + "," +
                    std::to_string(magic[2]) + "," + std::to_string(magic[3]) +
                    "; expected 0,0,8,<dims>)");
  }
  if (magic[2] != 0x08) {
    throw DataError(in.path() + ": IDX element type " + std::to_string(magic[2]) +
                    " is not supported (only unsigned bytes, type 8)");
  }
  const int ndim = magic[3];
  if (std::find(allowed_ndim.begin(), allowed_ndim.end(), ndim) == allowed_ndim.end()) {
    std::string want;
    for (int d : allowed_ndim) want += (want.empty() ? "" : " or ") + std::to_string(d);
    throw DataError(in.path() + ": IDX " + kind + " file has " + std::to_string(ndim) +
                    " dimensions, expected " + want + " (wrong magic number for " + kind + ")");
  }
  IdxHeader h;
  for (int i = 0; i < ndim; ++i) {
    unsigned char b[4];
    in.read(b, 4, "the IDX dimensions");
    h.dims.push_back(big_endian_u32(b));
  }
  for (size_t i = 1; i < h.dims.size(); ++i) {
    // A real image dimension is small; a huge one means a corrupt header and would otherwise
    // make us allocate gigabytes before noticing.
    if (h.dims[i] == 0 || h.dims[i] > 65536) {
      throw DataError(in.path() + ": implausible IDX dimension " + std::to_string(h.dims[i]) +
                      " (corrupt header)");
    }
  }
  return h;
}

}  // namespace

Dataset load_idx(const std::string& images, const std::string& labels, int64_t limit) {
  GzReader img(images);
  GzReader lab(labels);
  const IdxHeader ih = read_idx_header(img, {3, 4}, "image");
  const IdxHeader lh = read_idx_header(lab, {1}, "label");
  if (ih.dims[0] != lh.dims[0]) {
    throw DataError(images + " holds " + std::to_string(ih.dims[0]) + " images but " + labels +
                    " holds " + std::to_string(lh.dims[0]) + " labels (count mismatch)");
  }
  Dataset d;
  d.n = ih.dims[0];
  if (limit >= 0) d.n = std::min<int64_t>(d.n, limit);
  if (ih.dims.size() == 3) {
    d.c = 1;
    d.h = static_cast<int>(ih.dims[1]);
    d.w = static_cast<int>(ih.dims[2]);
  } else {
    d.c = static_cast<int>(ih.dims[1]);
    d.h = static_cast<int>(ih.dims[2]);
    d.w = static_cast<int>(ih.dims[3]);
  }
  const int64_t ss = d.sample_size();

  // Read in chunks so a header that promises more than the file holds fails on truncation
  // instead of allocating for the promise first.
  std::vector<unsigned char> bytes;
  const int64_t chunk_samples = std::max<int64_t>(1, (int64_t{1} << 22) / ss);
  d.x.reserve(static_cast<size_t>(std::min<int64_t>(d.n, chunk_samples) * ss));
  constexpr float kScale = 1.0f / 255.0f;
  for (int64_t start = 0; start < d.n; start += chunk_samples) {
    const int64_t count = std::min(chunk_samples, d.n - start);
    bytes.resize(static_cast<size_t>(count * ss));
    img.read(bytes.data(), bytes.size(),
             "images " + std::to_string(start) + ".." + std::to_string(start + count - 1));
    const size_t old = d.x.size();
    d.x.resize(old + bytes.size());
    float* dst = d.x.data() + old;
    for (size_t i = 0; i < bytes.size(); ++i) dst[i] = static_cast<float>(bytes[i]) * kScale;
  }
  bytes.resize(static_cast<size_t>(d.n));
  lab.read(bytes.data(), bytes.size(), "labels");
  d.y.assign(bytes.begin(), bytes.end());
  int max_label = -1;
  for (int32_t v : d.y) max_label = std::max(max_label, v);
  d.num_classes = std::max(max_label + 1, d.n > 0 ? 1 : 0);
  return d;
}

Dataset load_fashion_mnist(const std::string& dir, bool train, int64_t limit) {
  const std::string prefix = train ? "train" : "t10k";
  auto pick = [&](const std::string& stem) {
    const std::filesystem::path base = std::filesystem::path(dir) / stem;
    const std::string gz = base.string() + ".gz";
    if (std::filesystem::exists(gz)) return gz;
    if (std::filesystem::exists(base)) return base.string();
    throw DataError(dir + ": neither " + stem + ".gz nor " + stem +
                    " exists (install Debian's dataset-fashion-mnist or pass the folder)");
  };
  Dataset d =
      load_idx(pick(prefix + "-images-idx3-ubyte"), pick(prefix + "-labels-idx1-ubyte"), limit);
  d.num_classes = std::max(d.num_classes, 10);
  return d;
}

// ---------------------------------------------------------------------------------------------
// CSV

namespace {

// Splits one CSV record; quoted cells may contain the delimiter and doubled quotes.
std::vector<std::string> split_csv_line(const std::string& line, char delim) {
  std::vector<std::string> cells;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur += '"';
          ++i;
        } else {
          quoted = false;
        }
      } else {
        cur += ch;
      }
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == delim) {
      cells.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  cells.push_back(std::move(cur));
  return cells;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool parse_float(const std::string& s, float& out) {
  if (s.empty()) return false;
  const char* b = s.data();
  const char* e = s.data() + s.size();
  if (*b == '+') ++b;  // from_chars refuses a leading '+', spreadsheets write one
  const auto r = std::from_chars(b, e, out);
  return r.ec == std::errc() && r.ptr == e && std::isfinite(out);
}

bool parse_label_int(const std::string& s, int32_t& out) {
  if (s.empty()) return false;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && out >= 0;
}

}  // namespace

Dataset load_csv(const std::string& path, const std::string& label_column,
                 const CsvOptions& options) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open CSV file");
  std::string line;
  int64_t line_no = 0;
  std::vector<std::string> names;
  size_t ncols = 0;
  bool have_first = false;

  // Column names are kept for messages even without a header ("column 3").
  auto column_text = [&](size_t col) {
    if (col < names.size() && !names[col].empty()) return "column '" + names[col] + "'";
    return "column " + std::to_string(col + 1);
  };

  std::vector<std::string> first_row;
  if (options.header) {
    while (std::getline(in, line)) {
      ++line_no;
      if (trim(line).empty()) continue;
      for (auto& c : split_csv_line(line, options.delimiter)) names.push_back(trim(c));
      have_first = true;
      break;
    }
    if (!have_first) throw DataError(path + ": empty CSV file (no header line)");
    ncols = names.size();
  }

  // Resolve the label column: a header name, else a 0-based index, empty = last.
  long label_col = -1;
  auto resolve_label = [&](size_t columns) {
    if (label_column.empty()) {
      label_col = static_cast<long>(columns) - 1;
      return;
    }
    auto it = std::find(names.begin(), names.end(), label_column);
    if (it != names.end()) {
      label_col = it - names.begin();
      return;
    }
    long idx = -1;
    const auto r =
        std::from_chars(label_column.data(), label_column.data() + label_column.size(), idx);
    if (r.ec == std::errc() && r.ptr == label_column.data() + label_column.size() && idx >= 0 &&
        static_cast<size_t>(idx) < columns) {
      label_col = idx;
      return;
    }
    throw DataError(path + ": label column '" + label_column + "' not found" +
                    (options.header ? " in the header" : "") + " (" + std::to_string(columns) +
                    " columns)");
  };
  if (options.header) resolve_label(ncols);

  Dataset d;
  std::vector<std::string> label_text;
  while (std::getline(in, line)) {
    ++line_no;
    if (trim(line).empty()) continue;
    if (options.limit >= 0 && static_cast<int64_t>(label_text.size()) >= options.limit) break;
    auto cells = split_csv_line(line, options.delimiter);
    if (ncols == 0) {
      ncols = cells.size();
      resolve_label(ncols);
    }
    if (ncols < 2)
      throw DataError(path + ": a table needs at least one feature and a label column");
    if (cells.size() != ncols) {
      throw DataError(path + ":" + std::to_string(line_no) + ": row has " +
                      std::to_string(cells.size()) + " cells, expected " + std::to_string(ncols));
    }
    for (size_t col = 0; col < ncols; ++col) {
      const std::string cell = trim(cells[col]);
      if (static_cast<long>(col) == label_col) {
        if (cell.empty()) {
          throw DataError(path + ":" + std::to_string(line_no) + ": " + column_text(col) +
                          " (label): empty cell");
        }
        label_text.push_back(cell);
        continue;
      }
      float v = 0;
      if (!parse_float(cell, v)) {
        throw DataError(path + ":" + std::to_string(line_no) + ": " + column_text(col) + ": '" +
                        cell + "' is not a finite number");
      }
      d.x.push_back(v);
    }
  }
  if (label_text.empty()) throw DataError(path + ": no data rows");

  d.n = static_cast<int64_t>(label_text.size());
  d.c = 1;
  d.h = 1;
  d.w = static_cast<int>(ncols - 1);
  d.y.resize(static_cast<size_t>(d.n));
  bool all_int = true;
  for (size_t i = 0; i < label_text.size() && all_int; ++i) {
    all_int = parse_label_int(label_text[i], d.y[i]);
  }
  if (all_int) {
    int32_t mx = 0;
    for (int32_t v : d.y) mx = std::max(mx, v);
    d.num_classes = mx + 1;
  } else {
    const std::set<std::string> distinct(label_text.begin(), label_text.end());
    d.class_names.assign(distinct.begin(), distinct.end());
    std::map<std::string, int32_t> id;
    for (size_t k = 0; k < d.class_names.size(); ++k)
      id[d.class_names[k]] = static_cast<int32_t>(k);
    for (size_t i = 0; i < label_text.size(); ++i) d.y[i] = id[label_text[i]];
    d.num_classes = static_cast<int>(d.class_names.size());
  }
  return d;
}

// ---------------------------------------------------------------------------------------------
// split / subset

namespace {

Dataset gather(const Dataset& data, const std::vector<int64_t>& idx) {
  Dataset out;
  out.n = static_cast<int64_t>(idx.size());
  out.c = data.c;
  out.h = data.h;
  out.w = data.w;
  out.num_classes = data.num_classes;
  out.class_names = data.class_names;
  const int64_t ss = data.sample_size();
  out.x.resize(static_cast<size_t>(out.n * ss));
  out.y.resize(static_cast<size_t>(out.n));
  for (int64_t i = 0; i < out.n; ++i) {
    std::copy_n(data.x.data() + idx[i] * ss, ss, out.x.data() + i * ss);
    out.y[i] = data.y[idx[i]];
  }
  return out;
}

}  // namespace

std::pair<Dataset, Dataset> split(const Dataset& data, double validation_fraction, uint64_t seed,
                                  bool stratify) {
  if (!(validation_fraction >= 0.0 && validation_fraction < 1.0)) {
    throw ConfigError("validation fraction must be in [0, 1), got " +
                      std::to_string(validation_fraction));
  }
  std::vector<char> is_val(static_cast<size_t>(data.n), 0);
  if (stratify) {
    std::map<int32_t, std::vector<int64_t>> by_class;
    for (int64_t i = 0; i < data.n; ++i) by_class[data.y[i]].push_back(i);
    for (auto& [cls, members] : by_class) {
      shuffle_in_place(members, mix_seed(seed, 0x5354524154ULL, static_cast<uint64_t>(cls)));
      const auto k = static_cast<size_t>(
          std::llround(static_cast<double>(members.size()) * validation_fraction));
      for (size_t j = 0; j < k; ++j) is_val[members[j]] = 1;
    }
  } else {
    const auto perm = seeded_permutation(data.n, mix_seed(seed, 0x53504C4954ULL));
    const auto k =
        static_cast<size_t>(std::llround(static_cast<double>(data.n) * validation_fraction));
    for (size_t j = 0; j < k; ++j) is_val[perm[j]] = 1;
  }
  std::vector<int64_t> tr, va;
  for (int64_t i = 0; i < data.n; ++i) (is_val[i] ? va : tr).push_back(i);
  return {gather(data, tr), gather(data, va)};
}

Dataset subset(const Dataset& data, int64_t n, uint64_t seed) {
  if (n >= data.n) return data;
  auto perm = seeded_permutation(data.n, mix_seed(seed, 0x5355425345ULL));
  perm.resize(static_cast<size_t>(std::max<int64_t>(n, 0)));
  std::sort(perm.begin(), perm.end());
  return gather(data, perm);
}

// ---------------------------------------------------------------------------------------------
// Normalizer

Normalizer Normalizer::fit(const Dataset& train, NormalizeMode mode) {
  const int64_t ss = train.sample_size();
  // Element e of a sample is g * per + j: g the channel (per = h*w) or the feature (per = 1).
  const int64_t per =
      mode == NormalizeMode::kPerChannel ? static_cast<int64_t>(train.h) * train.w : 1;
  const int64_t groups = per > 0 ? ss / per : 0;
  std::vector<double> sum(static_cast<size_t>(groups), 0.0), sq(static_cast<size_t>(groups), 0.0);
  for (int64_t i = 0; i < train.n; ++i) {
    const float* s = train.x.data() + i * ss;
    for (int64_t g = 0; g < groups; ++g) {
      double acc = 0.0;
      for (int64_t j = 0; j < per; ++j) acc += s[g * per + j];
      sum[g] += acc;
    }
  }
  const double count = static_cast<double>(train.n) * static_cast<double>(per);
  Normalizer out;
  out.mean.resize(static_cast<size_t>(groups));
  out.stddev.resize(static_cast<size_t>(groups));
  std::vector<double> mean(static_cast<size_t>(groups));
  for (int64_t g = 0; g < groups; ++g) mean[g] = count > 0 ? sum[g] / count : 0.0;
  // Two passes: the variance of pixel data near 0 or 1 loses digits with the one-pass formula.
  for (int64_t i = 0; i < train.n; ++i) {
    const float* s = train.x.data() + i * ss;
    for (int64_t g = 0; g < groups; ++g) {
      double acc = 0.0;
      for (int64_t j = 0; j < per; ++j) {
        const double dv = s[g * per + j] - mean[g];
        acc += dv * dv;
      }
      sq[g] += acc;
    }
  }
  for (int64_t g = 0; g < groups; ++g) {
    const double var = count > 0 ? sq[g] / count : 0.0;
    out.mean[g] = static_cast<float>(mean[g]);
    const float sd = static_cast<float>(std::sqrt(var));
    out.stddev[g] = sd > 0.0f ? sd : 1.0f;
  }
  return out;
}

void Normalizer::apply(Dataset& data) const {
  const int64_t ss = data.sample_size();
  const int64_t hw = static_cast<int64_t>(data.h) * data.w;
  int64_t per = 0;
  if (mean.size() == static_cast<size_t>(data.c) && stddev.size() == mean.size()) {
    per = hw;
  } else if (mean.size() == static_cast<size_t>(ss) && stddev.size() == mean.size()) {
    per = 1;
  } else {
    throw ConfigError("normalizer has " + std::to_string(mean.size()) +
                      " statistics; the data set needs " + std::to_string(data.c) +
                      " (per channel) or " + std::to_string(ss) + " (per feature)");
  }
  const int64_t groups = static_cast<int64_t>(mean.size());
  std::vector<float> inv(stddev.size());
  for (size_t g = 0; g < stddev.size(); ++g) inv[g] = 1.0f / stddev[g];
  const float* mu = mean.data();
  const float* is = inv.data();
#pragma omp parallel for schedule(static) if (data.n * ss > (1 << 16))
  for (int64_t i = 0; i < data.n; ++i) {
    float* s = data.x.data() + i * ss;
    for (int64_t g = 0; g < groups; ++g) {
      const float m = mu[g], k = is[g];
      float* __restrict v = s + g * per;
      for (int64_t j = 0; j < per; ++j) v[j] = (v[j] - m) * k;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// BatchLoader

BatchLoader::BatchLoader(const Dataset& data, int batch_size, bool shuffle, uint64_t seed,
                         Augment augment, bool drop_last)
    : data_(data),
      batch_size_(batch_size),
      shuffle_(shuffle),
      seed_(seed),
      augment_(augment),
      drop_last_(drop_last),
      n_(data.n) {
  if (batch_size < 1)
    throw ConfigError("batch size must be at least 1, got " + std::to_string(batch_size));
  if (augment.pad_crop < 0) throw ConfigError("pad_crop must be >= 0");
  if (static_cast<int64_t>(data.x.size()) != data.n * data.sample_size() ||
      static_cast<int64_t>(data.y.size()) != data.n) {
    throw ConfigError("data set arrays do not match n and the sample shape");
  }
  order_.resize(static_cast<size_t>(n_));
  start_epoch(0);
}

void BatchLoader::start_epoch(int64_t epoch) {
  epoch_ = epoch;
  position_ = 0;
  std::iota(order_.begin(), order_.end(), 0);
  if (shuffle_)
    shuffle_in_place(order_, mix_seed(seed_, 0x4F52444552ULL, static_cast<uint64_t>(epoch)));
}

int64_t BatchLoader::batches_per_epoch() const {
  return drop_last_ ? n_ / batch_size_ : (n_ + batch_size_ - 1) / batch_size_;
}

BatchLoader::State BatchLoader::state() const { return State{epoch_, position_, seed_}; }

void BatchLoader::restore(const State& s) {
  if (s.seed != seed_) {
    throw ConfigError("loader state was saved with seed " + std::to_string(s.seed) +
                      ", this loader uses " + std::to_string(seed_));
  }
  if (s.position < 0 || s.position > n_) {
    throw ConfigError("loader state position " + std::to_string(s.position) + " is outside 0.." +
                      std::to_string(n_));
  }
  start_epoch(s.epoch);
  position_ = s.position;
}

void BatchLoader::copy_sample(int64_t position, int64_t index, float* dst) const {
  const int64_t ss = data_.sample_size();
  const float* src = data_.x.data() + index * ss;
  if (augment_.pad_crop == 0 && !augment_.hflip) {
    std::copy_n(src, ss, dst);
    return;
  }
  // The draws depend only on (seed, epoch, position), never on which thread copies the sample.
  SplitMix64 rng(mix_seed(seed_ ^ 0x4155474D454E54ULL, static_cast<uint64_t>(epoch_),
                          static_cast<uint64_t>(position)));
  const int pad = augment_.pad_crop;
  const int dy = static_cast<int>(rng.below(2 * static_cast<uint64_t>(pad) + 1)) - pad;
  const int dx = static_cast<int>(rng.below(2 * static_cast<uint64_t>(pad) + 1)) - pad;
  const bool flip = augment_.hflip && (rng.next() >> 63) != 0;
  const int h = data_.h, w = data_.w;
  for (int ch = 0; ch < data_.c; ++ch) {
    const float* sp = src + static_cast<int64_t>(ch) * h * w;
    float* dp = dst + static_cast<int64_t>(ch) * h * w;
    for (int i = 0; i < h; ++i) {
      const int si = i + dy;
      float* row = dp + static_cast<int64_t>(i) * w;
      if (si < 0 || si >= h) {
        std::fill_n(row, w, 0.0f);
        continue;
      }
      const float* srow = sp + static_cast<int64_t>(si) * w;
      // Crop first, then flip (torchvision's RandomCrop followed by RandomHorizontalFlip).
      for (int j = 0; j < w; ++j) {
        const int sj = (flip ? w - 1 - j : j) + dx;
        row[j] = (sj >= 0 && sj < w) ? srow[sj] : 0.0f;
      }
    }
  }
}

int64_t BatchLoader::next(float* x_out, int32_t* y_out) {
  const int64_t remaining = n_ - position_;
  int64_t count = std::min<int64_t>(batch_size_, remaining);
  if (count <= 0) return 0;
  if (drop_last_ && count < batch_size_) {
    position_ = n_;
    return 0;
  }
  const int64_t ss = data_.sample_size();
  const int64_t base = position_;
#pragma omp parallel for schedule(static) if (count * ss > (1 << 15))
  for (int64_t i = 0; i < count; ++i) {
    const int64_t idx = order_[base + i];
    copy_sample(base + i, idx, x_out + i * ss);
    y_out[i] = data_.y[idx];
  }
  position_ += count;
  return count;
}

// ---------------------------------------------------------------------------------------------
// Class selection and few-label subsets

Dataset select_classes(const Dataset& data, const std::vector<int>& classes) {
  if (classes.empty()) throw ConfigError("classes: the list is empty");
  std::map<int32_t, int32_t> to_new;
  for (size_t k = 0; k < classes.size(); ++k) {
    const int c = classes[k];
    if (c < 0 || (data.num_classes > 0 && c >= data.num_classes))
      throw ConfigError("classes: class " + std::to_string(c) + " is not in [0, " +
                        std::to_string(data.num_classes) + ")");
    if (!to_new.emplace(c, static_cast<int32_t>(k)).second)
      throw ConfigError("classes: class " + std::to_string(c) + " is listed twice");
  }
  std::vector<int64_t> keep;
  for (int64_t i = 0; i < data.n; ++i)
    if (to_new.count(data.y[i])) keep.push_back(i);
  Dataset out = gather(data, keep);
  for (auto& y : out.y) y = to_new.at(y);
  out.num_classes = static_cast<int>(classes.size());
  if (!data.class_names.empty()) {
    out.class_names.clear();
    for (int c : classes)
      out.class_names.push_back(c < static_cast<int>(data.class_names.size()) ? data.class_names[c] : "");
  }
  return out;
}

std::pair<Dataset, Dataset> take_per_class(const Dataset& data, int64_t per_class, uint64_t seed) {
  if (per_class < 1) throw ConfigError("labels per class must be >= 1, got " + std::to_string(per_class));
  std::map<int32_t, std::vector<int64_t>> by_class;
  for (int64_t i = 0; i < data.n; ++i) by_class[data.y[i]].push_back(i);
  std::vector<char> chosen(static_cast<size_t>(data.n), 0);
  for (auto& [cls, members] : by_class) {
    shuffle_in_place(members, mix_seed(seed, 0x4c504355ULL /* "LPCU" */, static_cast<uint64_t>(cls)));
    const auto k = static_cast<size_t>(std::min<int64_t>(per_class, static_cast<int64_t>(members.size())));
    for (size_t j = 0; j < k; ++j) chosen[members[j]] = 1;
  }
  std::vector<int64_t> a, b;
  for (int64_t i = 0; i < data.n; ++i) (chosen[i] ? a : b).push_back(i);
  return {gather(data, a), gather(data, b)};
}

Dataset concat(const Dataset& a, const Dataset& b) {
  if (a.n == 0 && b.n == 0) {
    Dataset out = a;
    out.num_classes = std::max(a.num_classes, b.num_classes);
    return out;
  }
  if (a.n > 0 && b.n > 0 && (a.c != b.c || a.h != b.h || a.w != b.w))
    throw ConfigError("concat: samples of " + std::to_string(a.c) + "x" + std::to_string(a.h) + "x" +
                      std::to_string(a.w) + " and " + std::to_string(b.c) + "x" + std::to_string(b.h) + "x" +
                      std::to_string(b.w) + " differ");
  Dataset out = a.n > 0 ? a : b;
  if (a.n > 0 && b.n > 0) {
    out.x.insert(out.x.end(), b.x.begin(), b.x.end());
    out.y.insert(out.y.end(), b.y.begin(), b.y.end());
    out.n = a.n + b.n;
  }
  out.num_classes = std::max(a.num_classes, b.num_classes);
  return out;
}

}  // namespace kestrel::trainer
