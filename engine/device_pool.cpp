// The GPU pool of the runner: gang allocation of gpus_per_trial devices, trials_per_gpu packing
// admitted by declared memory, CUDA_VISIBLE_DEVICES strings.
#include "engine/device_pool.hpp"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <set>

#include "common/error.hpp"

namespace kestrel::engine {

std::string DeviceAllocation::cuda_visible_devices() const {
  std::string s;
  for (size_t i = 0; i < devices.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(devices[i]);
  }
  return s;
}

DeviceLease& DeviceLease::operator=(DeviceLease&& o) noexcept {
  if (this != &o) {
    release();
    pool_ = o.pool_;
    alloc_ = std::move(o.alloc_);
    o.pool_ = nullptr;
  }
  return *this;
}

void DeviceLease::release() {
  if (pool_) pool_->give_back(alloc_);
  pool_ = nullptr;
}

DevicePool::DevicePool(std::vector<GpuInfo> gpus, int trials_per_gpu, FreeMemoryProbe free_memory)
    : trials_per_gpu_(trials_per_gpu), free_memory_(std::move(free_memory)) {
  if (trials_per_gpu < 1) throw ConfigError("trials_per_gpu must be at least 1 (got " + std::to_string(trials_per_gpu) + ")");
  std::set<int> seen;
  for (const auto& g : gpus) {
    if (g.index < 0 || !seen.insert(g.index).second)
      throw ConfigError("GPU index " + std::to_string(g.index) + " is negative or listed twice");
    gpus_.push_back(Slot{g, 0, 0});
  }
}

DevicePool DevicePool::uniform(int count, int trials_per_gpu, size_t memory_bytes) {
  std::vector<GpuInfo> gpus;
  for (int i = 0; i < count; ++i) gpus.push_back(GpuInfo{i, memory_bytes});
  return DevicePool(std::move(gpus), trials_per_gpu);
}

void DevicePool::validate(const DeviceRequest& r) const {
  if (r.gpus < 0) throw ConfigError("gpus_per_trial must not be negative (got " + std::to_string(r.gpus) + ")");
  if (r.gpus > size())
    throw ConfigError("gpus_per_trial is " + std::to_string(r.gpus) + " but only " + std::to_string(size()) +
                      " GPU(s) are available");
  if (r.gpus == 0 || r.memory_bytes == 0) return;
  // Enough devices must be able to hold the declared memory at all.
  int fit = 0;
  for (const auto& s : gpus_) fit += s.gpu.memory_bytes == 0 || r.memory_bytes <= s.gpu.memory_bytes;
  if (fit < r.gpus)
    throw ConfigError("a trial declares " + std::to_string(r.memory_bytes >> 20) + " MiB per GPU, more than " +
                      std::to_string(r.gpus) + " of the GPUs have");
}

std::optional<DeviceAllocation> DevicePool::grant_locked(const DeviceRequest& r) {
  DeviceAllocation a;
  a.memory_bytes = r.memory_bytes;
  if (r.gpus == 0) return a;
  std::vector<size_t> order(gpus_.size());
  std::iota(order.begin(), order.end(), 0);
  auto free_of = [&](const Slot& s) {
    return s.gpu.memory_bytes == 0 ? SIZE_MAX : s.gpu.memory_bytes - s.memory;
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    const Slot &a1 = gpus_[x], &b1 = gpus_[y];
    if (a1.trials != b1.trials) return a1.trials < b1.trials;
    if (free_of(a1) != free_of(b1)) return free_of(a1) > free_of(b1);
    return a1.gpu.index < b1.gpu.index;
  });
  std::vector<size_t> chosen;
  for (size_t i : order) {
    const Slot& s = gpus_[i];
    if (s.trials >= trials_per_gpu_) continue;
    if (r.memory_bytes > 0) {
      if (s.gpu.memory_bytes != 0 && s.memory + r.memory_bytes > s.gpu.memory_bytes) continue;
      if (free_memory_ && free_memory_(s.gpu.index) < r.memory_bytes) continue;
    }
    chosen.push_back(i);
    if (static_cast<int>(chosen.size()) == r.gpus) break;
  }
  if (static_cast<int>(chosen.size()) < r.gpus) return std::nullopt;  // all or none
  for (size_t i : chosen) {
    gpus_[i].trials += 1;
    gpus_[i].memory += r.memory_bytes;
    a.devices.push_back(gpus_[i].gpu.index);
  }
  std::sort(a.devices.begin(), a.devices.end());
  return a;
}

std::optional<DeviceLease> DevicePool::try_acquire(const DeviceRequest& request) {
  validate(request);
  std::lock_guard<std::mutex> lock(mu_);
  auto a = grant_locked(request);
  if (!a) return std::nullopt;
  return DeviceLease(this, std::move(*a));
}

DeviceLease DevicePool::acquire(const DeviceRequest& request) {
  validate(request);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (auto a = grant_locked(request)) return DeviceLease(this, std::move(*a));
    released_.wait(lock);
  }
}

std::optional<DeviceLease> DevicePool::acquire_until(const DeviceRequest& request,
                                                     const std::function<bool()>& stop, int poll_ms) {
  validate(request);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    if (auto a = grant_locked(request)) return DeviceLease(this, std::move(*a));
    if (stop && stop()) return std::nullopt;
    // A free-memory probe can change without a release, hence the timed wait.
    released_.wait_for(lock, std::chrono::milliseconds(std::max(1, poll_ms)));
  }
}

void DevicePool::give_back(const DeviceAllocation& a) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int index : a.devices)
      for (auto& s : gpus_)
        if (s.gpu.index == index) {
          s.trials -= 1;
          s.memory -= a.memory_bytes;
        }
  }
  released_.notify_all();
}

int DevicePool::trials_on(int index) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : gpus_)
    if (s.gpu.index == index) return s.trials;
  return 0;
}

size_t DevicePool::memory_used(int index) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& s : gpus_)
    if (s.gpu.index == index) return s.memory;
  return 0;
}

}  // namespace kestrel::engine
