// Structured output: the schema and instructions sent to the model, and the
// parsing and validation of what models really answer.

#include "engine/structured_output.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quarry::engine {
namespace {

using nlohmann::json;
using ::testing::EndsWith;
using ::testing::HasSubstr;

std::vector<OutputField> InquiryFields() {
  OutputField response;
  response.name = "response";
  response.description = "the suggested reply";
  OutputField category;
  category.name = "category";
  category.type = OutputField::Type::kEnum;
  category.values = {"FAQ", "Standard", "High priority"};
  OutputField confidence;
  confidence.name = "confidence";
  confidence.type = OutputField::Type::kNumber;
  OutputField escalate;
  escalate.name = "escalate";
  escalate.type = OutputField::Type::kBoolean;
  escalate.default_value = false;
  return {response, category, confidence, escalate};
}

json Parse(std::string_view answer) {
  auto parsed = ParseStructuredAnswer(answer, InquiryFields());
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  return parsed.ok() ? *parsed : json();
}

const json kExpected = {
    {"response", "Thanks!"}, {"category", "FAQ"}, {"confidence", 0.8}, {"escalate", false}};

TEST(OutputJsonSchemaTest, DescribesTypesEnumsAndRequiredFields) {
  const json schema = OutputJsonSchema(InquiryFields());
  EXPECT_EQ(schema["type"], "object");
  EXPECT_EQ(schema["properties"]["response"],
            json({{"type", "string"}, {"description", "the suggested reply"}}));
  EXPECT_EQ(schema["properties"]["category"],
            json({{"type", "string"}, {"enum", {"FAQ", "Standard", "High priority"}}}));
  EXPECT_EQ(schema["properties"]["confidence"], json({{"type", "number"}}));
  EXPECT_EQ(schema["properties"]["escalate"], json({{"type", "boolean"}}));
  EXPECT_EQ(schema["required"], json({"response", "category", "confidence"}));
}

TEST(StructuredAnswerInstructionsTest, LastLineIsTheCompactSchema) {
  const std::string text = StructuredAnswerInstructions(InquiryFields());
  const size_t last_newline = text.rfind('\n');
  ASSERT_NE(last_newline, std::string::npos);
  EXPECT_EQ(text.substr(last_newline + 1),
            "JSON schema: " + OutputJsonSchema(InquiryFields()).dump());
  EXPECT_THAT(text, HasSubstr("only one JSON object"));
  EXPECT_THAT(text, HasSubstr("category (exactly one of: FAQ, Standard, High priority, required)"));
}

TEST(ParseStructuredAnswerTest, BareFencedAndProseWrappedObjects) {
  const std::string object =
      R"({"response": "Thanks!", "category": "FAQ", "confidence": 0.8, "extra": "dropped"})";
  EXPECT_EQ(Parse(object), kExpected);
  EXPECT_EQ(Parse("  \n" + object + "\n"), kExpected);
  EXPECT_EQ(Parse("Here is the analysis:\n```json\n" + object + "\n```\nLet me know."), kExpected);
  EXPECT_EQ(Parse("```\n" + object + "\n```"), kExpected);
  EXPECT_EQ(Parse("Sure. " + object + " Hope that helps {really}."), kExpected);
  // Braces in prose before the object, and braces inside its strings.
  EXPECT_EQ(Parse("Consider {this} first. " + object), kExpected);
  const json braces =
      Parse(R"(Answer: {"response": "use {{x}} and }", "category": "faq", "confidence": 1})");
  EXPECT_EQ(braces["response"], "use {{x}} and }");
}

TEST(ParseStructuredAnswerTest, NumericStringsBooleansAndEnumCaseFolding) {
  const json out = Parse(
      R"({"response": "ok", "category": "high PRIORITY", "confidence": " 0.25 ", "escalate": "True"})");
  EXPECT_EQ(out["category"], "High priority");
  EXPECT_EQ(out["confidence"], 0.25);
  EXPECT_EQ(out["escalate"], true);
  const json integer = Parse(R"({"response": "ok", "category": "Standard", "confidence": "3"})");
  EXPECT_EQ(integer["confidence"], 3);
  EXPECT_TRUE(integer["confidence"].is_number_integer());
  // A number where text is declared is taken as its text.
  const json text = Parse(R"({"response": 42, "category": "FAQ", "confidence": 1})");
  EXPECT_EQ(text["response"], "42");
}

