// Training losses on a Backend: softmax cross-entropy (with label smoothing) and mean squared error.
// One object per model holds the device-side labels, targets and output gradient.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainer/backend.hpp"

namespace kestrel::trainer {

enum class LossKind { kCrossEntropy, kMse };

// cross_entropy: mean over the batch of -sum_k q_k log softmax(z)_k with q = (1 - s) one-hot + s / K
//   (PyTorch's CrossEntropyLoss(label_smoothing = s)).
// mse: mean over batch and outputs of (z - t)^2 with t the one-hot encoding of the label
//   (PyTorch's MSELoss against one_hot targets), for classification data sets.
struct LossSpec {
  LossKind kind = LossKind::kCrossEntropy;
  float label_smoothing = 0.0f;
};
LossKind parse_loss_kind(const std::string& name);  // "cross_entropy" | "mse"; ConfigError otherwise

// Loss and hit count of one batch (sums, so epochs add them up exactly).
struct BatchLoss {
  double loss_sum = 0.0;  // sum over samples of the per-sample loss
  int64_t correct = 0;    // samples whose argmax output equals the label
};

// What it represents: the loss head of a classifier with `classes` outputs, with buffers for up to
// max_batch samples (plan() grows them; compute() never allocates).
// Thread safety: none. The backend must outlive it.
class Loss {
 public:
  Loss(const LossSpec& spec, Backend& backend, int classes);
  ~Loss();
  Loss(const Loss&) = delete;
  Loss& operator=(const Loss&) = delete;

  void plan(int max_batch);
  // requires: 1 <= n <= planned batch; output is n x classes backend memory; labels (host) in
  //   [0, classes) (else TrainError naming the bad label).
  // ensures: grad() holds d(mean loss)/d(output) when want_grad.
  BatchLoss compute(const float* output, const int32_t* labels, int n, bool want_grad);
  const float* grad() const { return grad_; }

 private:
  LossSpec spec_;
  Backend* backend_;
  int classes_;
  int batch_ = 0;
  float* grad_ = nullptr;
  int32_t* labels_ = nullptr;
  float* target_ = nullptr;            // MSE one-hot targets (device)
  std::vector<float> host_target_;     // MSE staging, and output copy for its argmax
};

}  // namespace kestrel::trainer
