// The devices a worker offers: CUDA GPUs found at run time and the CPU.
//
// GPUs are listed by `nvidia-smi` (name, total and free memory, and whether another
// process computes on them), which needs no CUDA library at build time, and kept only
// when this process's LibTorch sees as many CUDA devices (a CPU-only LibTorch sees none,
// and then no GPU is offered). A GPU other processes already use is offered only with
// `use_active_gpu`, like NNI's local training service.
#ifndef AUTOCOMPRESS_WORKER_DEVICES_H_
#define AUTOCOMPRESS_WORKER_DEVICES_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "autocompress/v1/common.pb.h"
#include "autocompress/v1/worker.pb.h"

namespace autocompress::worker {

struct GpuInfo {
  int index = 0;
  std::string name;
  int64_t total_bytes = 0;
  int64_t free_bytes = 0;
  std::string uuid;
};

// Parses `nvidia-smi --query-gpu=index,name,memory.total,memory.free,uuid
// --format=csv,noheader,nounits` (memory in MiB). InvalidArgument naming the line.
absl::StatusOr<std::vector<GpuInfo>> ParseGpuQuery(const std::string& text);
// Parses `nvidia-smi --query-compute-apps=gpu_uuid --format=csv,noheader`: the GPUs
// some process computes on.
std::set<std::string> ParseComputeApps(const std::string& text);

// Parses `nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits`
// (MiB): bytes of GPU memory by process id, summed over the process's GPUs.
std::map<int, int64_t> ParseComputeAppMemory(const std::string& text);
// GPU memory each process uses now; empty where nvidia-smi is absent.
std::map<int, int64_t> GpuMemoryByProcess();

// Reads the GPUs now; an empty list where nvidia-smi is absent or fails.
std::vector<GpuInfo> QueryGpus();
// GPUs with a compute process on them now.
std::set<std::string> BusyGpuUuids();
// CUDA devices this process's LibTorch can use.
int CudaDeviceCount();

struct DeviceOptions {
  int gpu_slots = 1;            // trials per GPU
  bool use_active_gpu = false;  // offer GPUs other processes use
  int cpu_slots = -1;           // -1: 1 when no GPU is offered, else 0
};

// The devices to offer in WorkerHello ("cuda:N" ..., then "cpu" when it has slots).
std::vector<v1::Device> DiscoverDevices(const DeviceOptions& options);

// Free memory of every offered GPU now, for heartbeats.
std::vector<v1::DeviceStatus> GpuStatus(const std::vector<v1::Device>& offered);

}  // namespace autocompress::worker

#endif  // AUTOCOMPRESS_WORKER_DEVICES_H_
