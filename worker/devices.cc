#include "worker/devices.h"

#include <torch/cuda.h>

#include <cstdio>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"

namespace autocompress::worker {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

// stdout of `command`; empty when it cannot run or fails.
std::string Run(const std::string& command) {
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen((command + " 2>/dev/null").c_str(), "r"),
                                             pclose);
  if (pipe == nullptr) return "";
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe.get())) > 0) out.append(buffer, n);
  return pclose(pipe.release()) == 0 ? out : "";
}

}  // namespace

absl::StatusOr<std::vector<GpuInfo>> ParseGpuQuery(const std::string& text) {
  std::vector<GpuInfo> gpus;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    ++line_number;
    std::vector<std::string> fields = absl::StrSplit(line, ',');
    for (std::string& f : fields) f = std::string(absl::StripAsciiWhitespace(f));
    GpuInfo gpu;
    int64_t total_mib = 0, free_mib = 0;
    if (fields.size() != 5 || !absl::SimpleAtoi(fields[0], &gpu.index) ||
        !absl::SimpleAtoi(fields[2], &total_mib) || !absl::SimpleAtoi(fields[3], &free_mib)) {
      return absl::InvalidArgumentError(absl::StrCat("nvidia-smi line ", line_number,
                                                     ": expected index, name, total MiB, "
                                                     "free MiB, uuid; got '",
                                                     line, "'"));
    }
    gpu.name = fields[1];
    gpu.total_bytes = total_mib * kMiB;
    gpu.free_bytes = free_mib * kMiB;
    gpu.uuid = fields[4];
    gpus.push_back(gpu);
  }
  return gpus;
}

std::set<std::string> ParseComputeApps(const std::string& text) {
  std::set<std::string> uuids;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    uuids.insert(std::string(absl::StripAsciiWhitespace(line)));
  }
  return uuids;
}

std::map<int, int64_t> ParseComputeAppMemory(const std::string& text) {
  std::map<int, int64_t> bytes;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ',');
    int pid = 0;
    int64_t mib = 0;
    if (fields.size() == 2 && absl::SimpleAtoi(absl::StripAsciiWhitespace(fields[0]), &pid) &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(fields[1]), &mib)) {
      bytes[pid] += mib * kMiB;
    }
  }
  return bytes;
}

std::map<int, int64_t> GpuMemoryByProcess() {
  return ParseComputeAppMemory(
      Run("nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits"));
}

std::vector<GpuInfo> QueryGpus() {
  const std::string out =
      Run("nvidia-smi --query-gpu=index,name,memory.total,memory.free,uuid "
          "--format=csv,noheader,nounits");
  absl::StatusOr<std::vector<GpuInfo>> gpus = ParseGpuQuery(out);
  if (!gpus.ok()) {
    LOG(WARNING) << "service=worker event=gpu_query_failed error=\"" << gpus.status() << "\"";
    return {};
  }
  return *gpus;
}

std::set<std::string> BusyGpuUuids() {
  return ParseComputeApps(Run("nvidia-smi --query-compute-apps=gpu_uuid --format=csv,noheader"));
}

int CudaDeviceCount() { return static_cast<int>(torch::cuda::device_count()); }

std::vector<v1::Device> DiscoverDevices(const DeviceOptions& options) {
  std::vector<v1::Device> devices;
  const std::vector<GpuInfo> gpus = QueryGpus();
  const int usable = gpus.empty() ? 0 : CudaDeviceCount();
  if (!gpus.empty() && usable != static_cast<int>(gpus.size())) {
    LOG(WARNING) << "service=worker event=gpus_unusable nvidia_smi=" << gpus.size()
                 << " libtorch_cuda=" << usable << " (a CPU-only LibTorch offers no GPU)";
  }
  const std::set<std::string> busy = usable > 0 ? BusyGpuUuids() : std::set<std::string>{};
  for (const GpuInfo& gpu : gpus) {
    if (gpu.index >= usable) continue;
    if (busy.count(gpu.uuid) > 0 && !options.use_active_gpu) {
      LOG(INFO) << "service=worker event=gpu_skipped device=cuda:" << gpu.index
                << " reason=\"another process uses it; --use_active_gpu offers it\"";
      continue;
    }
    v1::Device& device = devices.emplace_back();
    device.set_name(absl::StrCat("cuda:", gpu.index));
    device.set_model(gpu.name);
    device.set_memory_bytes(gpu.total_bytes);
    device.set_free_memory_bytes(gpu.free_bytes);
    device.set_slots(options.gpu_slots);
  }
  const int cpu_slots = options.cpu_slots >= 0 ? options.cpu_slots : (devices.empty() ? 1 : 0);
  if (cpu_slots > 0) {
    v1::Device& cpu = devices.emplace_back();
    cpu.set_name("cpu");
    cpu.set_slots(cpu_slots);
  }
  return devices;
}

std::vector<v1::DeviceStatus> GpuStatus(const std::vector<v1::Device>& offered) {
  std::vector<v1::DeviceStatus> status;
  bool any_gpu = false;
  for (const v1::Device& d : offered) any_gpu |= d.name() != "cpu";
  if (!any_gpu) return status;
  for (const GpuInfo& gpu : QueryGpus()) {
    const std::string name = absl::StrCat("cuda:", gpu.index);
    for (const v1::Device& d : offered) {
      if (d.name() != name) continue;
      v1::DeviceStatus& s = status.emplace_back();
      s.set_name(name);
      s.set_free_memory_bytes(gpu.free_bytes);
    }
  }
  return status;
}

}  // namespace autocompress::worker
