// Apps, objects, fields and records (/api/v1/apps/...). Thin handlers: parse,
// call the domain (domain/apps.h, fields.h, records.h), shape JSON.
//
// References in paths: {app_id} is an app id or namespace, {object_id} an
// object id or api_name, {field_id} a field id or api_name, {record_id} a
// record id or handle (TCK-12).
//
// Validation failures are 400 validation_failed with details.fields naming
// every bad input at once; conflicts (a taken namespace, api_name or unique
// value) are 409 already_exists with the same details.

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "api/api.h"
#include "domain/agent_connections.h"
#include "domain/apps.h"
#include "domain/fields.h"
#include "domain/paging.h"
#include "domain/records.h"

namespace quarry::api {
namespace {

using domain::ChangeContext;
using domain::FieldErrors;
using nlohmann::json;

constexpr std::string_view kApps = "/api/v1/apps";
constexpr std::string_view kApp = "/api/v1/apps/{app_id}";
constexpr std::string_view kObjects = "/api/v1/apps/{app_id}/objects";
constexpr std::string_view kObject = "/api/v1/apps/{app_id}/objects/{object_id}";
constexpr std::string_view kFields = "/api/v1/apps/{app_id}/objects/{object_id}/fields";
constexpr std::string_view kField = "/api/v1/apps/{app_id}/objects/{object_id}/fields/{field_id}";
constexpr std::string_view kRecords = "/api/v1/apps/{app_id}/objects/{object_id}/records";
constexpr std::string_view kRecord = "/api/v1/apps/{app_id}/records/{record_id}";

// The error response for a failed domain call: validation_failed with
// details.fields when the domain named bad inputs, the standard envelope
// otherwise.
ApiResponse Failure(const Status& status, const FieldErrors& errors) {
  ApiError error = ApiError::FromStatus(status);
  if (!errors.empty()) error.AddFieldErrors(status, errors.ToJson());
  return ApiResponse::Error(error);
}

// Runs `fn(tx)` -> Status in a transaction; the function may run more than
// once, so it only touches the transaction and what it assigns.
template <typename Fn>
Status Transact(ServerContext* context, bool write, Fn&& fn) {
  auto body = [&](store::Tx& tx) -> Status { return fn(tx); };
  return write ? context->db->Write(body) : context->db->Read(body);
}

ChangeContext Change(ServerContext* context, const ApiRequest& request) {
  return ChangeContext::For(request.who(), *context->clock, request.request_id);
}

domain::VersionCheck IfMatch(const ApiRequest& request) {
  return [&request](int64_t version) { return CheckIfMatch(request, version); };
}

bool Force(const ApiRequest& request) {
  const std::string force = request.QueryParam("force");
  return force == "true" || force == "1";
}

std::string Param(const ApiRequest& request, const std::string& name) {
  auto it = request.path_params.find(name);
  return it != request.path_params.end() ? it->second : std::string();
}

json Items(json items, const std::string& next_cursor = {}) {
  return {{"items", std::move(items)},
          {"next_cursor", next_cursor.empty() ? json(nullptr) : json(next_cursor)}};
}

// {"values": {...}}: the one member a record create or update takes.
Result<json> RecordValues(const ApiRequest& request, FieldErrors* errors) {
  QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
  for (const auto& [key, value] : body.items()) {
    if (key != "values") {
      errors->Add(key, "is not a known property here; send {\"values\": {<field>: <value>}}");
    }
  }
  auto it = body.find("values");
  if (it == body.end() || it->is_null()) {
    errors->Add("values", "is required: an object of field api names to values");
  } else if (!it->is_object()) {
    errors->Add("values", "must be an object of field api names to values");
  }
  QUARRY_RETURN_IF_ERROR(errors->ToStatus());
  return *it;
}

std::string AppLocation(const std::string& app_id) { return std::string(kApps) + "/" + app_id; }

// --- apps ------------------------------------------------------------------

void RegisterApps(Router& router, ServerContext* context) {
  router.Add("GET", std::string(kApps), Access::kAuthenticated,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(domain::PageRequest page,
                                       domain::ParsePageRequest(request.QueryParam("limit"),
                                                                request.QueryParam("cursor")));
               domain::Page<domain::App> apps;
               QUARRY_RETURN_IF_ERROR(Transact(context, false, [&](store::Tx& tx) -> Status {
                 QUARRY_ASSIGN_OR_RETURN(apps, domain::ListApps(tx, request.who().org_id, page));
                 return Status::Ok();
               }));
               json items = json::array();
               for (const domain::App& app : apps.items) items.push_back(app.ToJson());
               return ApiResponse::Json(Items(std::move(items), apps.next_cursor));
             });

