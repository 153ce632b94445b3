// Data sets for the trainer: IDX (plain or gzip) and CSV readers, split, subset, normalization,
// and a deterministic, resumable mini-batch loader with crop/flip augmentation.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace kestrel::trainer {

// What it represents: n labelled samples, float32, NCHW, stored contiguously (sample i occupies
// x[i*c*h*w, (i+1)*c*h*w)). Labels are class indices in [0, num_classes). A CSV table is stored
// with c = 1, h = 1, w = number of feature columns. class_names is filled when labels came from
// text (CSV with non-integer labels): class_names[k] is the text of class k; it is empty otherwise.
// A plain value type: copying copies the data; no thread safety beyond that of std::vector.
struct Dataset {
  std::vector<float> x;
  std::vector<int32_t> y;
  int64_t n = 0;
  int c = 0, h = 0, w = 0;
  int num_classes = 0;
  std::vector<std::string> class_names;

  // Floats per sample (c*h*w).
  int64_t sample_size() const { return static_cast<int64_t>(c) * h * w; }
};

// Reads an IDX image file (magic 0x00000803, u8 pixels, dims n,h,w or n,c,h,w as 0x00000804)
// and an IDX label file (magic 0x00000801, u8 labels). Each file may be plain or gzip
// (zlib's gzopen reads both transparently).
// requires: limit < 0 (all samples) or limit >= 0 (at most that many, read from the front).
// ensures: pixels scaled to [0,1] (byte / 255); c = 1 for 3-dimensional image files;
//          num_classes = max label + 1 (at least 1 when n > 0).
// throws DataError naming the file and what is wrong: missing, wrong magic, wrong element type,
//        truncated (fewer bytes than the header promises), image and label counts disagree.
Dataset load_idx(const std::string& images, const std::string& labels, int64_t limit = -1);

// Where Debian's dataset-fashion-mnist package installs the four gzipped IDX files.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Loads Fashion-MNIST (or MNIST, the file names are the same) from dir:
// train-{images-idx3,labels-idx1}-ubyte[.gz] when train, t10k-... otherwise. The .gz name is
// tried first, then the plain one. num_classes is set to 10 even for a limited read.
// throws DataError as load_idx, or when neither file name exists.
Dataset load_fashion_mnist(const std::string& dir = kFashionMnistDir, bool train = true,
                           int64_t limit = -1);

// How to read a CSV table. Defaults: comma separated, first line is a header.
struct CsvOptions {
  char delimiter = ',';
  bool header = true;
  int64_t limit = -1;  // at most this many data rows (< 0: all)
};

// Reads a CSV table of numeric features and one label column.
// label_column: a header name when options.header, or a 0-based column index written as text
//   ("3"); an empty string means the last column.
// Labels: when every label cell is a non-negative integer the integers are the classes
//   (num_classes = max + 1); otherwise the distinct label texts, sorted, become classes 0..k-1
//   and are kept in class_names. Empty lines are skipped; cells may be quoted with ".
// throws DataError naming the file, the 1-based line and the column (name or index) of the first
//   bad cell (not a finite number, missing, or a row with the wrong number of cells), or when the
//   label column does not exist or the file has no data rows.
Dataset load_csv(const std::string& path, const std::string& label_column = "",
                 const CsvOptions& options = {});

// Splits into (train, validation) by a seeded random permutation; the validation set gets
// round(n * validation_fraction) samples (per class when stratify, so class proportions are kept).
// Within each part samples keep their original relative order.
// requires: 0 <= validation_fraction < 1 (else ConfigError).
// ensures: the same (data, fraction, seed, stratify) gives the same split on every machine.
std::pair<Dataset, Dataset> split(const Dataset& data, double validation_fraction, uint64_t seed,
                                  bool stratify = false);

// A seeded random subset of n samples (all of them when n >= data.n), in original relative order.
Dataset subset(const Dataset& data, int64_t n, uint64_t seed);

// Which statistics a Normalizer keeps.
enum class NormalizeMode {
  kPerChannel,  // one mean and stddev per channel (images)
  kPerFeature,  // one per element of a sample (tables: each column its own scale)
};

// What it represents: an affine map x -> (x - mean) / stddev, fit on a training set and applied
// unchanged to any other set of the same shape (validation, test). mean.size() is c (per channel)
// or c*h*w (per feature). stddev is the population standard deviation; a zero stddev is stored
// as 1 so constant channels pass through centred instead of dividing by zero.
struct Normalizer {
  std::vector<float> mean, stddev;

