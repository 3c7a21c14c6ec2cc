// TestNetwork: hosts for fault tests, each a Linux network namespace with its own
// address, joined by veth pairs to one bridge, so processes in them talk real TCP to
// each other and the test (in the root namespace, on the bridge's address) reaches all.
// A host's link can be cut (`ip link set eth0 down` inside its namespace) and restored.
//
// Namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN). Where `ip netns add` is refused,
// or the environment sets AUTOCOMPRESS_FAULTS_LOOPBACK, Create falls back to loopback: every host is 127.0.0.1, Wrap leaves commands as they
// are, and links cannot be cut (`namespaces()` says which, `fallback_reason()` why).
//
// Everything is named `acf<pid>...`, so concurrent runs do not collide; the destructor
// SIGKILLs what still runs in the namespaces and deletes them, their veths and the
// bridge, and Create first does the same for runs whose process is gone (a test killed
// by SIGKILL).
//
// Not thread-safe.
#ifndef AUTOCOMPRESS_TESTS_FAULTS_TEST_NETWORK_H_
#define AUTOCOMPRESS_TESTS_FAULTS_TEST_NETWORK_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace autocompress::testing {

class TestNetwork {
 public:
  // One host per name (letters, digits and '-', at most 20 characters; at most 64 hosts).
  static absl::StatusOr<std::unique_ptr<TestNetwork>> Create(const std::vector<std::string>& hosts);
  ~TestNetwork();

  TestNetwork(const TestNetwork&) = delete;
  TestNetwork& operator=(const TestNetwork&) = delete;

  bool namespaces() const { return namespaces_; }
  const std::string& fallback_reason() const { return fallback_reason_; }

  // The host's address ("10.213.7.3"; "127.0.0.1" on loopback).
  std::string Address(const std::string& host) const;
  // `argv` run inside the host's namespace (`ip netns exec NS argv...`, which execs, so
  // the process started is the program itself and signals reach it).
  std::vector<std::string> Wrap(const std::string& host, std::vector<std::string> argv) const;
  // Takes the host's link down or up; FailedPrecondition on loopback.
  absl::Status SetLinkUp(const std::string& host, bool up);

 private:
  TestNetwork() = default;
  absl::Status Build(const std::vector<std::string>& hosts);
  void TearDown();

  bool namespaces_ = false;
  std::string fallback_reason_;
  std::string prefix_;  // "acf<pid>"
  std::string bridge_;
  std::vector<std::string> veths_;  // the bridge-side ends
  std::map<std::string, std::string> namespace_of_;
  std::map<std::string, std::string> address_of_;
};

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_TESTS_FAULTS_TEST_NETWORK_H_