TEST(ParseStructuredAnswerTest, MissingFieldUsesItsDefaultOrIsAProblem) {
  const json out = Parse(R"({"response": "ok", "category": "FAQ", "confidence": 1})");
  EXPECT_EQ(out["escalate"], false);
  auto missing = ParseStructuredAnswer(R"({"category": "FAQ", "confidence": 1, "escalate": null})",
                                       InquiryFields());
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("response: missing"));
}

TEST(ParseStructuredAnswerTest, WrongTypesListEveryProblem) {
  auto result = ParseStructuredAnswer(
      R"({"response": ["a"], "category": "Urgent", "confidence": "high", "escalate": "maybe"})",
      InquiryFields());
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  const std::string message = result.status().message();
  EXPECT_THAT(message, HasSubstr("response: expected text, got an array"));
  EXPECT_THAT(message,
              HasSubstr("category: \"Urgent\" is not one of FAQ, Standard, High priority"));
  EXPECT_THAT(message, HasSubstr("confidence: expected a number, got \"high\""));
  EXPECT_THAT(message, HasSubstr("escalate: expected true or false, got \"maybe\""));
}

TEST(ParseStructuredAnswerTest, NoObjectAtAll) {
  for (const char* answer : {"I cannot help with that.", "[1, 2]", "{not json}", "", "{\"a\": 1"}) {
    auto result = ParseStructuredAnswer(answer, InquiryFields());
    ASSERT_FALSE(result.ok()) << answer;
    EXPECT_THAT(result.status().message(), HasSubstr("no JSON object in the answer")) << answer;
  }
  EXPECT_FALSE(ParseStructuredAnswer("nan inf 0x10", InquiryFields()).ok());
}

TEST(ValidateStructuredValuesTest, ValidatesAnObjectDirectly) {
  auto ok = ValidateStructuredValues(
      {{"response", "Thanks!"}, {"category", "faq"}, {"confidence", "0.8"}}, InquiryFields());
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, kExpected);
  auto not_object = ValidateStructuredValues(json::array(), InquiryFields());
  EXPECT_FALSE(not_object.ok());
  auto nan = ValidateStructuredValues(
      {{"response", "x"}, {"category", "FAQ"}, {"confidence", "nan"}}, InquiryFields());
  EXPECT_FALSE(nan.ok());
}

TEST(RepairInstructionsTest, NamesTheProblemAndRepeatsTheSchema) {
  const std::string text = RepairInstructions(
      "category: \"Urgent\" is not one of FAQ, Standard, High priority.", InquiryFields());
  EXPECT_THAT(text,
              HasSubstr("category: \"Urgent\" is not one of FAQ, Standard, High priority.\n"));
  EXPECT_THAT(text, HasSubstr("only one JSON object"));
  EXPECT_THAT(text, EndsWith("JSON schema: " + OutputJsonSchema(InquiryFields()).dump()));
}

TEST(DefaultOutputValuesTest, OverridesThenDefaultsThenNeutralValues) {
  std::vector<OutputField> fields = InquiryFields();
  EXPECT_EQ(DefaultOutputValues(fields, json::object()),
            json({{"response", ""}, {"category", "FAQ"}, {"confidence", 0}, {"escalate", false}}));
  fields[0].default_value = "We will get back to you.";
  fields[3].default_value = true;
  EXPECT_EQ(
      DefaultOutputValues(fields, {{"category", "standard"}, {"confidence", 0.5}, {"other", 1}}),
      json({{"response", "We will get back to you."},
            {"category", "Standard"},
            {"confidence", 0.5},
            {"escalate", true}}));
}

}  // namespace
}  // namespace quarry::engine
