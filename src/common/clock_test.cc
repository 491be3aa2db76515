#include "common/clock.h"

#include <gtest/gtest.h>

namespace quarry {
namespace {

using std::chrono::seconds;

TEST(ClockTest, FakeClockMovesOnlyWhenTold) {
  WallTime start;
  ASSERT_TRUE(ParseIso8601Utc("2015-08-30T12:36:00Z", &start));
  FakeClock clock(start);
  const MonotonicTime mono = clock.MonotonicNow();
  EXPECT_EQ(clock.Now(), start);
  clock.Advance(seconds(90));
  EXPECT_EQ(clock.Now(), start + seconds(90));
  EXPECT_EQ(clock.MonotonicNow(), mono + seconds(90));
  clock.SetNow(start);  // the wall clock may go back; monotonic time never does
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.MonotonicNow(), mono + seconds(90));
}

TEST(ClockTest, Iso8601RoundTrips) {
  WallTime time;
  ASSERT_TRUE(ParseIso8601Utc("2024-01-02T03:04:05Z", &time));
  EXPECT_EQ(FormatIso8601Utc(time), "2024-01-02T03:04:05Z");
  ASSERT_TRUE(ParseIso8601Utc("2024-01-02T03:04:05.123Z", &time));
  EXPECT_EQ(FormatIso8601Utc(time), "2024-01-02T03:04:05Z");
  EXPECT_EQ(std::chrono::duration_cast<seconds>(time.time_since_epoch()).count(), 1704164645);
}

TEST(ClockTest, Iso8601RejectsMalformedText) {
  WallTime time;
  for (const char* bad : {"", "2024-01-02", "2024-01-02T03:04:05", "2024-13-02T03:04:05Z",
                          "2024-02-30T03:04:05Z", "2024-01-02 03:04:05Z", "2024-01-02T03:04:05+01:00",
                          "2024-01-02T03:04:05.12xZ"}) {
    EXPECT_FALSE(ParseIso8601Utc(bad, &time)) << bad;
  }
}

}  // namespace
}  // namespace quarry
