// Value references and conditions: parsing, one-pass rendering (no
// re-expansion of values), typed values, and condition evaluation.

#include "engine/expressions.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace quarry::engine {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Scope SampleScope() {
  Scope scope;
  scope.record = {{"id", "rec_1"},
                  {"handle", "INQ-7"},
                  {"description", "My order {record.secret} is late }} {{"},
                  {"secret", "do-not-show"},
                  {"priority", 10},
                  {"score", 0.7},
                  {"urgent", true},
                  {"tags", json::array({"a", "b"})},
                  {"meta", {{"plan", "gold"}}}};
  scope.trigger = {{"kind", "record_updated"},
                   {"changed_fields", json::array({"status", "priority"})},
                   {"before", {{"status", "New"}}},
                   {"inputs", {{"email", "a@example.com"}}}};
  scope.steps = {{"search", {{"count", 3}, {"records", json::array({{{"title", "first"}}})}}},
                 {"analyse", {{"category", "High priority"}, {"text", "{steps.search.count}"}}}};
  scope.control = {{"order_id", "A-17"}};
  scope.candidate = {{"customer_email", "a@example.com"}};
  return scope;
}

std::string R(std::string_view text, const Scope& scope) {
  auto rendered = Render(text, scope);
  EXPECT_TRUE(rendered.ok()) << rendered.status().ToString();
  return rendered.ok() ? *rendered : "<error>";
}

Condition Compare(std::string left, std::string op, json right = nullptr) {
  Condition condition;
  condition.kind = Condition::Kind::kCompare;
  condition.left = std::move(left);
  condition.op = std::move(op);
  condition.right = std::move(right);
  return condition;
}

bool Eval(const Condition& condition, const Scope& scope) {
  auto result = Evaluate(condition, scope);
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  return result.ok() && *result;
}

TEST(ParseReferencesTest, FindsPathsOffsetsAndText) {
  auto refs = ParseReferences("Hi {record.name}, see {steps.analyse.category}.");
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  ASSERT_EQ(refs->size(), 2u);
  EXPECT_THAT((*refs)[0].path, ElementsAre("record", "name"));
  EXPECT_EQ((*refs)[0].offset, 3u);
  EXPECT_EQ((*refs)[0].text, "{record.name}");
  EXPECT_THAT((*refs)[1].path, ElementsAre("steps", "analyse", "category"));
  EXPECT_EQ((*refs)[1].offset, 22u);
}

TEST(ParseReferencesTest, DoubledBracesAreNotReferences) {
  auto refs = ParseReferences("{{\"json\": 1}} and {{record.x}}");
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  EXPECT_TRUE(refs->empty());
}

TEST(ParseReferencesTest, RejectsMalformedTemplatesNamingTheOffset) {
  auto unclosed = ParseReferences("abc {record.name");
  ASSERT_FALSE(unclosed.ok());
  EXPECT_EQ(unclosed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(unclosed.status().message(), HasSubstr("unclosed"));
  EXPECT_THAT(unclosed.status().message(), HasSubstr("offset 4"));
  EXPECT_THAT(unclosed.status().message(), HasSubstr("{record.name"));

  auto empty = ParseReferences("x {} y");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("empty reference"));

  auto stray = ParseReferences("a } b");
  ASSERT_FALSE(stray.ok());
  EXPECT_THAT(stray.status().message(), HasSubstr("stray"));
  EXPECT_THAT(stray.status().message(), HasSubstr("offset 2"));

  EXPECT_FALSE(ParseReferences("{record..x}").ok());
  EXPECT_FALSE(ParseReferences("{record.first name}").ok());
  EXPECT_FALSE(ParseReferences("{record.x-y}").ok());
  EXPECT_FALSE(ParseReferences("{\"a\": 1}").ok());
}

TEST(RenderTest, ReplacesReferencesWithTextForms) {
  const Scope scope = SampleScope();
  EXPECT_EQ(R("{record.handle}: p={record.priority} s={record.score} u={record.urgent}", scope),
            "INQ-7: p=10 s=0.7 u=true");
  EXPECT_EQ(R("tags {record.tags} meta {record.meta}", scope),
            "tags [\"a\",\"b\"] meta {\"plan\":\"gold\"}");
  EXPECT_EQ(R("{trigger.inputs.email} {trigger.before.status} {control.order_id}", scope),
            "a@example.com New A-17");
  EXPECT_EQ(R("first={steps.search.records.0.title}", scope), "first=first");
}

TEST(RenderTest, AbsentValuesRenderEmpty) {
  const Scope scope = SampleScope();
  EXPECT_EQ(R("[{record.missing}][{steps.not_taken.text}][{nowhere.x}]", scope), "[][][]");
}

