#pragma once
// The `quarry` command's client for a Quarry server's REST API: where the
// server is and which token to send (flags, then QUARRY_SERVER /
// QUARRY_TOKEN, then the file written by `quarry login`), blocking JSON
// calls, server-sent-event streams, and output as tables or JSON.
//
// The login file is $XDG_CONFIG_HOME/quarry/cli.json (default
// ~/.config/quarry/cli.json), {"server": "...", "token": "qk_..."}, written
// with mode 0600 because it holds a credential.
//
// Errors from the server arrive in the API's envelope
// {"error":{"code","message","hint","details"}}; PrintApiError shows the
// message and the hint, which says what to do.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "net/http_client.h"

namespace quarry::cli {

struct ClientSettings {
  std::string server{};  // "http://127.0.0.1:8080"
  std::string token{};
  bool json_output = false;
  net::HttpHeaders extra_headers{};  // sent with every request (e.g. a session cookie)
};

// Fills `settings` fields left empty from the environment and the login file.
// FailedPrecondition (saying to run `quarry login`) when no server is known.
Status ResolveClientSettings(ClientSettings* settings);
std::string LoginFilePath();
Status SaveLogin(const std::string& server, const std::string& token);

struct ApiCallResult {
  int status = 0;
  nlohmann::json body = nullptr;
  std::string raw_body{};
  net::HttpHeaders headers{};
  std::string transport_error{};  // set when no HTTP response arrived
  bool ok() const { return transport_error.empty() && status >= 200 && status < 300; }
};

class ApiClient {
 public:
  explicit ApiClient(ClientSettings settings);
  ~ApiClient();
  ApiCallResult Call(std::string_view method, std::string_view path,
                     const nlohmann::json& body = nullptr);
  // POST/GET a server-sent-event stream; on_event(name, data) per event, in
  // order, as they arrive. Returns the final HTTP result (an error envelope
  // when the stream never started).
  ApiCallResult Stream(std::string_view method, std::string_view path, const nlohmann::json& body,
                       const std::function<void(const std::string& event,
                                                const nlohmann::json& data)>& on_event);
  const ClientSettings& settings() const { return settings_; }

 private:
  net::HttpClientRequest MakeRequest(std::string_view method, std::string_view path,
                                     const nlohmann::json& body) const;
  ClientSettings settings_;
  std::unique_ptr<net::HttpClient> http_;
};

// Prints "error: <message>\n  hint: <hint>" (or the transport problem) to
// stderr and throws CLI::RuntimeError(1).
[[noreturn]] void FailWithApiError(const ApiCallResult& result, std::string_view what);

// A plain-text table: header row, then rows; columns padded to their widest
// cell (cells longer than 60 characters are cut with "…").
std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);

// Incremental text/event-stream parser: feed bytes as they arrive.
class SseParser {
 public:
  using EventCallback = std::function<void(const std::string& event, const std::string& data)>;
  explicit SseParser(EventCallback on_event) : on_event_(std::move(on_event)) {}
  void Feed(std::string_view bytes);

 private:
  void Line(std::string_view line);
  EventCallback on_event_;
  std::string buffer_, event_, data_;
};

}  // namespace quarry::cli
