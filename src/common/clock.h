#pragma once
// Injectable time. Production code takes a `const Clock&` (default:
// SystemClock::Get()); tests pass a FakeClock and move it by hand, so nothing
// that depends on time is flaky.
//
// Thread safety: every Clock method may be called from any thread.

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

namespace quarry {

using WallTime = std::chrono::system_clock::time_point;
using MonotonicTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (UTC): for signatures, expiries and timestamps people read.
  virtual WallTime Now() const = 0;
  // Monotonic time: for deadlines, timeouts and backoff.
  virtual MonotonicTime MonotonicNow() const = 0;
};

class SystemClock final : public Clock {
 public:
  // The process-wide real clock.
  static const SystemClock& Get();
  WallTime Now() const override { return std::chrono::system_clock::now(); }
  MonotonicTime MonotonicNow() const override { return std::chrono::steady_clock::now(); }
};

// A clock that only moves when told to. Both its wall and monotonic readings
// advance together.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(WallTime start = WallTime{});
  WallTime Now() const override;
  MonotonicTime MonotonicNow() const override;
  void Advance(std::chrono::nanoseconds by);
  void SetNow(WallTime now);

 private:
  mutable std::mutex mutex_;
  WallTime wall_;
  MonotonicTime monotonic_;
};

// Parses "2015-08-30T12:36:00Z" (UTC, optional fractional seconds ignored).
// Returns false when the text is not of that form.
bool ParseIso8601Utc(std::string_view text, WallTime* out);
// "2015-08-30T12:36:00Z".
std::string FormatIso8601Utc(WallTime time);

}  // namespace quarry
