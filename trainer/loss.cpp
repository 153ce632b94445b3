// Loss heads: label validation, device staging of labels and targets, and the backend loss calls.
#include "trainer/loss.hpp"

#include <algorithm>

#include "common/error.hpp"

namespace kestrel::trainer {

LossKind parse_loss_kind(const std::string& name) {
  if (name == "cross_entropy" || name == "xent" || name == "ce") return LossKind::kCrossEntropy;
  if (name == "mse") return LossKind::kMse;
  throw ConfigError("unknown loss '" + name + "' (expected cross_entropy or mse)");
}

Loss::Loss(const LossSpec& spec, Backend& backend, int classes)
    : spec_(spec), backend_(&backend), classes_(classes) {
  if (classes < 1) throw TrainError("loss: the model must have at least one output");
  if (!(spec.label_smoothing >= 0.0f && spec.label_smoothing < 1.0f))
    throw ConfigError("loss: label_smoothing must be in [0, 1)");
}

Loss::~Loss() {
  if (grad_) backend_->free(grad_);
  if (target_) backend_->free(target_);
  if (labels_) backend_->free_labels(labels_);
}

void Loss::plan(int max_batch) {
  if (max_batch <= batch_) return;
  if (grad_) backend_->free(grad_);
  if (target_) backend_->free(target_);
  if (labels_) backend_->free_labels(labels_);
  const size_t count = static_cast<size_t>(max_batch) * classes_;
  grad_ = backend_->alloc(count);
  labels_ = backend_->alloc_labels(max_batch);
  target_ = spec_.kind == LossKind::kMse ? backend_->alloc(count) : nullptr;
  host_target_.assign(spec_.kind == LossKind::kMse ? count : 0, 0.0f);
  batch_ = max_batch;
}

BatchLoss Loss::compute(const float* output, const int32_t* labels, int n, bool want_grad) {
  if (n > batch_) plan(n);
  for (int i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= classes_)
      throw TrainError("label " + std::to_string(labels[i]) + " is outside the model's " +
                       std::to_string(classes_) + " outputs");
  BatchLoss r;
  if (spec_.kind == LossKind::kCrossEntropy) {
    backend_->upload_labels(labels_, labels, n);
    backend_->softmax_xent(want_grad ? grad_ : nullptr, &r.loss_sum, &r.correct, output, labels_, n,
                           classes_, spec_.label_smoothing);
    return r;
  }
  std::fill(host_target_.begin(), host_target_.begin() + static_cast<size_t>(n) * classes_, 0.0f);
  for (int i = 0; i < n; ++i) host_target_[static_cast<size_t>(i) * classes_ + labels[i]] = 1.0f;
  backend_->upload(target_, host_target_.data(), static_cast<size_t>(n) * classes_);
  backend_->mse(want_grad ? grad_ : nullptr, &r.loss_sum, output, target_, n, classes_);
  // Accuracy needs the outputs on the host; reuse the staging buffer.
  backend_->download(host_target_.data(), output, static_cast<size_t>(n) * classes_);
  for (int i = 0; i < n; ++i) {
    const float* z = host_target_.data() + static_cast<size_t>(i) * classes_;
    r.correct += (std::max_element(z, z + classes_) - z) == labels[i];
  }
  return r;
}

}  // namespace kestrel::trainer
