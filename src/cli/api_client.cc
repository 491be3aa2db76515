#include "cli/api_client.h"

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <sstream>

namespace quarry::cli {
namespace {

std::string EnvOr(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

std::string TrimTrailingSlash(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url;
}

}  // namespace

std::string LoginFilePath() {
  std::string base = EnvOr("XDG_CONFIG_HOME");
  if (base.empty()) {
    const std::string home = EnvOr("HOME");
    base = (home.empty() ? std::string(".") : home) + "/.config";
  }
  return base + "/quarry/cli.json";
}

Status SaveLogin(const std::string& server, const std::string& token) {
  const std::filesystem::path path(LoginFilePath());
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) {
    return UnavailableError("cannot create " + path.parent_path().string() + ": " + ec.message());
  }
  const std::string temp = path.string() + ".tmp";
  {
    // Created 0600 before anything is written, so the token is never readable by others.
    const mode_t old_mask = ::umask(077);
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    ::umask(old_mask);
    if (!out) return UnavailableError("cannot write " + temp + "; check the directory's permissions");
    out << nlohmann::json{{"server", server}, {"token", token}}.dump(2) << "\n";
    if (!out) return UnavailableError("cannot write " + temp);
  }
  ::chmod(temp.c_str(), 0600);
  std::filesystem::rename(temp, path, ec);
  if (ec) return UnavailableError("cannot replace " + path.string() + ": " + ec.message());
  return Status::Ok();
}

Status ResolveClientSettings(ClientSettings* settings) {
  if (settings->server.empty()) settings->server = EnvOr("QUARRY_SERVER");
  if (settings->token.empty()) settings->token = EnvOr("QUARRY_TOKEN");
  if (settings->server.empty() || settings->token.empty()) {
    std::ifstream in(LoginFilePath(), std::ios::binary);
    if (in) {
      std::ostringstream text;
      text << in.rdbuf();
      const nlohmann::json saved = nlohmann::json::parse(text.str(), nullptr, false);
      if (saved.is_object()) {
        if (settings->server.empty()) settings->server = saved.value("server", "");
        if (settings->token.empty()) settings->token = saved.value("token", "");
      }
    }
  }
  if (settings->server.empty()) {
    return FailedPreconditionError(
        "no Quarry server is known; run `quarry login --server http://HOST:PORT --token TOKEN` "
        "first, or pass --server / set QUARRY_SERVER");
  }
  settings->server = TrimTrailingSlash(settings->server);
  return Status::Ok();
}

ApiClient::ApiClient(ClientSettings settings) : settings_(std::move(settings)) {
  auto http = net::HttpClient::Create();
  if (!http.ok()) {
    std::cerr << "error: " << http.status().message() << "\n";
    throw CLI::RuntimeError(1);
  }
  http_ = std::move(http).value();
}

ApiClient::~ApiClient() = default;

net::HttpClientRequest ApiClient::MakeRequest(std::string_view method, std::string_view path,
                                              const nlohmann::json& body) const {
  net::HttpClientRequest request;
  request.method = std::string(method);
  request.url = settings_.server + std::string(path);
  request.headers.emplace_back("Accept", "application/json");
  if (!settings_.token.empty()) {
    request.headers.emplace_back("Authorization", "Bearer " + settings_.token);
  }
  for (const auto& header : settings_.extra_headers) request.headers.push_back(header);
  if (!body.is_null()) {
    request.headers.emplace_back("Content-Type", "application/json");
    request.body = body.dump();
  }
  request.connect_timeout = std::chrono::seconds(5);
  request.request_timeout = std::chrono::minutes(5);
  request.idle_timeout = std::chrono::minutes(2);
  return request;
}

ApiCallResult ApiClient::Call(std::string_view method, std::string_view path,
                              const nlohmann::json& body) {
  net::HttpClientResponse response = http_->Send(MakeRequest(method, path, body));
  ApiCallResult result;
  if (response.outcome != net::TransportOutcome::kOk) {
    result.transport_error = "cannot reach the Quarry server at " + settings_.server + ": " +
                             response.error + "; is `quarry serve` running there?";
    return result;
  }
  result.status = response.status;
  result.headers = std::move(response.headers);
  result.raw_body = std::move(response.body);
  result.body = nlohmann::json::parse(result.raw_body, nullptr, false);
  if (result.body.is_discarded()) result.body = nullptr;
  return result;
}

ApiCallResult ApiClient::Stream(
    std::string_view method, std::string_view path, const nlohmann::json& body,
    const std::function<void(const std::string&, const nlohmann::json&)>& on_event) {
  net::HttpClientRequest request = MakeRequest(method, path, body);
  request.headers.emplace_back("Accept", "text/event-stream");
  auto status = std::make_shared<int>(0);
  auto error_body = std::make_shared<std::string>();
  SseParser parser([&on_event](const std::string& event, const std::string& data) {
    nlohmann::json parsed = nlohmann::json::parse(data, nullptr, false);
    on_event(event, parsed.is_discarded() ? nlohmann::json(data) : parsed);
  });
  std::promise<net::HttpClientResponse> done;
  net::HttpCallbacks callbacks;
  callbacks.on_headers = [status](int code, const net::HttpHeaders&) { *status = code; };
  callbacks.on_data = [status, error_body, &parser](std::string_view bytes) {
    if (*status >= 200 && *status < 300) {
      parser.Feed(bytes);
    } else if (error_body->size() < 1'000'000) {
      error_body->append(bytes);
    }
    return true;
  };
  callbacks.on_complete = [&done](net::HttpClientResponse response) {
    done.set_value(std::move(response));
  };
  auto started = http_->Start(std::move(request), std::move(callbacks));
  ApiCallResult result;
  if (!started.ok()) {
    result.transport_error = started.status().message();
    return result;
  }
  net::HttpClientResponse response = done.get_future().get();
  if (response.outcome != net::TransportOutcome::kOk) {
    result.transport_error = "the stream from " + settings_.server + " broke: " + response.error;
    return result;
  }
  result.status = response.status;
  result.raw_body = *error_body;
  result.body = nlohmann::json::parse(result.raw_body, nullptr, false);
  if (result.body.is_discarded()) result.body = nullptr;
  return result;
}

void FailWithApiError(const ApiCallResult& result, std::string_view what) {
  if (!result.transport_error.empty()) {
    std::cerr << "error: " << what << ": " << result.transport_error << "\n";
    throw CLI::RuntimeError(1);
  }
  const nlohmann::json* error =
      result.body.is_object() && result.body.contains("error") ? &result.body["error"] : nullptr;
  if (error != nullptr && error->is_object()) {
    std::cerr << "error: " << what << ": " << error->value("message", "") << " (HTTP "
              << result.status << ", " << error->value("code", "") << ")\n";
    const std::string hint = error->value("hint", "");
    if (!hint.empty()) std::cerr << "  hint: " << hint << "\n";
  } else {
    std::cerr << "error: " << what << ": HTTP " << result.status << " " << result.raw_body.substr(0, 500)
              << "\n";
  }
  throw CLI::RuntimeError(1);
}

std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  constexpr size_t kMaxCell = 60;
  auto clip = [](const std::string& cell) {
    return cell.size() <= kMaxCell ? cell : cell.substr(0, kMaxCell - 3) + "...";
  };
  std::vector<size_t> widths(header.size(), 0);
  for (size_t i = 0; i < header.size(); ++i) widths[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], clip(row[i]).size());
    }
  }
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < cells.size() ? clip(cells[i]) : std::string();
      out << cell;
      if (i + 1 < widths.size()) out << std::string(widths[i] - cell.size() + 2, ' ');
    }
    out << "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
  return out.str();
}

void SseParser::Feed(std::string_view bytes) {
  buffer_.append(bytes);
  size_t start = 0;
  for (;;) {
    const size_t newline = buffer_.find('\n', start);
    if (newline == std::string::npos) break;
    std::string_view line(buffer_.data() + start, newline - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    Line(line);
    start = newline + 1;
  }
  buffer_.erase(0, start);
}

void SseParser::Line(std::string_view line) {
  if (line.empty()) {
    if (!data_.empty() || !event_.empty()) {
      on_event_(event_.empty() ? "message" : event_, data_);
    }
    event_.clear();
    data_.clear();
    return;
  }
  if (line.front() == ':') return;  // comment (keep-alive)
  const size_t colon = line.find(':');
  std::string_view field = line.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view() : line.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "event") {
    event_ = std::string(value);
  } else if (field == "data") {
    if (!data_.empty()) data_.push_back('\n');
    data_.append(value);
  }
}

}  // namespace quarry::cli