  static Normalizer fit(const Dataset& train, NormalizeMode mode = NormalizeMode::kPerChannel);
  // requires: mean.size() equals data.c or data.sample_size() (else ConfigError).
  void apply(Dataset& data) const;
};

// Augmentation applied by the BatchLoader to each sample it copies out. Both are off by default.
struct Augment {
  int pad_crop = 0;    // pad each side by this many zeros, then take a random h x w crop
  bool hflip = false;  // flip horizontally with probability 1/2
};

// What it represents: a cursor over one Dataset that hands out mini-batches of samples in a
// seeded order, epoch after epoch, with optional augmentation.
// Determinism: the order of epoch e is a pure function of (seed, e); the crop offset and flip of
// the sample at position p of epoch e are a pure function of (seed, e, p). Hence the same seed
// gives the same batches on any machine and any thread count, and state() / restore() resumes
// exactly in the middle of an epoch.
// Ownership: keeps a reference to data, which must outlive the loader and not change size.
// Thread safety: none; one loader per consumer. next() never allocates.
class BatchLoader {
 public:
  // requires: batch_size >= 1, augment.pad_crop >= 0 (else ConfigError).
  // ensures: positioned at the start of epoch 0.
  BatchLoader(const Dataset& data, int batch_size, bool shuffle, uint64_t seed,
              Augment augment = {}, bool drop_last = false);

  // Copies up to batch_size samples into caller-owned buffers: x_out must hold
  // batch_size * data.sample_size() floats, y_out batch_size labels.
  // returns the number of samples written; 0 once the epoch is exhausted (the last partial
  // batch is skipped when drop_last). Keeps returning 0 until start_epoch is called.
  int64_t next(float* x_out, int32_t* y_out);

  // Positions the loader at the start of the given epoch (any epoch, in any order).
  void start_epoch(int64_t epoch);

  // Everything needed to resume: the epoch, the next position within it, and the seed (checked
  // on restore so a checkpoint from another run is refused with ConfigError).
  struct State {
    int64_t epoch = 0;
    int64_t position = 0;
    uint64_t seed = 0;
  };
  State state() const;
  void restore(const State& s);

  int64_t epoch() const { return epoch_; }
  int batch_size() const { return batch_size_; }
  int64_t size() const { return n_; }
  // Batches next() will return in one epoch (counting a final partial batch unless drop_last).
  int64_t batches_per_epoch() const;

 private:
  void copy_sample(int64_t position, int64_t index, float* dst) const;

  const Dataset& data_;
  int batch_size_;
  bool shuffle_;
  uint64_t seed_;
  Augment augment_;
  bool drop_last_;
  int64_t n_;
  int64_t epoch_ = 0;
  int64_t position_ = 0;
  std::vector<int64_t> order_;  // sample indices of the current epoch
};

// A small, portable random number generator (SplitMix64). The standard distributions are
// implementation-defined, so data order would differ between standard libraries; this one does
// not. Exposed so other parts of the trainer can derive reproducible streams from a seed.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound) without modulo bias (Lemire's method with rejection). bound >= 1.
  uint64_t below(uint64_t bound);
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// Mixes several words into one seed (for deriving independent streams such as (seed, epoch)).
uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0);

// Fisher-Yates shuffle of 0..n-1 driven by SplitMix64(seed); identical on every platform.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

// ---- class selection and few-label subsets (transfer learning, pseudo-labeling)

// The samples whose label is one of classes, relabelled to its position in classes (classes[k]
// becomes k), in original order; num_classes = classes.size() (class_names follow when present).
// throws ConfigError for an empty list, a repeated class, or a class outside [0, num_classes).
Dataset select_classes(const Dataset& data, const std::vector<int>& classes);

// Splits into (chosen, rest): chosen holds per_class seeded-random samples of each class (all of a
// class that has fewer), rest the others; both keep the original relative order. The choice of a
// class depends only on (its members, seed), so it is the same on every machine.
// requires: per_class >= 1 (else ConfigError).
std::pair<Dataset, Dataset> take_per_class(const Dataset& data, int64_t per_class, uint64_t seed);

// a's samples followed by b's; num_classes is the larger of the two. An empty side is allowed.
// throws ConfigError when both are non-empty and their sample shapes differ.
Dataset concat(const Dataset& a, const Dataset& b);

}  // namespace kestrel::trainer