  router.Add("POST", std::string(kApps), Access::kBuilder,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
               FieldErrors errors;
               domain::App app;
               const ChangeContext change = Change(context, request);
               Status status = Transact(context, true, [&](store::Tx& tx) -> Status {
                 errors.Clear();
                 QUARRY_ASSIGN_OR_RETURN(app, domain::CreateApp(tx, change, body, &errors));
                 return Status::Ok();
               });
               if (!status.ok()) return Failure(status, errors);
               return ApiResponse::Created(app.ToJson(), AppLocation(app.id), app.version);
             });

  router.Add("GET", std::string(kApp), Access::kAuthenticated,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               domain::App app;
               QUARRY_RETURN_IF_ERROR(Transact(context, false, [&](store::Tx& tx) -> Status {
                 QUARRY_ASSIGN_OR_RETURN(
                     app, domain::GetApp(tx, request.who().org_id, Param(request, "app_id")));
                 return Status::Ok();
               }));
               return ApiResponse::Entity(app.ToJson(), app.version);
             });

  router.Add("PATCH", std::string(kApp), Access::kBuilder,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
               FieldErrors errors;
               domain::App app;
               const ChangeContext change = Change(context, request);
               Status status = Transact(context, true, [&](store::Tx& tx) -> Status {
                 errors.Clear();
                 QUARRY_ASSIGN_OR_RETURN(app, domain::UpdateApp(tx, change, Param(request, "app_id"),
                                                                body, IfMatch(request), &errors));
                 return Status::Ok();
               });
               if (!status.ok()) return Failure(status, errors);
               return ApiResponse::Entity(app.ToJson(), app.version);
             });

  router.Add("DELETE", std::string(kApp), Access::kBuilder,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               const ChangeContext change = Change(context, request);
               QUARRY_RETURN_IF_ERROR(Transact(context, true, [&](store::Tx& tx) -> Status {
                 QUARRY_ASSIGN_OR_RETURN(domain::App app,
                                         domain::GetApp(tx, change.org_id, Param(request, "app_id")));
                 // Agent connections belong to the app: they go with it (with
                 // ?force=true), never stay behind pointing at nothing.
                 QUARRY_ASSIGN_OR_RETURN(
                     domain::Page<domain::AgentConnection> agents,
                     domain::ListAgentConnections(tx, change.org_id, app.id, {.limit = 500}));
                 if (!agents.items.empty() && !Force(request)) {
                   return FailedPreconditionError(
                       "app " + app.namespace_name + " has " + std::to_string(agents.items.size()) +
                       " connected agent(s); disconnect them first, or delete with ?force=true to "
                       "remove them and their conversations with the app");
                 }
                 for (const domain::AgentConnection& agent : agents.items) {
                   QUARRY_RETURN_IF_ERROR(domain::DeleteAgentConnection(
                       tx, *context->clock, request.who(), agent, request.request_id));
                 }
                 return domain::DeleteApp(tx, change, app.id, Force(request), IfMatch(request));
               }));
               return ApiResponse::NoContent();
             });
}

// --- objects ---------------------------------------------------------------