TEST(RenderTest, ValuesAreInsertedLiterallyAndNeverReExpanded) {
  const Scope scope = SampleScope();
  // The record's description holds "{record.secret}": it must come out as is.
  const std::string out = R("Inquiry: {record.description}", scope);
  EXPECT_EQ(out, "Inquiry: My order {record.secret} is late }} {{");
  EXPECT_THAT(out, ::testing::Not(HasSubstr("do-not-show")));
  // A step output that looks like a reference is not expanded either.
  EXPECT_EQ(R("{steps.analyse.text}", scope), "{steps.search.count}");
}

TEST(RenderTest, DoubledBracesRenderAsBraces) {
  const Scope scope = SampleScope();
  EXPECT_EQ(R("{{\"category\": \"{steps.analyse.category}\"}}", scope),
            "{\"category\": \"High priority\"}");
  EXPECT_EQ(R("{{{record.handle}}}", scope), "{INQ-7}");
  EXPECT_EQ(R("{{record.handle}}", scope), "{record.handle}");
}

TEST(RenderTest, MalformedTemplateIsAnError) {
  EXPECT_EQ(Render("oops {record.x", SampleScope()).status().code(), StatusCode::kInvalidArgument);
}

TEST(RenderValueTest, ExactlyOneReferenceKeepsItsType) {
  const Scope scope = SampleScope();
  EXPECT_EQ(*RenderValue("{record.priority}", scope), json(10));
  EXPECT_EQ(*RenderValue("{record.urgent}", scope), json(true));
  EXPECT_EQ(*RenderValue("{record.tags}", scope), json::array({"a", "b"}));
  EXPECT_EQ(*RenderValue("{record.missing}", scope), json(nullptr));
  EXPECT_EQ(*RenderValue("p{record.priority}", scope), json("p10"));
  EXPECT_EQ(*RenderValue("{record.priority} ", scope), json("10 "));
  EXPECT_EQ(*RenderValue("{{record.priority}}", scope), json("{record.priority}"));
}

TEST(RenderValueTest, RendersArraysAndObjectsMemberByMember) {
  const Scope scope = SampleScope();
  const json body = {{"handle", "{record.handle}"},
                     {"count", "{steps.search.count}"},
                     {"list", json::array({"{record.priority}", "x {record.handle}", 5})},
                     {"flag", false},
                     {"{record.handle}", "keys are kept"}};
  auto rendered = RenderValue(body, scope);
  ASSERT_TRUE(rendered.ok()) << rendered.status().ToString();
  EXPECT_EQ(*rendered, json({{"handle", "INQ-7"},
                             {"count", 3},
                             {"list", json::array({10, "x INQ-7", 5})},
                             {"flag", false},
                             {"{record.handle}", "keys are kept"}}));
  EXPECT_EQ(*RenderValue(json(4.5), scope), json(4.5));
  EXPECT_EQ(*RenderValue(json(nullptr), scope), json(nullptr));
}

TEST(ValueToTextTest, TextForms) {
  EXPECT_EQ(ValueToText("abc"), "abc");
  EXPECT_EQ(ValueToText(3), "3");
  EXPECT_EQ(ValueToText(3.0), "3");
  EXPECT_EQ(ValueToText(0.7), "0.7");
  EXPECT_EQ(ValueToText(-2.5), "-2.5");
  EXPECT_EQ(ValueToText(true), "true");
  EXPECT_EQ(ValueToText(false), "false");
  EXPECT_EQ(ValueToText(nullptr), "");
  EXPECT_EQ(ValueToText(json::array({1, "a"})), "[1,\"a\"]");
  EXPECT_EQ(ValueToText(json{{"a", 1}}), "{\"a\":1}");
}

TEST(ResolveTest, WalksObjectsAndArrays) {
  const Scope scope = SampleScope();
  auto refs = ParseReferences("{record.meta.plan}{steps.search.records.0}{steps.search.records.9}");
  ASSERT_TRUE(refs.ok());
  EXPECT_EQ(Resolve(scope, (*refs)[0]), json("gold"));
  EXPECT_EQ(Resolve(scope, (*refs)[1]), json({{"title", "first"}}));
  EXPECT_EQ(Resolve(scope, (*refs)[2]), json(nullptr));
}

TEST(EvaluateTest, NumbersCompareNumericallyOtherwiseText) {
  const Scope scope = SampleScope();
  EXPECT_TRUE(Eval(Compare("{record.priority}", "gt", 9), scope));  // 10 > 9, not "10" < "9"
  EXPECT_TRUE(Eval(Compare("{record.priority}", "gt", "9"), scope));
  EXPECT_TRUE(Eval(Compare("{record.priority}", "eq", "10.0"), scope));
  EXPECT_TRUE(Eval(Compare("{record.priority}", "gte", 10), scope));
  EXPECT_FALSE(Eval(Compare("{record.priority}", "lt", 10), scope));
  EXPECT_TRUE(Eval(Compare("{record.score}", "lte", 0.7), scope));
  EXPECT_TRUE(Eval(Compare("10", "lt", "9a"), scope));  // text: "1" < "9"
  EXPECT_TRUE(Eval(Compare("banana", "gt", "apple"), scope));
  EXPECT_TRUE(Eval(Compare("B", "lt", "a"), scope));  // ordering is byte-wise
}

