#include "common/clock.h"

#include <cstdio>
#include <ctime>

namespace quarry {

const SystemClock& SystemClock::Get() {
  static const SystemClock clock;
  return clock;
}

FakeClock::FakeClock(WallTime start) : wall_(start), monotonic_() {}

WallTime FakeClock::Now() const {
  std::lock_guard lock(mutex_);
  return wall_;
}

MonotonicTime FakeClock::MonotonicNow() const {
  std::lock_guard lock(mutex_);
  return monotonic_;
}

void FakeClock::Advance(std::chrono::nanoseconds by) {
  std::lock_guard lock(mutex_);
  wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(by);
  monotonic_ += std::chrono::duration_cast<std::chrono::steady_clock::duration>(by);
}

void FakeClock::SetNow(WallTime now) {
  std::lock_guard lock(mutex_);
  // Moving the wall clock never moves monotonic time backwards.
  if (now > wall_) {
    monotonic_ += std::chrono::duration_cast<std::chrono::steady_clock::duration>(now - wall_);
  }
  wall_ = now;
}

bool ParseIso8601Utc(std::string_view text, WallTime* out) {
  // YYYY-MM-DDTHH:MM:SS[.fff]Z
  if (text.size() < 20 || text.back() != 'Z') return false;
  auto digits = [&](size_t pos, size_t count, int* value) {
    int v = 0;
    for (size_t i = pos; i < pos + count; ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
      v = v * 10 + (text[i] - '0');
    }
    *value = v;
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!digits(0, 4, &year) || text[4] != '-' || !digits(5, 2, &month) || text[7] != '-' ||
      !digits(8, 2, &day) || (text[10] != 'T' && text[10] != 't') || !digits(11, 2, &hour) ||
      text[13] != ':' || !digits(14, 2, &minute) || text[16] != ':' || !digits(17, 2, &second)) {
    return false;
  }
  if (text.size() > 20) {
    if (text[19] != '.') return false;
    for (size_t i = 20; i + 1 < text.size(); ++i) {
      if (text[i] < '0' || text[i] > '9') return false;
    }
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return false;
  }
  using namespace std::chrono;
  year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                     std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) return false;
  *out = sys_days{ymd} + hours{hour} + minutes{minute} + seconds{second};
  return true;
}

std::string FormatIso8601Utc(WallTime time) {
  std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

}  // namespace quarry
