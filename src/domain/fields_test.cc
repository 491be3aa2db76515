// Field value rules, one type at a time (pure; the store-backed checks are in
// records_test.cc).

#include "domain/fields.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quarry::domain {
namespace {

using ::testing::HasSubstr;
using nlohmann::json;

Field Make(FieldType type) {
  Field field;
  field.api_name = "f";
  field.type = type;
  return field;
}

// The normalized value, or the error text prefixed with "error: ".
json Check(const Field& field, const json& value) {
  json normalized;
  std::string error;
  if (!NormalizeFieldValue(field, value, &normalized, &error)) return "error: " + error;
  return normalized;
}

bool Rejects(const Field& field, const json& value) {
  const json out = Check(field, value);
  return out.is_string() && out.get<std::string>().rfind("error: ", 0) == 0;
}

TEST(FieldTypeTest, NamesRoundTrip) {
  for (FieldType type : kAllFieldTypes) {
    FieldType parsed;
    ASSERT_TRUE(ParseFieldType(FieldTypeName(type), &parsed));
    EXPECT_EQ(parsed, type);
  }
  FieldType parsed;
  EXPECT_FALSE(ParseFieldType("rich_text", &parsed));
  EXPECT_EQ(FieldTypeList(),
            "text, long_text, number, decimal, dropdown, checkbox, date, date_time, json, user");
}

TEST(FieldValueTest, TextCountsCharactersAgainstMaxLength) {
  Field text = Make(FieldType::kText);
  EXPECT_EQ(Check(text, "hello"), "hello");
  EXPECT_EQ(Check(text, std::string(255, 'a')), std::string(255, 'a'));
  EXPECT_THAT(Check(text, std::string(256, 'a')).get<std::string>(),
              HasSubstr("at most 255 characters (it has 256)"));
  text.max_length = 3;
  EXPECT_EQ(Check(text, "\xC3\xA9\xC3\xA9\xC3\xA9"), "\xC3\xA9\xC3\xA9\xC3\xA9");  // 3 characters
  EXPECT_TRUE(Rejects(text, "abcd"));
  EXPECT_TRUE(Rejects(text, 5));
  Field long_text = Make(FieldType::kLongText);
  EXPECT_EQ(long_text.EffectiveMaxLength(), 100'000);
  EXPECT_FALSE(Rejects(long_text, std::string(100'000, 'x')));
  EXPECT_TRUE(Rejects(long_text, std::string(100'001, 'x')));
}

TEST(FieldValueTest, NumbersAreWholeAndDecimalsFinite) {
  const Field number = Make(FieldType::kNumber);
  EXPECT_EQ(Check(number, 42), 42);
  EXPECT_EQ(Check(number, -7), -7);
  EXPECT_EQ(Check(number, 3.0), 3);
  EXPECT_TRUE(Check(number, 3.0).is_number_integer());
  EXPECT_THAT(Check(number, 3.5).get<std::string>(), HasSubstr("whole number"));
  EXPECT_TRUE(Rejects(number, "3"));
  EXPECT_TRUE(Rejects(number, json::parse("18446744073709551615")));
  const Field decimal = Make(FieldType::kDecimal);
  EXPECT_EQ(Check(decimal, 2.5), 2.5);
  EXPECT_EQ(Check(decimal, 2), 2);
  EXPECT_TRUE(Rejects(decimal, "2.5"));
  EXPECT_TRUE(Rejects(decimal, true));
}

TEST(FieldValueTest, DropdownValueMustBeAnOption) {
  Field priority = Make(FieldType::kDropdown);
  priority.options = {"Low", "Medium", "High"};
  EXPECT_EQ(Check(priority, "High"), "High");
  EXPECT_EQ(Check(priority, "high"), "error: must be one of Low, Medium, High");
  EXPECT_TRUE(Rejects(priority, 1));
}

TEST(FieldValueTest, CheckboxIsBoolean) {
  const Field box = Make(FieldType::kCheckbox);
  EXPECT_EQ(Check(box, true), true);
  EXPECT_EQ(Check(box, false), false);
  EXPECT_TRUE(Rejects(box, "true"));
  EXPECT_TRUE(Rejects(box, 1));
}

TEST(FieldValueTest, DatesAreRealCalendarDays) {
  const Field date = Make(FieldType::kDate);
  EXPECT_EQ(Check(date, "2028-02-29"), "2028-02-29");
  EXPECT_TRUE(Rejects(date, "2027-02-29"));
  EXPECT_TRUE(Rejects(date, "2026-13-01"));
  EXPECT_TRUE(Rejects(date, "2026-1-01"));
  EXPECT_TRUE(Rejects(date, "2026-01-01T00:00:00Z"));
  EXPECT_TRUE(Rejects(date, 20260101));
  EXPECT_TRUE(IsValidDate("2000-02-29"));
  EXPECT_FALSE(IsValidDate("1900-02-29"));
}

TEST(FieldValueTest, DateTimesAreNormalizedToUtcMilliseconds) {
  const Field at = Make(FieldType::kDateTime);
  EXPECT_EQ(Check(at, "2026-11-25T10:00:00Z"), "2026-11-25T10:00:00.000Z");
  EXPECT_EQ(Check(at, "2026-11-25T10:00:00.5Z"), "2026-11-25T10:00:00.500Z");
  EXPECT_EQ(Check(at, "2026-11-25T10:00:00.123456Z"), "2026-11-25T10:00:00.123Z");
  EXPECT_EQ(Check(at, "2026-11-25T01:30:00+02:00"), "2026-11-24T23:30:00.000Z");
  EXPECT_EQ(Check(at, "2026-12-31T23:00:00-01:00"), "2027-01-01T00:00:00.000Z");
  EXPECT_THAT(Check(at, "2026-11-25T10:00:00").get<std::string>(), HasSubstr("ISO 8601"));
  EXPECT_TRUE(Rejects(at, "2026-11-25 10:00:00Z"));
  EXPECT_TRUE(Rejects(at, "2026-11-25T24:00:00Z"));
  EXPECT_TRUE(Rejects(at, "2026-02-30T10:00:00Z"));
  EXPECT_TRUE(Rejects(at, "2026-11-25T10:00:00.Z"));
  EXPECT_TRUE(Rejects(at, "2026-11-25"));
}

TEST(FieldValueTest, JsonTakesAnyValueWithinItsSize) {
  const Field doc = Make(FieldType::kJson);
  EXPECT_EQ(Check(doc, json({{"a", {1, 2}}})), json({{"a", {1, 2}}}));
  EXPECT_EQ(Check(doc, "text"), "text");
  EXPECT_TRUE(Rejects(doc, std::string(kMaxJsonValueBytes, 'x')));
}

TEST(FieldValueTest, UserIsAnIdString) {
  const Field user = Make(FieldType::kUser);
  EXPECT_EQ(Check(user, "usr_abc"), "usr_abc");
  EXPECT_TRUE(Rejects(user, ""));
  EXPECT_TRUE(Rejects(user, 12));
}

TEST(FieldValueTest, QueryTextParsesByType) {
  json out;
  std::string error;
  EXPECT_TRUE(ParseFieldValueText(Make(FieldType::kNumber), "-12", &out, &error));
  EXPECT_EQ(out, -12);
  EXPECT_FALSE(ParseFieldValueText(Make(FieldType::kNumber), "1.5", &out, &error));
  EXPECT_TRUE(ParseFieldValueText(Make(FieldType::kDecimal), "1.5", &out, &error));
  EXPECT_EQ(out, 1.5);
  EXPECT_FALSE(ParseFieldValueText(Make(FieldType::kDecimal), "1.5x", &out, &error));
  EXPECT_TRUE(ParseFieldValueText(Make(FieldType::kCheckbox), "false", &out, &error));
  EXPECT_EQ(out, false);
  EXPECT_FALSE(ParseFieldValueText(Make(FieldType::kCheckbox), "yes", &out, &error));
  EXPECT_TRUE(ParseFieldValueText(Make(FieldType::kDateTime), "2026-01-01T00:00:00+01:00", &out,
                                  &error));
  EXPECT_EQ(out, "2025-12-31T23:00:00.000Z");
  EXPECT_FALSE(ParseFieldValueText(Make(FieldType::kJson), "{}", &out, &error));
  EXPECT_THAT(error, HasSubstr("cannot be filtered"));
}

TEST(FieldErrorsTest, ListsEveryProblemInTheStatus) {
  FieldErrors errors;
  EXPECT_TRUE(errors.ToStatus().ok());
  errors.Add("priority", "must be one of Low, High");
  errors.Add("title", "is required");
  errors.Add("title", "second message is ignored");
  const Status status = errors.ToStatus();
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "2 fields invalid: priority must be one of Low, High; title is required");
  EXPECT_EQ(errors.ToJson(), json({{"priority", "must be one of Low, High"}, {"title", "is required"}}));
}

}  // namespace
}  // namespace quarry::domain