TEST(EvaluateTest, TextComparisonsIgnoreCase) {
  const Scope scope = SampleScope();
  EXPECT_TRUE(Eval(Compare("{steps.analyse.category}", "eq", "high PRIORITY"), scope));
  EXPECT_FALSE(Eval(Compare("{steps.analyse.category}", "ne", "High Priority"), scope));
  EXPECT_TRUE(Eval(Compare("{record.description}", "contains", "ORDER"), scope));
  EXPECT_TRUE(Eval(Compare("{record.description}", "not_contains", "refund"), scope));
  EXPECT_TRUE(Eval(Compare("{record.urgent}", "eq", true), scope));
  EXPECT_TRUE(Eval(Compare("{record.urgent}", "eq", "TRUE"), scope));
}

TEST(EvaluateTest, InAndNotIn) {
  const Scope scope = SampleScope();
  EXPECT_TRUE(Eval(Compare("{steps.analyse.category}", "in", json::array({"faq", "high priority"})),
                   scope));
  EXPECT_TRUE(Eval(Compare("{record.priority}", "in", json::array({1, 10.0})), scope));
  EXPECT_TRUE(Eval(Compare("{record.handle}", "in", json::array({"{record.handle}"})), scope));
  EXPECT_TRUE(
      Eval(Compare("{steps.analyse.category}", "not_in", json::array({"FAQ", "Standard"})), scope));
  auto bad = Evaluate(Compare("{record.handle}", "in", "INQ-7"), scope);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(EvaluateTest, EmptinessAndArrays) {
  const Scope scope = SampleScope();
  EXPECT_TRUE(Eval(Compare("{record.missing}", "is_empty"), scope));
  EXPECT_TRUE(Eval(Compare("{record.missing}", "eq", ""), scope));
  EXPECT_TRUE(Eval(Compare("  ", "is_empty"), scope));
  EXPECT_TRUE(Eval(Compare("{record.handle}", "is_not_empty"), scope));
  EXPECT_TRUE(Eval(Compare("{record.priority}", "is_not_empty"), scope));
  EXPECT_TRUE(Eval(Compare("{trigger.changed_fields}", "contains", "STATUS"), scope));
  EXPECT_FALSE(Eval(Compare("{trigger.changed_fields}", "contains", "stat"), scope));
  EXPECT_FALSE(Eval(Compare("{record.missing}", "gt", 0), scope));  // "" vs "0" as text
}

TEST(EvaluateTest, AllAnyNot) {
  const Scope scope = SampleScope();
  Condition all;
  all.kind = Condition::Kind::kAll;
  all.children = {Compare("{record.priority}", "gt", 5), Compare("{record.handle}", "eq", "inq-7")};
  EXPECT_TRUE(Eval(all, scope));
  all.children.push_back(Compare("{record.urgent}", "eq", false));
  EXPECT_FALSE(Eval(all, scope));

  Condition any;
  any.kind = Condition::Kind::kAny;
  any.children = {Compare("{record.priority}", "lt", 5), Compare("{record.handle}", "eq", "INQ-7")};
  EXPECT_TRUE(Eval(any, scope));
  any.children.erase(any.children.begin() + 1);
  EXPECT_FALSE(Eval(any, scope));

  Condition negation;
  negation.kind = Condition::Kind::kNot;
  negation.children = {any};
  EXPECT_TRUE(Eval(negation, scope));
  negation.children.clear();
  EXPECT_FALSE(Evaluate(negation, scope).ok());

  Condition empty_all;
  empty_all.kind = Condition::Kind::kAll;
  EXPECT_TRUE(Eval(empty_all, scope));
}

TEST(EvaluateTest, UnknownOperatorIsAnError) {
  auto result = Evaluate(Compare("a", "matches", "a"), SampleScope());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("matches"));
}

TEST(ConditionOpsTest, KnownOperators) {
  for (const char* op : {"eq", "ne", "gt", "gte", "lt", "lte", "contains", "not_contains", "in",
                         "not_in", "is_empty", "is_not_empty"}) {
    EXPECT_TRUE(IsKnownConditionOp(op)) << op;
  }
  EXPECT_FALSE(IsKnownConditionOp("EQ"));
  EXPECT_FALSE(IsKnownConditionOp("equals"));
  EXPECT_FALSE(IsKnownConditionOp(""));
}

}  // namespace
}  // namespace quarry::engine