void RegisterObjects(Router& router, ServerContext* context) {
  router.Add("GET", std::string(kObjects), Access::kAuthenticated,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               std::vector<domain::ObjectSchema> objects;
               QUARRY_RETURN_IF_ERROR(Transact(context, false, [&](store::Tx& tx) -> Status {
                 QUARRY_ASSIGN_OR_RETURN(objects, domain::ListObjects(tx, request.who().org_id,
                                                                      Param(request, "app_id")));
                 return Status::Ok();
               }));
               json items = json::array();
               for (const domain::ObjectSchema& object : objects) items.push_back(object.ToJson());
               return ApiResponse::Json(Items(std::move(items)));
             });

  router.Add("POST", std::string(kObjects), Access::kBuilder,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
               FieldErrors errors;
               domain::ObjectSchema object;
               const ChangeContext change = Change(context, request);
               Status status = Transact(context, true, [&](store::Tx& tx) -> Status {
                 errors.Clear();
                 QUARRY_ASSIGN_OR_RETURN(object, domain::CreateObject(tx, change,
                                                                      Param(request, "app_id"),
                                                                      body, &errors));
                 return Status::Ok();
               });
               if (!status.ok()) return Failure(status, errors);
               return ApiResponse::Created(
                   object.ToJson(), AppLocation(object.object.app_id) + "/objects/" + object.object.id,
                   object.object.version);
             });

  router.Add("GET", std::string(kObject), Access::kAuthenticated,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               domain::ObjectSchema object;
               QUARRY_RETURN_IF_ERROR(Transact(context, false, [&](store::Tx& tx) -> Status {
                 QUARRY_ASSIGN_OR_RETURN(
                     object, domain::GetObject(tx, request.who().org_id, Param(request, "app_id"),
                                               Param(request, "object_id")));
                 return Status::Ok();
               }));
               return ApiResponse::Entity(object.ToJson(), object.object.version);
             });

  router.Add("PATCH", std::string(kObject), Access::kBuilder,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
               FieldErrors errors;
               domain::ObjectSchema object;
               const ChangeContext change = Change(context, request);
               Status status = Transact(context, true, [&](store::Tx& tx) -> Status {
                 errors.Clear();
                 QUARRY_ASSIGN_OR_RETURN(
                     object, domain::UpdateObject(tx, change, Param(request, "app_id"),
                                                  Param(request, "object_id"), body,
                                                  IfMatch(request), &errors));
                 return Status::Ok();
               });
               if (!status.ok()) return Failure(status, errors);
               return ApiResponse::Entity(object.ToJson(), object.object.version);
             });

  router.Add("DELETE", std::string(kObject), Access::kBuilder,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               const ChangeContext change = Change(context, request);
               QUARRY_RETURN_IF_ERROR(Transact(context, true, [&](store::Tx& tx) -> Status {
                 return domain::DeleteObject(tx, change, Param(request, "app_id"),
                                             Param(request, "object_id"), Force(request),
                                             IfMatch(request));
               }));
               return ApiResponse::NoContent();
             });
}

// --- fields ----------------------------------------------------------------

void RegisterFields(Router& router, ServerContext* context) {
  router.Add("GET", std::string(kFields), Access::kAuthenticated,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               std::vector<domain::Field> fields;
               QUARRY_RETURN_IF_ERROR(Transact(context, false, [&](store::Tx& tx) -> Status {
                 QUARRY_ASSIGN_OR_RETURN(
                     fields, domain::ListFields(tx, request.who().org_id, Param(request, "app_id"),
                                                Param(request, "object_id")));
                 return Status::Ok();
               }));
               json items = json::array();
               for (const domain::Field& field : fields) items.push_back(field.ToJson());
               return ApiResponse::Json(Items(std::move(items)));
             });

  router.Add("POST", std::string(kFields), Access::kBuilder,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
               FieldErrors errors;
               domain::Field field;
               const ChangeContext change = Change(context, request);
               Status status = Transact(context, true, [&](store::Tx& tx) -> Status {
                 errors.Clear();
                 QUARRY_ASSIGN_OR_RETURN(
                     field, domain::CreateField(tx, change, Param(request, "app_id"),
                                                Param(request, "object_id"), body, &errors));
                 return Status::Ok();
               });
               if (!status.ok()) return Failure(status, errors);
               return ApiResponse::Created(field.ToJson(),
                                           AppLocation(field.app_id) + "/objects/" +
                                               field.object_id + "/fields/" + field.id,
                                           field.version);
             });

  router.Add("GET", std::string(kField), Access::kAuthenticated,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               domain::Field field;
               QUARRY_RETURN_IF_ERROR(Transact(context, false, [&](store::Tx& tx) -> Status {
                 QUARRY_ASSIGN_OR_RETURN(
                     field, domain::GetField(tx, request.who().org_id, Param(request, "app_id"),
                                             Param(request, "object_id"),
                                             Param(request, "field_id")));
                 return Status::Ok();
               }));
               return ApiResponse::Entity(field.ToJson(), field.version);
             });

  router.Add("PATCH", std::string(kField), Access::kBuilder,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(json body, request.JsonBody());
               FieldErrors errors;
               domain::Field field;
               const ChangeContext change = Change(context, request);
               Status status = Transact(context, true, [&](store::Tx& tx) -> Status {
                 errors.Clear();
                 QUARRY_ASSIGN_OR_RETURN(
                     field, domain::UpdateField(tx, change, Param(request, "app_id"),
                                                Param(request, "object_id"),
                                                Param(request, "field_id"), body, IfMatch(request),
                                                &errors));
                 return Status::Ok();
               });
               if (!status.ok()) return Failure(status, errors);
               return ApiResponse::Entity(field.ToJson(), field.version);
             });

  router.Add("DELETE", std::string(kField), Access::kBuilder,
             [context](ApiRequest& request) -> Result<ApiResponse> {
               const ChangeContext change = Change(context, request);
               QUARRY_RETURN_IF_ERROR(Transact(context, true, [&](store::Tx& tx) -> Status {
                 return domain::DeleteField(tx, change, Param(request, "app_id"),
                                            Param(request, "object_id"),
                                            Param(request, "field_id"), IfMatch(request));
               }));
               return ApiResponse::NoContent();
             });
}

