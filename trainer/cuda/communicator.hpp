// Collective communication between data-parallel replicas: one interface, a CPU implementation
// (replicas as threads of one process, for tests and CPU training) and an NCCL one (one GPU per
// replica), as flashlight splits its distributed backend into cpu/ and cuda/.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

struct CUstream_st;
struct ncclComm;

namespace kestrel::trainer::cuda {

// What it represents: this replica's membership in a group of world_size() replicas, ranked
// 0..world_size()-1. Collectives must be called by every rank of the group in the same order
// with the same n (the usual MPI/NCCL rule); each call returns once this rank's result is ready.
// Memory: `data` is memory of the replica's backend (host memory for the thread communicator,
// device memory for NCCL).
// Thread safety: one thread per rank object.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // data = the mean over ranks of data (every rank ends with the same values). Averaging the
  // ranks' mean-loss gradients gives the gradient of the global batch's mean loss when every rank
  // has the same local batch size.
  virtual void all_reduce_mean(float* data, size_t n) = 0;
  // data = root's data on every rank (initial weights, so every replica starts the same).
  virtual void broadcast(float* data, size_t n, int root) = 0;
  virtual void barrier() = 0;
};

// world_size communicators whose ranks are meant to run in world_size threads of this process
// (rank i = element i). Sums are taken in rank order, so results do not depend on timing.
// requires: world_size >= 1; host memory.
std::vector<std::unique_ptr<Communicator>> make_thread_communicators(int world_size);

// One NCCL communicator per listed device for a single-process group (ncclCommInitAll); rank i
// uses devices[i] and runs its collectives on streams[i] (e.g. CudaBackend::stream()).
// Multi-process groups would exchange the ncclUniqueId through the store or MPI (not built yet).
// throws TrainError (KESTREL_NCCL_CHECK) when NCCL cannot start, e.g. without a device.
std::vector<std::unique_ptr<Communicator>> make_nccl_communicators(const std::vector<int>& devices,
                                                                   const std::vector<CUstream_st*>& streams);

}  // namespace kestrel::trainer::cuda
