// Server-sent events over net::Responder (the WHATWG HTML "server-sent
// events" text format: "event:" and "data:" lines, a blank line per event).

#include <mutex>
#include <utility>

#include "api/internal.h"

namespace quarry::api::internal {
namespace {

// Event names and comments are single lines: a newline would end the field
// and let data smuggle in fake events.
std::string OneLine(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

class ResponderSseStream final : public SseStream {
 public:
  ResponderSseStream(std::shared_ptr<net::Responder> responder, std::string request_id)
      : responder_(std::move(responder)), request_id_(std::move(request_id)) {}

  ~ResponderSseStream() override { Close(); }

  bool Send(std::string_view event, const nlohmann::json& data) override {
    // JSON text has no raw newlines, so the payload is one data line.
    return WriteEvent("event: " + OneLine(event) + "\ndata: " + DumpJson(data) + "\n\n");
  }

  bool Comment(std::string_view text) override { return WriteEvent(": " + OneLine(text) + "\n\n"); }

  void Fail(const ApiError& error) override {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    if (!started_) {
      // Nothing sent yet: an ordinary error response is clearer to clients
      // than a stream that only holds an error.
      responder_->Send(ToHttpResponse(ApiResponse::Error(error), request_id_));
      return;
    }
    responder_->Write("event: error\ndata: " + DumpJson(error.ToJson()) + "\n\n");
    responder_->End();
  }

  void Close() override {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    StartLocked();
    responder_->End();
  }

  bool closed() const override {
    std::lock_guard lock(mutex_);
    return closed_ || responder_->closed();
  }

  bool started() const override {
    std::lock_guard lock(mutex_);
    return started_;
  }

 private:
  bool WriteEvent(std::string bytes) {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    StartLocked();
    if (!responder_->Write(std::move(bytes))) {
      // The client went away or reads too slowly: the producer must stop.
      closed_ = true;
      return false;
    }
    return true;
  }

  void StartLocked() {
    if (started_) return;
    started_ = true;
    responder_->BeginStream(200, {{"Content-Type", "text/event-stream; charset=utf-8"},
                                  {"Cache-Control", "no-cache"},
                                  {"X-Accel-Buffering", "no"},
                                  {"X-Request-Id", request_id_}});
  }

  mutable std::mutex mutex_;
  std::shared_ptr<net::Responder> responder_;
  std::string request_id_;
  bool started_ = false;
  bool closed_ = false;
};

}  // namespace

std::shared_ptr<SseStream> MakeSseStream(std::shared_ptr<net::Responder> responder, std::string request_id) {
  return std::make_shared<ResponderSseStream>(std::move(responder), std::move(request_id));
}

}  // namespace quarry::api::internal
