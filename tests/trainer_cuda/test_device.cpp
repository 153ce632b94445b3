// CPU-side tests of the CUDA backend's host logic: device detection never crashes, the check
// macros throw TrainError with the library's text, file and line, and the caching memory pool
// (over a malloc-based fake allocator) reuses blocks and fails a request cleanly when memory ends.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>
#include <string>

#include "common/error.hpp"
#include "trainer/cuda/check.hpp"
#include "trainer/cuda/cuda_backend.hpp"
#include "trainer/cuda/device.hpp"
#include "trainer/cuda/memory_pool.hpp"

namespace kestrel::trainer::cuda {
namespace {

TEST(CudaDevice, DetectionAnswersWithoutThrowingAndExplainsAZero) {
  const int n = device_count();
  EXPECT_GE(n, 0);
  EXPECT_EQ(device_count(), n) << "the answer is cached";
  if (n == 0) {
    EXPECT_FALSE(no_device_reason().empty());
    EXPECT_THROW(CudaBackend{}, TrainError);
  } else {
    EXPECT_TRUE(no_device_reason().empty());
    EXPECT_FALSE(describe_device(0).empty());
  }
}

template <class F>
std::string message_of(F f) {
  try {
    f();
  } catch (const TrainError& e) {
    return e.what();
  }
  return "";
}

TEST(CudaChecks, EachMacroThrowsTrainErrorNamingTheCallFileAndLine) {
  const std::string cuda = message_of([] { KESTREL_CUDA_CHECK(cudaErrorMemoryAllocation); });
  EXPECT_EQ(cuda.rfind("CUDA out of memory:", 0), 0u) << cuda;
  EXPECT_NE(cuda.find("test_device.cpp:"), std::string::npos) << cuda;
  EXPECT_NE(cuda.find("cudaErrorMemoryAllocation"), std::string::npos) << cuda;
  const std::string cublas = message_of([] { KESTREL_CUBLAS_CHECK(CUBLAS_STATUS_NOT_INITIALIZED); });
  EXPECT_NE(cublas.find("CUBLAS_STATUS_NOT_INITIALIZED"), std::string::npos) << cublas;
  const std::string cudnn = message_of([] { KESTREL_CUDNN_CHECK(CUDNN_STATUS_BAD_PARAM); });
  EXPECT_NE(cudnn.find("cuDNN error"), std::string::npos) << cudnn;
  EXPECT_NE(cudnn.find("CUDNN_STATUS_BAD_PARAM"), std::string::npos) << cudnn;
  const std::string nccl = message_of([] { KESTREL_NCCL_CHECK(ncclInvalidArgument); });
  EXPECT_NE(nccl.find("NCCL error"), std::string::npos) << nccl;
  EXPECT_NE(nccl.find("test_device.cpp:"), std::string::npos) << nccl;
  EXPECT_EQ(message_of([] { KESTREL_CUDA_CHECK(cudaSuccess); }), "");
}

// A malloc-backed raw allocator with a byte budget, counting what it hands out.
struct FakeDevice {
  explicit FakeDevice(size_t b) : budget(b) {}
  size_t budget;
  size_t used = 0;
  int frees = 0;
  std::map<void*, size_t> blocks;
  RawAllocator allocator() {
    return RawAllocator{[this](size_t bytes) -> void* {
                          if (used + bytes > budget) return nullptr;
                          void* p = std::malloc(bytes);
                          blocks[p] = bytes;
                          used += bytes;
                          return p;
                        },
                        [this](void* p) {
                          used -= blocks.at(p);
                          blocks.erase(p);
                          ++frees;
                          std::free(p);
                        }};
  }
};

TEST(MemoryPool, ReleasedBlocksAreReusedWithoutNewRawAllocations) {
  FakeDevice dev(1 << 20);
  {
    MemoryPool pool(dev.allocator());
    void* a = pool.allocate(1000);
    void* b = pool.allocate(4000);
    EXPECT_EQ(pool.raw_allocations(), 2);
    pool.release(a);
    pool.release(b);
    // A training step that frees and re-allocates the same sizes hits the cache.
    for (int step = 0; step < 10; ++step) {
      void* x = pool.allocate(4000);
      void* y = pool.allocate(1000);
      EXPECT_TRUE((x == b && y == a)) << "step " << step;
      pool.release(x);
      pool.release(y);
    }
    EXPECT_EQ(pool.raw_allocations(), 2);
    EXPECT_EQ(pool.live_bytes(), 0u);
    EXPECT_GE(pool.cached_bytes(), 5000u);
  }
  EXPECT_EQ(dev.used, 0u) << "the pool returns everything when destroyed";
}

TEST(MemoryPool, ASmallRequestDoesNotTakeAMuchLargerCachedBlock) {
  FakeDevice dev(1 << 24);
  MemoryPool pool(dev.allocator());
  void* big = pool.allocate(1 << 20);
  pool.release(big);
  void* small = pool.allocate(1000);
  EXPECT_NE(small, big);
  EXPECT_EQ(pool.raw_allocations(), 2);
}

TEST(MemoryPool, OutOfMemoryFirstReturnsCachedBlocksThenThrowsTrainError) {
  FakeDevice dev(10000);
  MemoryPool pool(dev.allocator());
  void* a = pool.allocate(6000);
  pool.release(a);  // cached, too small to reuse for the next request
  void* b = pool.allocate(8000);  // fits only once the cache is trimmed
  EXPECT_NE(b, nullptr);
  EXPECT_EQ(pool.cached_bytes(), 0u);
  try {
    pool.allocate(5000);
    FAIL() << "expected TrainError";
  } catch (const TrainError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("CUDA out of memory:", 0), 0u) << e.what();
  }
  pool.release(b);
  EXPECT_NO_THROW(pool.allocate(5000)) << "a failed request leaves the pool usable";
}

TEST(MemoryPool, ReleasingAPointerTwiceIsRefused) {
  FakeDevice dev(1 << 20);
  MemoryPool pool(dev.allocator());
  void* a = pool.allocate(100);
  pool.release(a);
  EXPECT_THROW(pool.release(a), TrainError);
  EXPECT_NO_THROW(pool.release(nullptr));
}

}  // namespace
}  // namespace kestrel::trainer::cuda
