// A caching device-memory pool: freed blocks are kept and handed out again, so a training loop
// that frees and re-allocates the same sizes never reaches cudaMalloc after its first step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <unordered_map>

namespace kestrel::trainer::cuda {

// Raw allocation behind the pool: cudaMalloc/cudaFree for a device, malloc/free in CPU tests.
// raw_alloc returns nullptr when out of memory (it must not throw for that).
struct RawAllocator {
  std::function<void*(size_t bytes)> raw_alloc;
  std::function<void(void* p)> raw_free;
};

// The cudaMalloc/cudaFree allocator of the current device.
RawAllocator cuda_raw_allocator();

// What it represents: memory blocks owned by the pool, each either live (handed out by
// allocate()) or cached (free, kept for reuse). Sizes are rounded up to kGranule bytes; a cached
// block is reused for a request of at most its size and at least half of it (so a small request
// never pins a huge block).
// Out of memory: allocate() first returns every cached block to the raw allocator and retries;
// if that fails too it throws TrainError starting "CUDA out of memory:" with the request and the
// pool's live bytes, so the trial that asked fails alone with a reason.
// Thread safety: none (one backend, one thread).
class MemoryPool {
 public:
  static constexpr size_t kGranule = 512;

  explicit MemoryPool(RawAllocator raw);
  ~MemoryPool();  // returns every block (live ones too) to the raw allocator
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;

  // ensures: a block of at least `bytes` bytes (bytes == 0 counts as 1), kGranule-aligned when
  // the raw allocator's blocks are.
  void* allocate(size_t bytes);
  // requires: p came from allocate() of this pool and is live (nullptr is ignored).
  // throws TrainError for a pointer the pool does not own (a double free).
  void release(void* p);
  // Returns all cached blocks to the raw allocator.
  void trim();

  size_t live_bytes() const { return live_bytes_; }
  size_t cached_bytes() const { return cached_bytes_; }
  // Number of raw allocations made so far (a steady training loop leaves it unchanged).
  int64_t raw_allocations() const { return raw_allocations_; }

 private:
  RawAllocator raw_;
  std::multimap<size_t, void*> cached_;           // size -> block
  std::unordered_map<void*, size_t> live_;        // block -> size
  size_t live_bytes_ = 0, cached_bytes_ = 0;
  int64_t raw_allocations_ = 0;
};

}  // namespace kestrel::trainer::cuda
