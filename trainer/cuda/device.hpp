// Device detection for the CUDA backend: one cudaGetDeviceCount at first use, any error meaning
// "no GPU, use the CPU" (with a one-line notice on stderr), never a crash.
#pragma once

#include <string>

namespace kestrel::trainer::cuda {

// Number of usable CUDA devices. The first call asks the runtime once (thread-safe) and caches
// the answer; every CUDA error there (no driver: cudaErrorInsufficientDriver 35 on machines with
// the toolkit but no GPU; no device: 100) yields 0 and prints one notice line to stderr.
// ensures: never throws, never aborts.
int device_count();

// Why device_count() is 0, in one line ("" when devices exist), e.g. for a test's GTEST_SKIP.
std::string no_device_reason();

// One line describing device `index` ("NVIDIA H200, sm_90, 139.8 GiB, driver 13.0"), or the
// reason it cannot be described. requires: 0 <= index < device_count() for a description.
std::string describe_device(int index);

}  // namespace kestrel::trainer::cuda
