// DevicePool: gang allocation (all or none), trials_per_gpu packing admitted by declared memory,
// spreading before packing, CUDA_VISIBLE_DEVICES strings, blocking acquisition. Runs on any
// machine: the pool is given a fake device list.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "common/error.hpp"
#include "engine/device_pool.hpp"

namespace kestrel::engine {
namespace {

constexpr size_t kGiB = size_t(1) << 30;

TEST(DevicePool, GangAllocationGrantsAllRequestedGpusOrNone) {
  auto pool = DevicePool::uniform(4);
  auto a = pool.try_acquire({3, 0});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->devices().size(), 3u);
  // Only one GPU is left: a second 3-GPU trial gets nothing and holds nothing.
  EXPECT_FALSE(pool.try_acquire({3, 0}));
  int held = 0;
  for (int i = 0; i < 4; ++i) held += pool.trials_on(i);
  EXPECT_EQ(held, 3);
  auto b = pool.try_acquire({1, 0});
  ASSERT_TRUE(b);
  a->release();
  EXPECT_TRUE(pool.try_acquire({3, 0})) << "released devices are granted again";
}

TEST(DevicePool, TrialsPerGpuPacksThatManyTrialsOnOneGpu) {
  auto pool = DevicePool::uniform(1, 8);
  std::vector<DeviceLease> leases;
  for (int i = 0; i < 8; ++i) {
    auto l = pool.try_acquire({1, 0});
    ASSERT_TRUE(l) << "trial " << i;
    EXPECT_EQ(l->cuda_visible_devices(), "0");
    leases.push_back(std::move(*l));
  }
  EXPECT_FALSE(pool.try_acquire({1, 0})) << "a ninth trial must wait";
  EXPECT_EQ(pool.trials_on(0), 8);
  leases.pop_back();  // destroying a lease returns its slot
  EXPECT_TRUE(pool.try_acquire({1, 0}));
}

TEST(DevicePool, DeclaredMemoryLimitsHowManyTrialsShareAGpu) {
  auto pool = DevicePool::uniform(1, 8, 16 * kGiB);
  std::vector<DeviceLease> leases;
  while (auto l = pool.try_acquire({1, 5 * kGiB})) leases.push_back(std::move(*l));
  EXPECT_EQ(leases.size(), 3u) << "three 5 GiB trials fit in 16 GiB, a fourth does not";
  EXPECT_EQ(pool.memory_used(0), 15 * kGiB);
  EXPECT_TRUE(pool.try_acquire({1, kGiB})) << "a smaller trial still fits beside them";
}

TEST(DevicePool, AFreeMemoryProbeCanRefuseADeviceOthersAreUsing) {
  std::atomic<size_t> free0{2 * kGiB};
  DevicePool pool({{0, 80 * kGiB}, {1, 80 * kGiB}}, 4, [&](int index) { return index == 0 ? free0.load() : 80 * kGiB; });
  auto a = pool.try_acquire({1, 4 * kGiB});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->devices(), std::vector<int>{1}) << "GPU 0 has only 2 GiB free";
  EXPECT_FALSE(pool.try_acquire({2, 4 * kGiB}));
  free0 = 40 * kGiB;
  EXPECT_TRUE(pool.try_acquire({2, 4 * kGiB}));
}

TEST(DevicePool, TrialsSpreadOverIdleGpusBeforePacking) {
  auto pool = DevicePool::uniform(3, 2);
  auto a = pool.try_acquire({1, 0}), b = pool.try_acquire({1, 0}), c = pool.try_acquire({1, 0});
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(a->devices(), std::vector<int>{0});
  EXPECT_EQ(b->devices(), std::vector<int>{1});
  EXPECT_EQ(c->devices(), std::vector<int>{2});
  auto d = pool.try_acquire({2, 0});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->cuda_visible_devices(), "0,1");
}

TEST(DevicePool, CudaVisibleDevicesUsesTheRealIndicesAndIsEmptyForCpuTrials) {
  DevicePool pool({{3, 0}, {5, 0}, {7, 0}}, 1);
  auto a = pool.try_acquire({2, 0});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->cuda_visible_devices(), "3,5");
  auto cpu = pool.try_acquire({0, 0});
  ASSERT_TRUE(cpu);
  EXPECT_TRUE(cpu->devices().empty());
  EXPECT_EQ(cpu->cuda_visible_devices(), "");
  auto none = DevicePool::uniform(0);
  EXPECT_TRUE(none.try_acquire({0, 0})) << "a CPU-only machine still runs CPU trials";
}

TEST(DevicePool, RequestsNoStateCouldGrantAreRefusedUpFront) {
  auto pool = DevicePool::uniform(2, 4, 16 * kGiB);
  EXPECT_THROW(pool.try_acquire({3, 0}), ConfigError);
  EXPECT_THROW(pool.acquire({3, 0}), ConfigError) << "must not wait forever";
  EXPECT_THROW(pool.try_acquire({1, 17 * kGiB}), ConfigError);
  EXPECT_THROW(pool.try_acquire({-1, 0}), ConfigError);
  EXPECT_THROW(DevicePool::uniform(1, 0), ConfigError);
  EXPECT_THROW(DevicePool({{0, 0}, {0, 0}}), ConfigError);
}

TEST(DevicePool, AcquireWaitsForAReleaseAndThenGrants) {
  auto pool = DevicePool::uniform(2);
  auto held = pool.acquire({2, 0});
  std::atomic<bool> granted{false};
  std::vector<int> got;
  std::thread waiter([&] {
    DeviceLease l = pool.acquire({1, 0});
    got = l.devices();
    granted = true;
  });
  EXPECT_FALSE(granted.load()) << "both GPUs are held";
  held.release();
  waiter.join();
  EXPECT_TRUE(granted.load());
  EXPECT_EQ(got.size(), 1u);
  EXPECT_EQ(pool.trials_on(0) + pool.trials_on(1), 0) << "the waiter's lease was returned at scope end";
}

TEST(DevicePool, AcquireUntilGivesUpWhenStopped) {
  auto pool = DevicePool::uniform(1);
  auto held = pool.acquire({1, 0});
  int asked = 0;
  auto r = pool.acquire_until({1, 0}, [&] { return ++asked >= 3; }, 1);
  EXPECT_FALSE(r);
  EXPECT_GE(asked, 3);
}

}  // namespace
}  // namespace kestrel::engine
