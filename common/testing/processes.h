// What tests that start processes check about them, read from /proc: a process's
// children, its start time, memory and CPU time, and whether it is gone (exited; a zombie that
// nobody reaps, as under an init that does not reap in a container, counts as gone).
#ifndef AUTOCOMPRESS_COMMON_TESTING_PROCESSES_H_
#define AUTOCOMPRESS_COMMON_TESTING_PROCESSES_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace autocompress::testing {

// The processes whose parent is `parent` now.
std::vector<pid_t> ChildrenOf(pid_t parent);
// Exited, or a zombie.
bool ProcessGone(pid_t pid);
// When `pid` started, in clock ticks since boot; UINT64_MAX when it is not there.
uint64_t ProcessStartTime(pid_t pid);
// Its command line with NULs as spaces; empty when it is not there.
std::string ProcessCommandLine(pid_t pid);
// A memory field of /proc/<pid>/status in MiB ("VmRSS": resident now, "VmHWM": its
// peak); -1 when the process or the field is not there.
double ProcessMemoryMiB(pid_t pid, const std::string& field);
// CPU time it used, user and system, in seconds; 0 when it is not there.
double ProcessCpuSeconds(pid_t pid);

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_COMMON_TESTING_PROCESSES_H_