// --- records ---------------------------------------------------------------

void RegisterRecords(Router& router, ServerContext* context,
                     std::shared_ptr<domain::RecordService> records) {
  router.Add("GET", std::string(kRecords), Access::kAuthenticated,
             [records](ApiRequest& request) -> Result<ApiResponse> {
               FieldErrors errors;
               Result<domain::RecordQuery> query = domain::ParseRecordQuery(request.query, &errors);
               if (!query.ok()) return Failure(query.status(), errors);
               Result<domain::Page<domain::Record>> page =
                   records->List(request.who().org_id, Param(request, "app_id"),
                                 Param(request, "object_id"), *query, &errors);
               if (!page.ok()) return Failure(page.status(), errors);
               json items = json::array();
               for (const domain::Record& record : page->items) items.push_back(record.ToJson());
               return ApiResponse::Json(Items(std::move(items), page->next_cursor));
             });

  router.Add("POST", std::string(kRecords), Access::kAuthenticated,
             [context, records](ApiRequest& request) -> Result<ApiResponse> {
               FieldErrors errors;
               Result<json> values = RecordValues(request, &errors);
               if (!values.ok()) return Failure(values.status(), errors);
               Result<domain::RecordChange> change =
                   records->Create(Change(context, request), Param(request, "app_id"),
                                   Param(request, "object_id"), *values, &errors);
               if (!change.ok()) return Failure(change.status(), errors);
               const domain::Record& record = *change->after;
               return ApiResponse::Created(record.ToJson(),
                                           AppLocation(record.app_id) + "/records/" + record.id,
                                           record.version);
             });

  router.Add("GET", std::string(kRecord), Access::kAuthenticated,
             [records](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_ASSIGN_OR_RETURN(domain::Record record,
                                       records->Get(request.who().org_id, Param(request, "app_id"),
                                                    Param(request, "record_id")));
               return ApiResponse::Entity(record.ToJson(), record.version);
             });

  router.Add("PATCH", std::string(kRecord), Access::kAuthenticated,
             [context, records](ApiRequest& request) -> Result<ApiResponse> {
               FieldErrors errors;
               Result<json> values = RecordValues(request, &errors);
               if (!values.ok()) return Failure(values.status(), errors);
               Result<domain::RecordChange> change =
                   records->Update(Change(context, request), Param(request, "app_id"),
                                   Param(request, "record_id"), *values, IfMatch(request), &errors);
               if (!change.ok()) return Failure(change.status(), errors);
               const domain::Record& record = *change->after;
               return ApiResponse::Entity(record.ToJson(), record.version);
             });

  router.Add("DELETE", std::string(kRecord), Access::kBuilder,
             [context, records](ApiRequest& request) -> Result<ApiResponse> {
               QUARRY_RETURN_IF_ERROR(records->Delete(Change(context, request),
                                                      Param(request, "app_id"),
                                                      Param(request, "record_id"), IfMatch(request)));
               return ApiResponse::NoContent();
             });
}

}  // namespace

void RegisterAppRoutes(Router& router, ServerContext& context) {
  ServerContext* shared = &context;
  if (!context.records) context.records = std::make_shared<domain::RecordService>(context.db, context.clock);
  std::shared_ptr<domain::RecordService> records = context.records;
  RegisterApps(router, shared);
  RegisterObjects(router, shared);
  RegisterFields(router, shared);
  RegisterRecords(router, shared, std::move(records));
}

}  // namespace quarry::api
