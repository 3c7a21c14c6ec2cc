#include "tests/faults/test_network.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/testing/command_output.h"

namespace autocompress::testing {
namespace {

constexpr char kIp[] = "/usr/sbin/ip";

// Runs `ip ARGS` and returns its output; the error carries what it printed.
absl::StatusOr<std::string> Ip(const std::string& args) {
  return CommandOutput(absl::StrCat(kIp, " ", args, " 2>&1"));
}

bool Alive(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

// The pid in a name "acf<pid>..." ("acf123-worker-1", "acf123br"); 0 for other names.
pid_t OwnerOf(const std::string& name) {
  if (name.rfind("acf", 0) != 0) return 0;
  size_t end = 3;
  while (end < name.size() && absl::ascii_isdigit(name[end])) ++end;
  int pid = 0;
  return absl::SimpleAtoi(name.substr(3, end - 3), &pid) ? pid : 0;
}

// SIGKILLs every process still in namespace `ns`, then deletes it.
void DeleteNamespace(const std::string& ns) {
  if (auto pids = Ip(absl::StrCat("netns pids ", ns)); pids.ok()) {
    for (absl::string_view word :
         absl::StrSplit(*pids, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
      int pid = 0;
      if (absl::SimpleAtoi(word, &pid) && pid > 1) kill(pid, SIGKILL);
    }
  }
  (void)Ip(absl::StrCat("netns delete ", ns));
}

// Deletes namespaces (and what still runs in them) and bridges of runs whose process
// is gone.
void RemoveLeftovers() {
  if (auto list = Ip("netns list"); list.ok()) {
    for (absl::string_view line : absl::StrSplit(*list, '\n', absl::SkipEmpty())) {
      const std::string name(line.substr(0, line.find(' ')));
      if (pid_t owner = OwnerOf(name); owner > 0 && !Alive(owner)) DeleteNamespace(name);
    }
  }
  if (auto links = Ip("-o link show type bridge"); links.ok()) {
    for (absl::string_view line : absl::StrSplit(*links, '\n', absl::SkipEmpty())) {
      std::vector<std::string> fields =
          absl::StrSplit(line, absl::ByAnyChar(": "), absl::SkipEmpty());
      if (fields.size() < 2) continue;
      if (pid_t owner = OwnerOf(fields[1]); owner > 0 && !Alive(owner)) {
        (void)Ip(absl::StrCat("link delete ", fields[1]));
      }
    }
  }
}

// A /24 under 10.213.0.0/16 that no interface here uses yet.
absl::StatusOr<int> FreeSubnet() {
  absl::StatusOr<std::string> addresses = Ip("-o -4 addr show");
  if (!addresses.ok()) return addresses.status();
  const int first = static_cast<int>(getpid() % 250) + 1;
  for (int i = 0; i < 250; ++i) {
    const int subnet = (first + i) % 250 + 1;
    if (addresses->find(absl::StrCat("10.213.", subnet, ".")) == std::string::npos) return subnet;
  }
  return absl::ResourceExhaustedError("every 10.213.X.0/24 is in use");
}

}  // namespace

absl::StatusOr<std::unique_ptr<TestNetwork>> TestNetwork::Create(
    const std::vector<std::string>& hosts) {
  if (hosts.empty() || hosts.size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat("1 to 64 hosts, got ", hosts.size()));
  }
  for (const std::string& host : hosts) {
    const bool valid =
        !host.empty() && host.size() <= 20 && std::all_of(host.begin(), host.end(), [](char c) {
          return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-';
        });
    if (!valid) return absl::InvalidArgumentError(absl::StrCat("bad host name '", host, "'"));
  }
  std::unique_ptr<TestNetwork> network(new TestNetwork());
  network->prefix_ = absl::StrCat("acf", getpid());
  RemoveLeftovers();
  auto loopback = [&](std::string why) {
    network->fallback_reason_ = absl::StrCat(why, ": every host runs on 127.0.0.1");
    for (const std::string& host : hosts) network->address_of_[host] = "127.0.0.1";
    return std::move(network);
  };
  if (const char* forced = std::getenv("AUTOCOMPRESS_FAULTS_LOOPBACK");
      forced != nullptr && *forced != '\0') {
    return loopback("AUTOCOMPRESS_FAULTS_LOOPBACK is set");
  }
  const std::string probe = network->prefix_ + "-probe";
  if (absl::StatusOr<std::string> added = Ip(absl::StrCat("netns add ", probe)); !added.ok()) {
    return loopback(
        absl::StrCat("network namespaces are not permitted here (", added.status().message(), ")"));
  }
  (void)Ip(absl::StrCat("netns delete ", probe));
  network->namespaces_ = true;
  if (absl::Status built = network->Build(hosts); !built.ok()) {
    network->TearDown();
    return built;
  }
  return network;
}

absl::Status TestNetwork::Build(const std::vector<std::string>& hosts) {
  absl::StatusOr<int> subnet = FreeSubnet();
  if (!subnet.ok()) return subnet.status();
  const std::string net = absl::StrCat("10.213.", *subnet, ".");
  bridge_ = prefix_ + "br";
  for (const std::string& step : {absl::StrCat("link add ", bridge_, " type bridge"),
                                  absl::StrCat("addr add ", net, "1/24 dev ", bridge_),
                                  absl::StrCat("link set ", bridge_, " up")}) {
    if (auto done = Ip(step); !done.ok()) return done.status();
  }
  for (size_t i = 0; i < hosts.size(); ++i) {
    const std::string ns = absl::StrCat(prefix_, "-", hosts[i]);
    const std::string veth = absl::StrCat(prefix_, "v", i);
    const std::string address = absl::StrCat(net, i + 2);
    namespace_of_[hosts[i]] = ns;
    veths_.push_back(veth);
    address_of_[hosts[i]] = address;
    for (const std::string& step :
         {absl::StrCat("netns add ", ns),
          absl::StrCat("link add ", veth, " type veth peer name eth0 netns ", ns),
          absl::StrCat("link set ", veth, " master ", bridge_, " up"),
          absl::StrCat("-n ", ns, " addr add ", address, "/24 dev eth0"),
          absl::StrCat("-n ", ns, " link set eth0 up"),
          absl::StrCat("-n ", ns, " link set lo up")}) {
      if (auto done = Ip(step); !done.ok()) return done.status();
    }
  }
  return absl::OkStatus();
}

void TestNetwork::TearDown() {
  // Veths first: deleting one end deletes both at once, while a namespace's own go only
  // when the kernel has let go of it, which may be after the next network wants the names.
  for (const std::string& veth : veths_) (void)Ip(absl::StrCat("link delete ", veth));
  veths_.clear();
  for (const auto& [host, ns] : namespace_of_) DeleteNamespace(ns);
  if (!bridge_.empty()) (void)Ip(absl::StrCat("link delete ", bridge_));
  namespace_of_.clear();
  bridge_.clear();
}

TestNetwork::~TestNetwork() { TearDown(); }

std::string TestNetwork::Address(const std::string& host) const {
  auto it = address_of_.find(host);
  return it == address_of_.end() ? "" : it->second;
}

std::vector<std::string> TestNetwork::Wrap(const std::string& host,
                                           std::vector<std::string> argv) const {
  auto it = namespace_of_.find(host);
  if (it == namespace_of_.end()) return argv;
  std::vector<std::string> wrapped = {kIp, "netns", "exec", it->second};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

absl::Status TestNetwork::SetLinkUp(const std::string& host, bool up) {
  auto it = namespace_of_.find(host);
  if (it == namespace_of_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("host ", host, " has no namespace, so no link to cut"));
  }
  absl::StatusOr<std::string> done =
      Ip(absl::StrCat("-n ", it->second, " link set eth0 ", up ? "up" : "down"));
  return done.status();
}

}  // namespace autocompress::testing
