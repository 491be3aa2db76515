#include "common/status.h"

#include <gtest/gtest.h>

namespace quarry {
namespace {

Result<int> ParsePositive(int value) {
  if (value <= 0) return InvalidArgumentError("value must be positive, got " + std::to_string(value));
  return value;
}

Result<int> DoubledPositive(int value) {
  QUARRY_ASSIGN_OR_RETURN(int parsed, ParsePositive(value));
  return parsed * 2;
}

Status CheckBoth(int a, int b) {
  QUARRY_RETURN_IF_ERROR(ParsePositive(a));
  QUARRY_RETURN_IF_ERROR(ParsePositive(b).status().WithContext("second value"));
  return Status::Ok();
}

TEST(StatusTest, OkStatusHasNoMessage) {
  EXPECT_TRUE(Status::Ok().ok());
  EXPECT_EQ(Status::Ok().ToString(), "OK");
}

TEST(StatusTest, ErrorCarriesCodeAndMessage) {
  const Status status = NotFoundError("no such agent");
  EXPECT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.ToString(), "NotFound: no such agent");
  EXPECT_EQ(status.WithContext("GetAgentAlias").message(), "GetAgentAlias: no such agent");
}

TEST(StatusTest, AssignOrReturnPropagatesValueAndError) {
  EXPECT_EQ(DoubledPositive(4).value(), 8);
  const Result<int> failed = DoubledPositive(-1);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(failed.status().message(), "value must be positive, got -1");
}

TEST(StatusTest, ReturnIfErrorStopsAtFirstFailure) {
  EXPECT_TRUE(CheckBoth(1, 2).ok());
  EXPECT_EQ(CheckBoth(-1, -2).message(), "value must be positive, got -1");
  EXPECT_EQ(CheckBoth(1, -2).message(), "second value: value must be positive, got -2");
}

TEST(StatusTest, ValueOrFallsBack) {
  EXPECT_EQ(ParsePositive(3).value_or(7), 3);
  EXPECT_EQ(ParsePositive(0).value_or(7), 7);
}

}  // namespace
}  // namespace quarry
