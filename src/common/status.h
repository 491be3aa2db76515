#pragma once
// Status and Result<T>: Quarry's vocabulary for expected failures.
//
// Expected failures (bad input, network errors, AWS error responses, a busy
// database) are returned as values, never thrown. A Status is a code from a
// small canonical set plus a message written for the person who has to act on
// it. Result<T> holds either a T or a non-OK Status.
//
// Example:
//   Result<Config> LoadConfig(std::string_view path);
//   Status Run() {
//     QUARRY_ASSIGN_OR_RETURN(Config config, LoadConfig("quarry.toml"));
//     QUARRY_RETURN_IF_ERROR(Validate(config));
//     return Status::Ok();
//   }
//
// Thread safety: values; distinct objects may be used from distinct threads.

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace quarry {

// Modelled on the canonical codes of gRPC and absl; the API layer owns the one
// table that maps them to HTTP statuses.
enum class StatusCode {
  kOk = 0,
  kCancelled,
  kUnknown,
  kInvalidArgument,
  kDeadlineExceeded,
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,
  kResourceExhausted,
  kFailedPrecondition,
  kAborted,
  kOutOfRange,
  kUnimplemented,
  kInternal,
  kUnavailable,
  kDataLoss,
  kUnauthenticated,
};

// "InvalidArgument", "NotFound", ...
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "InvalidArgument: <message>", or "OK".
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(std::string_view context) const;

  friend bool operator==(const Status&, const Status&) = default;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Shorthands for the common codes.
Status InvalidArgumentError(std::string message);
Status NotFoundError(std::string message);
Status PermissionDeniedError(std::string message);
Status UnauthenticatedError(std::string message);
Status FailedPreconditionError(std::string message);
Status OutOfRangeError(std::string message);
Status ResourceExhaustedError(std::string message);
Status UnavailableError(std::string message);
Status DeadlineExceededError(std::string message);
Status InternalError(std::string message);
Status DataLossError(std::string message);
Status UnimplementedError(std::string message);

// Either a value or a non-OK Status. Constructing a Result from an OK Status is
// a programming error (asserted).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : state_(std::move(status)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(state_).ok() && "Result constructed from an OK Status");
  }

  bool ok() const { return std::holds_alternative<T>(state_); }

  // The error, or OK when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(state_); }

  // Access to the value; calling these on an error is a programming error.
  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Status> state_;
};

namespace internal {
inline Status AsStatus(const Status& status) { return status; }
template <typename T>
Status AsStatus(const Result<T>& result) {
  return result.status();
}
}  // namespace internal

}  // namespace quarry

#define QUARRY_CONCAT_INNER_(a, b) a##b
#define QUARRY_CONCAT_(a, b) QUARRY_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (a Status or Result) failed.
#define QUARRY_RETURN_IF_ERROR(expr)                                        \
  do {                                                                      \
    ::quarry::Status quarry_status_ = ::quarry::internal::AsStatus((expr)); \
    if (!quarry_status_.ok()) return quarry_status_;                        \
  } while (false)

// `QUARRY_ASSIGN_OR_RETURN(T name, ResultExpr)` declares `name` from the value
// of a Result, or returns its error from the enclosing function.
#define QUARRY_ASSIGN_OR_RETURN(lhs, expr) \
  QUARRY_ASSIGN_OR_RETURN_IMPL_(QUARRY_CONCAT_(quarry_result_, __LINE__), lhs, expr)
#define QUARRY_ASSIGN_OR_RETURN_IMPL_(result, lhs, expr) \
  auto result = (expr);                                  \
  if (!result.ok()) return result.status();              \
  lhs = std::move(result).value()
