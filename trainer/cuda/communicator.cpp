// Communicator implementations: replicas in threads (std::barrier, sums in rank order) and NCCL.
#include "trainer/cuda/communicator.hpp"

#include <barrier>
#include <string>

#include "common/error.hpp"
#include "trainer/cuda/check.hpp"

namespace kestrel::trainer::cuda {
namespace {

// State shared by the ranks of one thread group: each rank posts its buffer, then every rank
// reads all of them (so the sum has the same order, and bits, everywhere).
struct ThreadGroup {
  explicit ThreadGroup(int n) : world(n), sync(n), posted(n, nullptr) {}
  int world;
  std::barrier<> sync;
  std::vector<float*> posted;
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<ThreadGroup> g, int rank) : g_(std::move(g)), rank_(rank) {}
  int rank() const override { return rank_; }
  int world_size() const override { return g_->world; }

  void all_reduce_mean(float* data, size_t n) override {
    g_->posted[rank_] = data;
    g_->sync.arrive_and_wait();  // every rank has posted
    scratch_.assign(n, 0.0f);
    for (int r = 0; r < g_->world; ++r) {
      const float* src = g_->posted[r];
      for (size_t i = 0; i < n; ++i) scratch_[i] += src[i];
    }
    const float inv = 1.0f / static_cast<float>(g_->world);
    g_->sync.arrive_and_wait();  // every rank has read every buffer
    for (size_t i = 0; i < n; ++i) data[i] = scratch_[i] * inv;
    g_->sync.arrive_and_wait();  // posted[] may be reused by the next collective
  }

  void broadcast(float* data, size_t n, int root) override {
    if (root < 0 || root >= g_->world) throw TrainError("broadcast root " + std::to_string(root) + " out of range");
    if (rank_ == root) g_->posted[root] = data;
    g_->sync.arrive_and_wait();
    if (rank_ != root) std::copy(g_->posted[root], g_->posted[root] + n, data);
    g_->sync.arrive_and_wait();  // root's buffer stays untouched until everyone has copied
  }

  void barrier() override { g_->sync.arrive_and_wait(); }

 private:
  std::shared_ptr<ThreadGroup> g_;
  int rank_;
  std::vector<float> scratch_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(ncclComm_t comm, int rank, int world, int device, cudaStream_t stream)
      : comm_(comm), rank_(rank), world_(world), device_(device), stream_(stream) {}
  ~NcclCommunicator() override { ncclCommDestroy(comm_); }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }

  void all_reduce_mean(float* data, size_t n) override {
    KESTREL_CUDA_CHECK(cudaSetDevice(device_));
    KESTREL_NCCL_CHECK(ncclAllReduce(data, data, n, ncclFloat, ncclAvg, comm_, stream_));
    KESTREL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void broadcast(float* data, size_t n, int root) override {
    KESTREL_CUDA_CHECK(cudaSetDevice(device_));
    KESTREL_NCCL_CHECK(ncclBroadcast(data, data, n, ncclFloat, root, comm_, stream_));
    KESTREL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }
  void barrier() override {
    // An all-reduce of one float is NCCL's barrier.
    float* one = nullptr;
    KESTREL_CUDA_CHECK(cudaSetDevice(device_));
    KESTREL_CUDA_CHECK(cudaMallocAsync(&one, sizeof(float), stream_));
    KESTREL_NCCL_CHECK(ncclAllReduce(one, one, 1, ncclFloat, ncclSum, comm_, stream_));
    KESTREL_CUDA_CHECK(cudaFreeAsync(one, stream_));
    KESTREL_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

 private:
  ncclComm_t comm_;
  int rank_, world_, device_;
  cudaStream_t stream_;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_thread_communicators(int world_size) {
  if (world_size < 1) throw TrainError("world size must be at least 1");
  auto g = std::make_shared<ThreadGroup>(world_size);
  std::vector<std::unique_ptr<Communicator>> out;
  for (int r = 0; r < world_size; ++r) out.push_back(std::make_unique<ThreadCommunicator>(g, r));
  return out;
}

std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(const std::vector<int>& devices,
                                                                   const std::vector<CUstream_st*>& streams) {
  if (devices.empty() || devices.size() != streams.size())
    throw TrainError("make_nccl_communicators: one stream per device is required");
  std::vector<ncclComm_t> comms(devices.size());
  KESTREL_NCCL_CHECK(ncclCommInitAll(comms.data(), static_cast<int>(devices.size()), devices.data()));
  std::vector<std::unique_ptr<Communicator>> out;
  for (size_t i = 0; i < devices.size(); ++i)
    out.push_back(std::make_unique<NcclCommunicator>(comms[i], static_cast<int>(i), static_cast<int>(devices.size()),
                                                     devices[i], streams[i]));
  return out;
}

}  // namespace kestrel::trainer::cuda
