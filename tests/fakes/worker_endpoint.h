// WorkerEndpoint: what a worker dials, for worker tests and the worker bench: a
// FakeGateway (the test plays the scheduler) and a real ArtifactService over a real
// artifact store in a directory, on a loopback port.
#ifndef AUTOCOMPRESS_TESTS_FAKES_WORKER_ENDPOINT_H_
#define AUTOCOMPRESS_TESTS_FAKES_WORKER_ENDPOINT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "autocompress/v1/scheduler.grpc.pb.h"
#include "tests/fakes/fake_gateway.h"

namespace autocompress::scheduler {
class ArtifactStore;
class ArtifactServiceImpl;
}  // namespace autocompress::scheduler

namespace autocompress::testing {

class WorkerEndpoint {
 public:
  // The artifact store lives in `dir`/artifacts.
  static absl::StatusOr<std::unique_ptr<WorkerEndpoint>> Start(const std::string& dir);
  ~WorkerEndpoint();

  FakeGateway& gateway() { return gateway_; }
  // "127.0.0.1:<port>".
  const std::string& address() const { return address_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  v1::ArtifactService::Stub& artifacts() { return *artifacts_; }
  // Uploads the file at `path` under its file name.
  absl::StatusOr<v1::ArtifactRef> Upload(const std::string& path, v1::ArtifactKind kind);

 private:
  WorkerEndpoint() = default;
  FakeGateway gateway_;
  std::unique_ptr<scheduler::ArtifactStore> store_;
  std::unique_ptr<scheduler::ArtifactServiceImpl> artifact_service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ArtifactService::Stub> artifacts_;
};

}  // namespace autocompress::testing

#endif  // AUTOCOMPRESS_TESTS_FAKES_WORKER_ENDPOINT_H_
