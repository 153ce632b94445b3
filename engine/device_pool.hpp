// GPU scheduling of trials: a pool of devices from which each trial leases gpus_per_trial GPUs at
// once (gang allocation: all or none), with trials_per_gpu trials packed on one GPU when their
// declared memory fits, and the CUDA_VISIBLE_DEVICES value for a command trial.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kestrel::engine {

// One GPU as the pool sees it: its CUDA index and its total memory (0 = unknown: memory is then
// not a limit for this device).
struct GpuInfo {
  int index = 0;
  size_t memory_bytes = 0;
};

// What one trial asks for: `gpus` devices (0 = a CPU trial, always granted at once), and how much
// memory it will use on each of them (0 = not declared: only the trials_per_gpu slots limit it).
struct DeviceRequest {
  int gpus = 1;
  size_t memory_bytes = 0;
};

// The devices granted to one trial, in ascending index order.
struct DeviceAllocation {
  std::vector<int> devices;
  size_t memory_bytes = 0;  // per device, as requested
  // "0,2": the value of CUDA_VISIBLE_DEVICES for a command trial (inside it the devices are then
  // numbered 0..n-1). Empty for a CPU trial, which hides every GPU from it.
  std::string cuda_visible_devices() const;
};

class DevicePool;

// A granted allocation that goes back to its pool when the lease is destroyed or released.
// Move-only; the pool must outlive it.
class DeviceLease {
 public:
  DeviceLease() = default;
  DeviceLease(DevicePool* pool, DeviceAllocation a) : pool_(pool), alloc_(std::move(a)) {}
  ~DeviceLease() { release(); }
  DeviceLease(DeviceLease&& o) noexcept : pool_(o.pool_), alloc_(std::move(o.alloc_)) { o.pool_ = nullptr; }
  DeviceLease& operator=(DeviceLease&& o) noexcept;
  DeviceLease(const DeviceLease&) = delete;
  DeviceLease& operator=(const DeviceLease&) = delete;

  const DeviceAllocation& allocation() const { return alloc_; }
  const std::vector<int>& devices() const { return alloc_.devices; }
  std::string cuda_visible_devices() const { return alloc_.cuda_visible_devices(); }
  bool held() const { return pool_ != nullptr; }
  // Returns the devices to the pool now (idempotent).
  void release();

 private:
  DevicePool* pool_ = nullptr;
  DeviceAllocation alloc_;
};

// What it represents: the GPUs a runner may give to trials, and which trials hold them. Each
// device has trials_per_gpu slots and (when its memory is known) a memory budget; a trial holding
// it takes one slot and its declared memory on each of its devices.
// Placement: a request takes the devices with the fewest trials first (then the most free
// memory, then the lowest index), so trials spread before they pack; the same history gives the
// same placement.
// Gang allocation: a request is granted whole or not at all; a waiting request never holds part
// of its devices (no deadlock between two multi-GPU trials).
// free_memory (optional, e.g. NVML): the device's free memory now; when set, a declared request
// is admitted on a device only if it also fits there (memory used by other processes counts).
// Thread safety: all methods may be called from any thread.
class DevicePool {
 public:
  using FreeMemoryProbe = std::function<size_t(int index)>;

  // requires: trials_per_gpu >= 1, distinct indices. throws ConfigError otherwise.
  DevicePool(std::vector<GpuInfo> gpus, int trials_per_gpu = 1, FreeMemoryProbe free_memory = {});
  // count GPUs numbered 0..count-1 with memory_bytes each (count 0: a CPU-only pool).
  static DevicePool uniform(int count, int trials_per_gpu = 1, size_t memory_bytes = 0);

  // Grants the request now or returns nullopt (nothing is held then).
  // throws ConfigError for a request no state of the pool could ever grant (more GPUs than
  // exist, more memory than a device has, negative counts), so a sweep fails before it runs.
  std::optional<DeviceLease> try_acquire(const DeviceRequest& request);
  // Waits until the request can be granted. throws as try_acquire.
  DeviceLease acquire(const DeviceRequest& request);
  // As acquire, giving up (nullopt) when `stop` returns true; it is asked whenever a lease is
  // released and every poll_ms milliseconds.
  std::optional<DeviceLease> acquire_until(const DeviceRequest& request, const std::function<bool()>& stop,
                                           int poll_ms = 100);

  int size() const { return static_cast<int>(gpus_.size()); }
  int trials_per_gpu() const { return trials_per_gpu_; }
  // Trials holding device `index` now (0 for an unknown index).
  int trials_on(int index) const;
  // Declared memory held on device `index` now.
  size_t memory_used(int index) const;

 private:
  friend class DeviceLease;
  struct Slot {
    GpuInfo gpu;
    int trials = 0;
    size_t memory = 0;
  };
  void validate(const DeviceRequest& request) const;
  std::optional<DeviceAllocation> grant_locked(const DeviceRequest& request);
  void give_back(const DeviceAllocation& a);

  std::vector<Slot> gpus_;
  int trials_per_gpu_ = 1;
  FreeMemoryProbe free_memory_;
  mutable std::mutex mu_;
  std::condition_variable released_;
};

}  // namespace kestrel::engine
