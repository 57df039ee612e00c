// The one place where gRPC and Abseil statuses are converted, code for code.
#ifndef FECSEARCH_WORKERS_GRPC_STATUS_H_
#define FECSEARCH_WORKERS_GRPC_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace fecsearch {

// Both enumerations use the canonical numbering (0 OK ... 16 UNAUTHENTICATED).
inline absl::Status ToAbsl(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

inline grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace fecsearch

#endif  // FECSEARCH_WORKERS_GRPC_STATUS_H_
