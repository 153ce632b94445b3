// The caching device-memory pool (free lists by size over a raw allocator).
#include "trainer/cuda/memory_pool.hpp"

#include <cuda_runtime.h>

#include <string>

#include "common/error.hpp"

namespace kestrel::trainer::cuda {

RawAllocator cuda_raw_allocator() {
  return RawAllocator{[](size_t bytes) -> void* {
                        void* p = nullptr;
                        if (cudaMalloc(&p, bytes) != cudaSuccess) {
                          (void)cudaGetLastError();  // an OOM must not poison later calls
                          return nullptr;
                        }
                        return p;
                      },
                      [](void* p) { (void)cudaFree(p); }};
}

MemoryPool::MemoryPool(RawAllocator raw) : raw_(std::move(raw)) {}

MemoryPool::~MemoryPool() {
  trim();
  for (auto& [p, size] : live_) raw_.raw_free(p);
}

void* MemoryPool::allocate(size_t bytes) {
  const size_t size = ((bytes == 0 ? 1 : bytes) + kGranule - 1) / kGranule * kGranule;
  auto it = cached_.lower_bound(size);
  if (it != cached_.end() && it->first / 2 <= size) {
    void* p = it->second;
    const size_t got = it->first;
    cached_.erase(it);
    cached_bytes_ -= got;
    live_.emplace(p, got);
    live_bytes_ += got;
    return p;
  }
  void* p = raw_.raw_alloc(size);
  if (!p && !cached_.empty()) {
    trim();
    p = raw_.raw_alloc(size);
  }
  if (!p) {
    throw TrainError("CUDA out of memory: could not allocate " + std::to_string(size >> 20) +
                     " MiB (" + std::to_string(size) + " bytes) with " +
                     std::to_string(live_bytes_ >> 20) + " MiB in use by this trial");
  }
  ++raw_allocations_;
  live_.emplace(p, size);
  live_bytes_ += size;
  return p;
}

void MemoryPool::release(void* p) {
  if (!p) return;
  auto it = live_.find(p);
  if (it == live_.end()) throw TrainError("MemoryPool::release: pointer not allocated by this pool (double free?)");
  const size_t size = it->second;
  live_.erase(it);
  live_bytes_ -= size;
  cached_.emplace(size, p);
  cached_bytes_ += size;
}

void MemoryPool::trim() {
  for (auto& [size, p] : cached_) raw_.raw_free(p);
  cached_.clear();
  cached_bytes_ = 0;
}

}  // namespace kestrel::trainer::cuda
