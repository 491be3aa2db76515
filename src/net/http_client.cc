// HttpClient on libcurl's multi interface (libcurl >= 7.80 for
// CURLOPT_PREREQFUNCTION; Debian ships 7.88).
//
// Design: one loop thread owns the CURLM handles and every easy handle. Other
// threads only touch a mutex-protected queue of new transfers and
// cancellations, then wake the loop through an eventfd (once per batch: a
// Start() while the loop has not taken the queue yet writes nothing). All
// callbacks (libcurl's and the caller's) therefore run on the loop thread, and a
// transfer is only ever removed from the multi handle between
// curl_multi_socket_action() calls, never from inside a libcurl callback.
//
// The loop uses libcurl's event-driven interface (multi_socket_action) so that
// the cost of one wake-up is proportional to the sockets that are ready, not
// to the number of transfers in flight: curl_multi_perform() and
// curl_multi_poll() walk every transfer on every call, which made 10,000
// concurrent requests spend seconds of CPU just waiting. libcurl tells us
// which sockets to watch (CURLMOPT_SOCKETFUNCTION -> an epoll set) and when
// to call it back without socket activity (CURLMOPT_TIMERFUNCTION); the
// eventfd for cross-thread wake-ups lives in the same epoll set.
//
// libcurl 7.88 still has per-transfer costs linear in the size of a multi
// handle's connection cache (looking for a reusable connection walks every
// connection to the host, and curl_multi_remove_handle() walks the whole
// cache), which makes 10,000 HTTP/1.1 transfers on one multi handle quadratic.
// So transfers are spread over shards, each its own multi handle, all driven
// by this one loop and epoll set: a new transfer goes to the first shard with
// fewer than kTransfersPerShard in flight. Light loads therefore stay on
// shard 0 with full connection reuse; only large bursts open more shards
// (whose idle connections serve the next burst). When the caller limits
// connections (max_connections_per_host / max_total_connections), libcurl
// enforces the limit per multi handle, so there is then exactly one shard,
// and the limit also bounds the cache those walks cover.
//
// The idle timeout is our own: libcurl's LOW_SPEED_TIME has one-second
// granularity and counts from the start of the transfer, whereas we want "no
// bytes for N ms once the request is on the wire". Each transfer records its
// last activity (a plain store on every callback) and has one entry in an
// ordered set of idle deadlines, inserted when it goes on the wire. The entry
// is a lower bound (activity only moves the real deadline later), so the loop
// only looks at entries that are due: a due entry whose transfer saw activity
// since is re-inserted at its real deadline, otherwise the transfer expired.
// Each check therefore costs O(log n) per due entry, never a scan of all
// transfers.
//
// What keeps the cost per request down (measured with callgrind and strace
// on http_client_benchmark; libcurl's own work is most of what remains):
//  - easy handles are reused from a free list (curl_easy_reset) together
//    with their error and header buffers: creating and destroying one per
//    request cost ~13k instructions, the header list an allocation per line;
//  - the body is not copied (CURLOPT_POSTFIELDS points into the request);
//  - an idle connection stays in the epoll set (see SocketCallback): no
//    epoll_ctl ADD and DEL per request on a reused connection;
//  - the eventfd is edge-triggered and never read; requests started from our
//    own callbacks (the loop thread) do not write it at all; what
//    StartAdmitted() hands to libcurl is acted on before the next wait, not
//    after an epoll_wait that would return at once. A request on a reused
//    connection thus costs the loop two epoll_waits, libcurl's liveness
//    polls, one send and one receive;
//  - a burst of new requests is handed to libcurl kMaxStartsPerIteration at a
//    time, so the first requests are on the wire while later connections are
//    still being opened (see StartAdmitted()).

#include "net/http_client.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "common/encoding.h"

namespace quarry::net {

std::string_view TransportOutcomeName(TransportOutcome outcome) {
  switch (outcome) {
    case TransportOutcome::kOk: return "ok";
    case TransportOutcome::kConnectFailed: return "connect_failed";
    case TransportOutcome::kConnectTimeout: return "connect_timeout";
    case TransportOutcome::kRequestTimeout: return "request_timeout";
    case TransportOutcome::kIdleTimeout: return "idle_timeout";
    case TransportOutcome::kConnectionReset: return "connection_reset";
    case TransportOutcome::kResponseTooLarge: return "response_too_large";
    case TransportOutcome::kCancelled: return "cancelled";
    case TransportOutcome::kOther: return "other";
  }
  return "unknown";
}

const std::string* HttpClientResponse::FindHeader(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreAsciiCase(key, name)) return &value;
  }
  return nullptr;
}

namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

// The loop thread of whichever HttpClient runs on this thread (nullptr on any
// other thread): Send() must never block a loop thread.
thread_local const HttpClient* tls_loop_client = nullptr;

// Upper bound on one epoll_wait(), so that timers and shutdown never depend on
// a wake-up alone.
constexpr milliseconds kMaxPollWait{1000};

// Ready events taken from epoll per wait (more simply wait for the next round).
constexpr int kMaxEpollEvents = 1024;

// Transfers in flight per shard (multi handle) before the next shard is used.
constexpr size_t kTransfersPerShard = 256;

// Response header fields room is made for at once (more simply grow).
constexpr size_t kExpectedResponseHeaders = 8;

// New transfers handed to libcurl per loop iteration (see StartAdmitted()).
constexpr size_t kMaxStartsPerIteration = 32;

// Easy handles kept for reuse when fewer transfers are in flight than before
// (each holds libcurl's buffers, some 20 KB), and the header buffer capacity
// a kept handle may hold on to.
constexpr size_t kMaxSpareHandles = 256;
constexpr size_t kMaxKeptHeaderBytes = 16 * 1024;

// Idle deadlines (lower bounds) of the transfers on the wire, earliest first.
using IdleDeadlines = std::set<std::pair<std::chrono::steady_clock::time_point, RequestId>>;

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreAsciiCase(text.substr(0, prefix.size()), prefix);
}

// "https://host:443/path?q" -> "host:443" (no userinfo, path or query: those
// may carry secrets such as presigned signatures).
std::string UrlHost(std::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return "?";
  std::string_view rest = url.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  const size_t at = rest.rfind('@');
  if (at != std::string_view::npos) rest.remove_prefix(at + 1);
  return std::string(rest);
}

Status ValidateRequest(const HttpClientRequest& request) {
  const std::string_view url = request.url;
  if (!StartsWithIgnoreCase(url, "http://") && !StartsWithIgnoreCase(url, "https://")) {
    return InvalidArgumentError("URL must start with http:// or https:// (got \"" +
                                std::string(url.substr(0, 64)) + "\")");
  }
  for (const char c : url) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f) {
      return InvalidArgumentError(
          "URL contains a space, control or non-ASCII character; percent-encode it before "
          "calling the HTTP client (host " + UrlHost(url) + ")");
    }
  }
  if (UrlHost(url).empty()) {
    return InvalidArgumentError("URL has no host: \"" + std::string(url.substr(0, 64)) + "\"");
  }
  if (request.method.empty() ||
      request.method.find_first_of(" \t\r\n:") != std::string::npos) {
    return InvalidArgumentError("HTTP method \"" + request.method + "\" is not a valid token");
  }
  for (const auto& [name, value] : request.headers) {
    if (name.empty() || name.find_first_of(" \t\r\n:") != std::string::npos) {
      return InvalidArgumentError("header name \"" + name + "\" is not a valid token");
    }
    if (value.find_first_of("\r\n") != std::string::npos) {
      return InvalidArgumentError("header \"" + name + "\" has a CR or LF in its value");
    }
  }
  if (request.connect_timeout.count() <= 0 || request.request_timeout.count() <= 0 ||
      request.idle_timeout.count() <= 0) {
    return InvalidArgumentError("connect_timeout, request_timeout and idle_timeout must be positive");
  }
  return Status::Ok();
}

std::string_view TrimSpaces(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\r' ||
                           text.back() == '\n')) {
    text.remove_suffix(1);
  }
  return text;
}

class CurlHttpClient;

// One libcurl multi handle of the client, with the timer libcurl asked for.
struct Shard {
  CurlHttpClient* owner = nullptr;
  uint32_t index = 0;  // in CurlHttpClient::shards_
  CURLM* multi = nullptr;
  size_t transfers = 0;  // added and not yet removed
  std::optional<std::chrono::steady_clock::time_point> timer;  // when to call CURL_SOCKET_TIMEOUT
};

// A libcurl easy handle and the buffers a transfer needs with it. Kept on a
// free list between transfers (curl_easy_reset, buffers keep their capacity),
// since creating and destroying a handle per request cost more than the rest
// of our per-request work together.
struct EasyHandle {
  CURL* easy = nullptr;
  // CURLOPT_HTTPHEADER without an allocation per line: the lines, each
  // NUL-terminated, in one buffer, and the list nodes pointing into it.
  // libcurl reads the list during the transfer and never keeps or frees it.
  std::string header_text;
  std::vector<curl_slist> header_nodes;
  char error_buffer[CURL_ERROR_SIZE] = {};

  EasyHandle() = default;
  EasyHandle(const EasyHandle&) = delete;
  EasyHandle& operator=(const EasyHandle&) = delete;
  ~EasyHandle() {
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

// What the loop knows about a socket, by descriptor number (see
// CurlHttpClient::SocketCallback).
struct SocketEntry {
  uint32_t events = 0;      // the epoll events it is registered with; 0: not in the epoll set
  uint32_t shard = 0;       // the shard in that registration's key
  bool watched = false;     // libcurl wants events on it (not parked)
  bool connection = false;  // a connection socket: opened and closed through our callbacks
};

struct Transfer {
  CurlHttpClient* owner = nullptr;
  RequestId id = 0;
  HttpClientRequest request;
  HttpCallbacks callbacks;

  Shard* shard = nullptr;  // while in a multi handle
  std::unique_ptr<EasyHandle> handle;  // from the moment it is started until it ends
  CURL* easy = nullptr;                // handle->easy

  SteadyClock::time_point started{};
  SteadyClock::time_point last_activity{};
  bool connected = false;  // the request is about to go / went on the wire
  int sends = 0;           // times libcurl was about to send the request (PrereqCallback)
  // This transfer's entry in CurlHttpClient::idle_deadlines_ (once connected).
  std::optional<IdleDeadlines::iterator> idle_entry;
  curl_off_t last_upload_bytes = 0;

  // Header block being parsed (1xx blocks are dropped at their blank line).
  int block_status = 0;
  std::string block_version;
  HttpHeaders block_headers;
  bool headers_done = false;

  // Set by a callback that aborted the transfer: this outcome wins over the
  // CURLcode libcurl reports for the abort.
  bool aborted = false;
  TransportOutcome abort_outcome = TransportOutcome::kOther;
  std::string abort_error;

  HttpClientResponse response;
};

class CurlHttpClient final : public HttpClient {
 public:
  explicit CurlHttpClient(const HttpClientOptions& options)
      : options_(options),
        single_shard_(options.max_connections_per_host > 0 || options.max_total_connections > 0) {}

  ~CurlHttpClient() override {
    assert(tls_loop_client != this && "an HttpClient must not be destroyed from its own callbacks");
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    Wake();
    if (thread_.joinable()) thread_.join();
    spare_handles_.clear();
    // Closing cached connections may still call SocketCallback, which needs
    // the epoll set: it is closed after the multi handle.
    for (auto& shard : shards_) curl_multi_cleanup(shard->multi);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    if (epoll_fd_ >= 0) ::close(epoll_fd_);
  }

  // Creates the epoll set, the wake-up eventfd and the first shard, and
  // starts the loop thread.
  Status Init() {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      return InternalError(std::string("epoll_create1 failed: ") + std::strerror(errno) +
                           " (out of file descriptors? raise RLIMIT_NOFILE)");
    }
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (wake_fd_ < 0) {
      return InternalError(std::string("eventfd failed: ") + std::strerror(errno) +
                           " (out of file descriptors? raise RLIMIT_NOFILE)");
    }
    epoll_event event{};
    event.events = EPOLLIN | EPOLLET;  // never read: see Wake()
    event.data.u64 = 0;                // see EpollKey()
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &event) != 0) {
      return InternalError(std::string("epoll_ctl(eventfd) failed: ") + std::strerror(errno));
    }
    if (AddShard() == nullptr) return InternalError("curl_multi_init failed (out of memory?)");
    thread_ = std::thread([this] { Loop(); });
    return Status::Ok();
  }

  Result<RequestId> Start(HttpClientRequest request, HttpCallbacks callbacks) override {
    QUARRY_RETURN_IF_ERROR(ValidateRequest(request));
    auto transfer = std::make_unique<Transfer>();
    transfer->request = std::move(request);
    transfer->callbacks = std::move(callbacks);
    transfer->started = SteadyClock::now();
    // From a callback (the loop thread: a completion starting the next
    // request), the loop takes the queue before it waits again, so no
    // eventfd write (and read) is needed; see Loop().
    const bool on_loop = tls_loop_client == this;
    RequestId id = 0;
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        return UnavailableError("the HTTP client is shutting down; no new requests are accepted");
      }
      id = ++next_id_;
      transfer->id = id;
      pending_.push_back(std::move(transfer));
      in_flight_.fetch_add(1, std::memory_order_relaxed);
      wake = NeedsWakeLocked(on_loop);
    }
    AfterQueued(on_loop, wake);
    return id;
  }

  void Cancel(RequestId id) override {
    const bool on_loop = tls_loop_client == this;
    bool wake = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || id == 0 || id > next_id_) return;
      cancels_.push_back(id);
      wake = NeedsWakeLocked(on_loop);
    }
    AfterQueued(on_loop, wake);
  }

  // Work was queued under mu_: from another thread, the loop needs one wake-up
  // (only the first queuer since the loop last looked writes the eventfd).
  bool NeedsWakeLocked(bool on_loop) {
    if (on_loop) return false;
    const bool wake = !wake_pending_;
    wake_pending_ = true;
    return wake;
  }
  // After mu_ is released: on the loop thread, the loop acts on the queue
  // before its next wait; elsewhere, the eventfd is written when needed.
  void AfterQueued(bool on_loop, bool wake) {
    if (on_loop) {
      queued_from_loop_ = true;
    } else if (wake) {
      Wake();
    }
  }

  size_t in_flight() const override { return in_flight_.load(std::memory_order_relaxed); }

 private:
  // ---- libcurl callbacks (loop thread, inside curl_multi_socket_action) ----

  static size_t HeaderCallback(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t total = size * count;
    if (t->aborted) return 0;
    t->last_activity = t->owner->loop_now_;
    if (t->headers_done) return total;  // trailers: ignored
    std::string_view line(data, total);
    if (line.substr(0, 5) == "HTTP/") {
      // A new status line starts a new block (after a 1xx block).
      t->block_headers.clear();
      t->block_headers.reserve(kExpectedResponseHeaders);
      t->block_status = 0;
      t->block_version.clear();
      const size_t space = line.find(' ');
      if (space != std::string_view::npos) {
        t->block_version = std::string(line.substr(5, space - 5));
        std::string_view rest = line.substr(space + 1);
        int status = 0;
        for (size_t i = 0; i < rest.size() && i < 3 && rest[i] >= '0' && rest[i] <= '9'; ++i) {
          status = status * 10 + (rest[i] - '0');
        }
        t->block_status = status;
      }
      return total;
    }
    const std::string_view trimmed = TrimSpaces(line);
    if (trimmed.empty()) {
      // End of a header block.
      if (t->block_status >= 100 && t->block_status < 200) {
        t->block_headers.clear();
        t->block_status = 0;
        return total;
      }
      return CompleteHeaders(t) ? total : 0;
    }
    if ((line.front() == ' ' || line.front() == '\t') && !t->block_headers.empty()) {
      // obs-fold continuation of the previous field.
      t->block_headers.back().second.append(" ").append(trimmed);
      return total;
    }
    const size_t colon = trimmed.find(':');
    if (colon == std::string_view::npos) return total;  // not a field; ignore
    t->block_headers.emplace_back(std::string(trimmed.substr(0, colon)),
                                  std::string(TrimSpaces(trimmed.substr(colon + 1))));
    return total;
  }

  // A callback threw: the request is cancelled (the exception must not cross
  // libcurl's C frames) and the bug is logged.
  static void AbortOnException(Transfer* t, const char* callback, const char* what) {
    std::string error = std::string("cancelled: the ") + callback + " callback threw" +
                        (what != nullptr ? std::string(": ") + what : std::string(" a non-standard exception"));
    spdlog::error("HTTP request to {}: {}", UrlHost(t->request.url), error);
    Abort(t, TransportOutcome::kCancelled, std::move(error));
  }

  // Publishes the final header block and calls on_headers. False when the
  // transfer must abort (the callback threw).
  static bool CompleteHeaders(Transfer* t) {
    t->headers_done = true;
    t->response.headers_received = true;
    t->response.status = t->block_status;
    t->response.headers = std::move(t->block_headers);
    t->response.http_version = std::move(t->block_version);
    t->block_headers.clear();
    if (!t->callbacks.on_data) {
      // Pre-size the buffer from Content-Length, within the cap.
      curl_off_t length = -1;
      if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK &&
          length > 0 && static_cast<uint64_t>(length) <= t->request.max_response_bytes) {
        t->response.body.reserve(static_cast<size_t>(length));
      }
    }
    if (!t->callbacks.on_headers) return true;
    try {
      t->callbacks.on_headers(t->response.status, t->response.headers);
      return true;
    } catch (const std::exception& e) {
      AbortOnException(t, "on_headers", e.what());
    } catch (...) {
      AbortOnException(t, "on_headers", nullptr);
    }
    return false;
  }

  static void Abort(Transfer* t, TransportOutcome outcome, std::string error) {
    t->aborted = true;
    t->abort_outcome = outcome;
    t->abort_error = std::move(error);
  }

  static size_t WriteCallback(char* data, size_t size, size_t count, void* user) {
    auto* t = static_cast<Transfer*>(user);
    const size_t total = size * count;
    if (t->aborted) return 0;
    t->last_activity = t->owner->loop_now_;
    if (!t->headers_done && !CompleteHeaders(t)) return 0;
    if (t->response.body_bytes + total > t->request.max_response_bytes) {
      Abort(t, TransportOutcome::kResponseTooLarge,
            "the response from " + UrlHost(t->request.url) + " is larger than max_response_bytes (" +
                std::to_string(t->request.max_response_bytes) +
                " bytes); raise the limit if such responses are expected");
      return 0;
    }
    t->response.body_bytes += total;
    if (!t->callbacks.on_data) {
      t->response.body.append(data, total);
      return total;
    }
    try {
      if (!t->callbacks.on_data(std::string_view(data, total))) {
        Abort(t, TransportOutcome::kCancelled, "cancelled: the on_data callback returned false");
        return 0;
      }
      return total;
    } catch (const std::exception& e) {
      AbortOnException(t, "on_data", e.what());
    } catch (...) {
      AbortOnException(t, "on_data", nullptr);
    }
    return 0;
  }

  // Called when a connection is ready and the request is about to be sent
  // (also on a reused connection): from here on the idle timeout applies.
  // A second call for one transfer means libcurl is resending the request on
  // its own: it does so when a reused keep-alive connection closes before any
  // response byte, although the server may have received (and acted on) the
  // request. Whether to resend is the caller's retry policy's decision
  // (counted, bounded, after a backoff), so the transfer ends instead, as
  // kConnectionReset.
  static int PrereqCallback(void* user, char*, char*, int, int) {
    auto* t = static_cast<Transfer*>(user);
    if (++t->sends > 1) {
      Abort(t, TransportOutcome::kConnectionReset,
            t->request.method + " request to " + UrlHost(t->request.url) +
                " failed (connection_reset): the server closed a reused keep-alive connection before answering; the "
                "request may or may not have reached it, so it was not sent again on a new connection (retry it if "
                "the operation is safe to repeat)");
      return CURL_PREREQFUNC_ABORT;
    }
    t->connected = true;
    t->last_activity = SteadyClock::now();
    t->owner->ScheduleIdleCheck(t);
    return CURL_PREREQFUNC_OK;
  }

  // Upload progress counts as activity (a large body to a slow server).
  static int ProgressCallback(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t upload_now) {
    auto* t = static_cast<Transfer*>(user);
    if (upload_now != t->last_upload_bytes) {
      t->last_upload_bytes = upload_now;
      t->last_activity = SteadyClock::now();
    }
    return t->aborted ? 1 : 0;
  }

  // CURLMOPT_SOCKETFUNCTION: libcurl says which events it wants on a socket.
  // Level-triggered epoll, so a socket libcurl did not fully drain is simply
  // reported again.
  //
  // A connection socket (see OpenSocketCallback) that libcurl stops watching
  // (CURL_POLL_REMOVE: its transfer ended and the connection went back to the
  // cache) stays in the epoll set: when the next request on it wants the same
  // events, as it nearly always does, there is no epoll_ctl at all. Adding and
  // removing it per request cost ~1.5 us of system time, a tenth of the
  // client's CPU per request. An event on such a parked socket (the server
  // closed the idle connection) removes it then (see Loop()); closing it
  // removes it first (CloseSocketCallback).
  static int SocketCallback(CURL*, curl_socket_t socket, int what, void* user, void* socket_data) {
    auto* shard = static_cast<Shard*>(user);
    CurlHttpClient* self = shard->owner;
    SocketEntry* entry = self->FindSocket(socket);
    if (entry != nullptr && entry->connection) {
      if (what == CURL_POLL_REMOVE) {
        entry->watched = false;
        return 0;
      }
      uint32_t events = 0;
      if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= EPOLLIN;
      if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= EPOLLOUT;
      entry->watched = true;
      if (entry->events == events && entry->shard == shard->index) return 0;  // registered as needed
      epoll_event event{};
      event.events = events;
      event.data.u64 = EpollKey(shard->index, socket);
      const bool registered = entry->events != 0;
      int rc = ::epoll_ctl(self->epoll_fd_, registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, socket, &event);
      if (rc != 0 && errno == (registered ? ENOENT : EEXIST)) {
        rc = ::epoll_ctl(self->epoll_fd_, registered ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, socket, &event);
      }
      if (rc != 0) {
        spdlog::error("HTTP client: epoll_ctl on socket {} failed: {}", socket, std::strerror(errno));
        entry->events = 0;
        entry->watched = false;
        return -1;  // libcurl fails the transfers on this socket
      }
      entry->events = events;
      entry->shard = shard->index;
      return 0;
    }
    // Any other socket (libcurl's resolver wake-up, closed without telling
    // us): in the epoll set exactly while libcurl watches it.
    if (what == CURL_POLL_REMOVE) {
      // The socket may already be closed (then epoll dropped it itself).
      ::epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, socket, nullptr);
      return 0;
    }
    epoll_event event{};
    event.data.u64 = EpollKey(shard->index, socket);
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) event.events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) event.events |= EPOLLOUT;
    // socket_data marks a socket already in the set (assigned below). The
    // fallbacks cover a descriptor number reused behind libcurl's back.
    const bool known = socket_data != nullptr;
    int rc = ::epoll_ctl(self->epoll_fd_, known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, socket, &event);
    if (rc != 0 && errno == (known ? ENOENT : EEXIST)) {
      rc = ::epoll_ctl(self->epoll_fd_, known ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, socket, &event);
    }
    if (rc != 0) {
      spdlog::error("HTTP client: epoll_ctl on socket {} failed: {}", socket, std::strerror(errno));
      return -1;  // libcurl fails the transfers on this socket
    }
    if (!known) curl_multi_assign(shard->multi, socket, static_cast<void*>(shard));
    return 0;
  }

  // CURLOPT_OPENSOCKETFUNCTION: libcurl's connection sockets, created here so
  // that we know every one of them from birth (close-on-exec as well, so
  // that no child process inherits them).
  static curl_socket_t OpenSocketCallback(void* user, curlsocktype purpose, curl_sockaddr* address) {
    auto* self = static_cast<CurlHttpClient*>(user);
    const int fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd < 0) return CURL_SOCKET_BAD;
    if (purpose == CURLSOCKTYPE_IPCXN) {
      SocketEntry& entry = self->SocketAt(fd);
      entry = SocketEntry{};  // whatever was known about an earlier socket of this number is void
      entry.connection = true;
    }
    return fd;
  }

  // CURLOPT_CLOSESOCKETFUNCTION: libcurl closes a connection socket (libcurl
  // keeps this callback with the connection, so it is used even after the
  // easy handle that opened it went back to the free list, and from
  // curl_multi_cleanup in the destructor). A parked registration is removed
  // first: once closed, the descriptor could no longer name it.
  static int CloseSocketCallback(void* user, curl_socket_t socket) {
    auto* self = static_cast<CurlHttpClient*>(user);
    if (SocketEntry* entry = self->FindSocket(socket); entry != nullptr) {
      if (entry->connection && entry->events != 0) {
        ::epoll_ctl(self->epoll_fd_, EPOLL_CTL_DEL, socket, nullptr);
      }
      *entry = SocketEntry{};
    }
    return ::close(socket) == 0 ? 0 : 1;
  }

  SocketEntry* FindSocket(curl_socket_t socket) {
    if (socket < 0 || static_cast<size_t>(socket) >= sockets_.size()) return nullptr;
    return &sockets_[static_cast<size_t>(socket)];
  }

  SocketEntry& SocketAt(int fd) {
    const auto index = static_cast<size_t>(fd);
    if (index >= sockets_.size()) sockets_.resize(std::max(index + 1, 2 * sockets_.size()));
    return sockets_[index];
  }

  // An event on a connection socket libcurl does not watch (see
  // SocketCallback): it is taken out of the epoll set, and libcurl finds out
  // for itself when it next looks at the connection. True when `socket` was
  // such a socket.
  bool DropParkedSocket(curl_socket_t socket) {
    SocketEntry* entry = FindSocket(socket);
    if (entry == nullptr || !entry->connection || entry->watched || entry->events == 0) return false;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, socket, nullptr);
    entry->events = 0;
    return true;
  }

  // CURLMOPT_TIMERFUNCTION: when libcurl wants CURL_SOCKET_TIMEOUT (-1: never).
  static int TimerCallback(CURLM*, long timeout_ms, void* user) {
    SetTimer(static_cast<Shard*>(user), timeout_ms);
    return 0;
  }

  static void SetTimer(Shard* shard, long timeout_ms) {
    if (timeout_ms < 0) {
      shard->timer.reset();
    } else {
      shard->timer = SteadyClock::now() + milliseconds(timeout_ms);
    }
  }

  // epoll_event::data of a socket: its shard (+1, so that 0 is the eventfd)
  // and the descriptor.
  static uint64_t EpollKey(uint32_t shard_index, curl_socket_t socket) {
    return (static_cast<uint64_t>(shard_index) + 1) << 32 | static_cast<uint32_t>(socket);
  }

  // A new multi handle, hooked into the epoll set; nullptr when libcurl is out
  // of memory.
  Shard* AddShard() {
    CURLM* multi = curl_multi_init();
    if (multi == nullptr) return nullptr;
    auto shard = std::make_unique<Shard>();
    shard->owner = this;
    shard->index = static_cast<uint32_t>(shards_.size());
    shard->multi = multi;
    curl_multi_setopt(multi, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
    if (options_.max_connections_per_host > 0) {
      curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(options_.max_connections_per_host));
    }
    if (options_.max_total_connections > 0) {
      curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, static_cast<long>(options_.max_total_connections));
    }
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, &CurlHttpClient::SocketCallback);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, static_cast<void*>(shard.get()));
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, &CurlHttpClient::TimerCallback);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, static_cast<void*>(shard.get()));
    shards_.push_back(std::move(shard));
    return shards_.back().get();
  }

  // The shard for a new transfer (see the file comment); nullptr when a new
  // one is needed and cannot be created.
  Shard* PickShard() {
    if (single_shard_) return shards_.front().get();
    for (auto& shard : shards_) {
      if (shard->transfers < kTransfersPerShard) return shard.get();
    }
    return AddShard();
  }

  // The eventfd is edge-triggered in the epoll set: every write is an event,
  // so the loop never reads it (a syscall saved per wake-up); the counter
  // cannot plausibly reach its 2^64 - 2 limit.
  void Wake() {
    if (wake_fd_ < 0) return;
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(wake_fd_, &one, sizeof(one));
  }

  // Called when a transfer goes on the wire: its idle deadline from now.
  void ScheduleIdleCheck(Transfer* t) {
    if (t->idle_entry.has_value()) return;  // its entry is already a lower bound
    t->idle_entry = idle_deadlines_.emplace(t->last_activity + t->request.idle_timeout, t->id).first;
  }

  void ForgetIdleCheck(Transfer* t) {
    if (!t->idle_entry.has_value()) return;
    idle_deadlines_.erase(*t->idle_entry);
    t->idle_entry.reset();
  }

  // Milliseconds epoll_wait may sleep: until libcurl's timer, the earliest idle
  // deadline or kMaxPollWait, rounded up so that a timer is due on wake-up.
  int WaitMilliseconds() const {
    const auto now = SteadyClock::now();
    auto until = now + kMaxPollWait;
    for (const auto& shard : shards_) {
      if (shard->timer.has_value()) until = std::min(until, *shard->timer);
    }
    if (!idle_deadlines_.empty()) until = std::min(until, idle_deadlines_.begin()->first);
    if (until <= now) return 0;
    const auto wait = std::chrono::ceil<milliseconds>(until - now);
    return static_cast<int>(std::min(wait, kMaxPollWait).count());
  }

  void Loop() {
    tls_loop_client = this;
    std::vector<std::unique_ptr<Transfer>> new_transfers;
    std::vector<RequestId> cancels;
    std::vector<epoll_event> events(kMaxEpollEvents);
    int running = 0;
    for (;;) {
      loop_now_ = SteadyClock::now();
      bool stopping = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        new_transfers.swap(pending_);
        cancels.swap(cancels_);
        stopping = stopping_;
        wake_pending_ = false;
      }
      queued_from_loop_ = false;  // what the callbacks queued so far is taken
      for (auto& transfer : new_transfers) {
        if (stopping) {
          FinishUnstarted(std::move(transfer), TransportOutcome::kCancelled,
                          "cancelled: the HTTP client shut down");
        } else {
          Admit(std::move(transfer));
        }
      }
      new_transfers.clear();
      for (const RequestId id : cancels) {
        auto it = active_.find(id);
        if (it != active_.end()) {
          Finish(it->second.get(), TransportOutcome::kCancelled, "cancelled by HttpClient::Cancel()");
        }
      }
      cancels.clear();
      if (stopping) {
        std::vector<Transfer*> all;
        all.reserve(active_.size());
        for (auto& [id, t] : active_) all.push_back(t.get());
        for (Transfer* t : all) Finish(t, TransportOutcome::kCancelled, "cancelled: the HTTP client shut down");
        break;
      }
      if (StartAdmitted()) {
        // libcurl set a timer of 0 for what was added: act on it now rather
        // than after an epoll_wait that could only return at once (a sent
        // request then waits for its response in the epoll_wait below).
        RunDueTimers();
        for (auto& shard : shards_) ReadCompletions(shard->multi);
      }

      // No sleep while work is queued: admitted transfers not started yet,
      // or requests and cancellations our own callbacks queued (they did not
      // write the eventfd).
      const int wait_ms = queued_from_loop_ || !admitted_.empty() ? 0 : WaitMilliseconds();
      const int ready = ::epoll_wait(epoll_fd_, events.data(), kMaxEpollEvents, wait_ms);
      loop_now_ = SteadyClock::now();
      if (ready < 0 && errno != EINTR) {
        spdlog::error("HTTP client: epoll_wait failed: {}", std::strerror(errno));
      }
      for (int i = 0; i < ready; ++i) {
        const uint64_t key = events[i].data.u64;
        if (key == 0) continue;  // the eventfd: the queues are read at the top of the loop
        const size_t shard_index = (key >> 32) - 1;
        const auto fd = static_cast<curl_socket_t>(key & 0xffffffffu);
        if (shard_index >= shards_.size()) continue;  // cannot happen
        if (DropParkedSocket(fd)) continue;
        const uint32_t e = events[i].events;
        int mask = 0;
        if ((e & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) != 0) mask |= CURL_CSELECT_IN;
        if ((e & EPOLLOUT) != 0) mask |= CURL_CSELECT_OUT;
        if ((e & EPOLLERR) != 0) mask |= CURL_CSELECT_ERR;
        curl_multi_socket_action(shards_[shard_index]->multi, fd, mask, &running);
      }
      RunDueTimers();
      for (auto& shard : shards_) ReadCompletions(shard->multi);
      CheckIdle();
    }
    tls_loop_client = nullptr;
  }

  void RunDueTimers() {
    const auto now = SteadyClock::now();
    int running = 0;
    for (auto& shard : shards_) {
      if (!shard->timer.has_value() || *shard->timer > now) continue;
      shard->timer.reset();
      curl_multi_socket_action(shard->multi, CURL_SOCKET_TIMEOUT, 0, &running);
      // libcurl skips the timer callback when its next expiry is unchanged
      // (say we woke a hair early): re-read it so that it is never lost.
      long timeout_ms = -1;
      if (curl_multi_timeout(shard->multi, &timeout_ms) == CURLM_OK) SetTimer(shard.get(), timeout_ms);
    }
  }

  // Takes ownership of a new transfer; StartAdmitted() hands it to libcurl.
  // Until then it is in active_ (so Cancel() and shutdown find it) without
  // an easy handle.
  void Admit(std::unique_ptr<Transfer> owned) {
    Transfer* t = owned.get();
    t->owner = this;
    admitted_.push_back(t->id);
    active_.emplace(t->id, std::move(owned));
  }

  // Starts at most kMaxStartsPerIteration admitted transfers. A burst of
  // thousands of new requests is thereby started in slices between which the
  // loop sends the requests whose connections are ready: the first requests
  // reach the server while later ones are still being set up, instead of
  // every connection being opened before the first request is sent.
  // True when it started any.
  bool StartAdmitted() {
    if (admitted_.empty()) return false;
    const auto now = SteadyClock::now();
    size_t started = 0;
    while (started < kMaxStartsPerIteration && !admitted_.empty()) {
      const RequestId id = admitted_.front();
      admitted_.pop_front();
      auto it = active_.find(id);
      if (it == active_.end()) continue;  // cancelled while it waited
      ++started;
      StartTransfer(it->second.get(), now);
    }
    return started > 0;
  }

  void StartTransfer(Transfer* t, SteadyClock::time_point now) {
    t->handle = AcquireHandle();
    if (t->handle == nullptr) {
      Finish(t, TransportOutcome::kOther, "curl_easy_init failed (out of memory?)");
      return;
    }
    t->easy = t->handle->easy;
    const CURLcode setup = Configure(t, now);
    if (setup != CURLE_OK) {
      Finish(t, TransportOutcome::kOther,
             "cannot set up the request to " + UrlHost(t->request.url) + ": " + curl_easy_strerror(setup));
      return;
    }
    Shard* shard = PickShard();
    if (shard == nullptr) {
      Finish(t, TransportOutcome::kOther, "curl_multi_init failed (out of memory?)");
      return;
    }
    const CURLMcode added = curl_multi_add_handle(shard->multi, t->easy);
    if (added != CURLM_OK) {
      Finish(t, TransportOutcome::kOther,
             "cannot start the request to " + UrlHost(t->request.url) + ": " + curl_multi_strerror(added));
      return;
    }
    t->shard = shard;
    ++shard->transfers;
  }

  // An easy handle in its default state: a spare one, or a new one (nullptr
  // when libcurl is out of memory).
  std::unique_ptr<EasyHandle> AcquireHandle() {
    if (!spare_handles_.empty()) {
      std::unique_ptr<EasyHandle> handle = std::move(spare_handles_.back());
      spare_handles_.pop_back();
      return handle;
    }
    auto handle = std::make_unique<EasyHandle>();
    handle->easy = curl_easy_init();
    if (handle->easy == nullptr) return nullptr;
    return handle;
  }

  // Takes back the handle of a transfer that is not (or no longer) in a
  // multi handle. curl_easy_reset drops every option, so nothing of this
  // request (URL, headers, body pointer, callbacks) carries over.
  void ReleaseHandle(std::unique_ptr<EasyHandle> handle) {
    if (handle == nullptr) return;
    if (spare_handles_.size() >= kMaxSpareHandles) return;  // destroyed here
    curl_easy_reset(handle->easy);
    if (handle->header_text.capacity() > kMaxKeptHeaderBytes) std::string().swap(handle->header_text);
    spare_handles_.push_back(std::move(handle));
  }

  CURLcode Configure(Transfer* t, SteadyClock::time_point now) {
    CURL* easy = t->easy;
    EasyHandle& handle = *t->handle;
    const HttpClientRequest& r = t->request;
    CURLcode rc = CURLE_OK;
    auto set = [&](CURLoption option, auto value) {
      if (rc == CURLE_OK) rc = curl_easy_setopt(easy, option, value);
    };
    set(CURLOPT_PRIVATE, static_cast<void*>(t));
    set(CURLOPT_URL, r.url.c_str());
    // Send the path exactly as given: no dot-segment removal (libcurl does not
    // re-encode percent escapes either; the tests check both).
    set(CURLOPT_PATH_AS_IS, 1L);
    set(CURLOPT_PROTOCOLS_STR, "http,https");
    set(CURLOPT_NOSIGNAL, 1L);
    set(CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
    set(CURLOPT_SSL_VERIFYPEER, options_.verify_tls ? 1L : 0L);
    set(CURLOPT_SSL_VERIFYHOST, options_.verify_tls ? 2L : 0L);
    if (!options_.ca_bundle.empty()) set(CURLOPT_CAINFO, options_.ca_bundle.c_str());
    set(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);  // proxy CONNECT replies are not the response
    set(CURLOPT_TCP_KEEPALIVE, 1L);
    set(CURLOPT_FOLLOWLOCATION, 0L);
    if (!options_.user_agent.empty()) set(CURLOPT_USERAGENT, options_.user_agent.c_str());
    set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(r.connect_timeout.count()));
    // libcurl counts from here; the request's time waiting to be started
    // counts too (at least 1 ms remains: 0 would mean no limit).
    const auto left = r.request_timeout - duration_cast<milliseconds>(now - t->started);
    set(CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<milliseconds::rep>(left.count(), 1)));
    // Fails early on a declared Content-Length over the cap; WriteCallback
    // enforces the cap on everything else.
    set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(r.max_response_bytes));
    if (StartsWithIgnoreCase(r.url, "https://")) {
      // Prefer multiplexing on an existing HTTP/2 connection over opening more.
      set(CURLOPT_PIPEWAIT, 1L);
    }
    handle.error_buffer[0] = '\0';
    set(CURLOPT_ERRORBUFFER, handle.error_buffer);
    set(CURLOPT_HEADERFUNCTION, &CurlHttpClient::HeaderCallback);
    set(CURLOPT_HEADERDATA, static_cast<void*>(t));
    set(CURLOPT_WRITEFUNCTION, &CurlHttpClient::WriteCallback);
    set(CURLOPT_WRITEDATA, static_cast<void*>(t));
    set(CURLOPT_PREREQFUNCTION, &CurlHttpClient::PrereqCallback);
    set(CURLOPT_PREREQDATA, static_cast<void*>(t));
    set(CURLOPT_XFERINFOFUNCTION, &CurlHttpClient::ProgressCallback);
    set(CURLOPT_XFERINFODATA, static_cast<void*>(t));
    set(CURLOPT_NOPROGRESS, 0L);
    set(CURLOPT_OPENSOCKETFUNCTION, &CurlHttpClient::OpenSocketCallback);
    set(CURLOPT_OPENSOCKETDATA, static_cast<void*>(this));
    set(CURLOPT_CLOSESOCKETFUNCTION, &CurlHttpClient::CloseSocketCallback);
    set(CURLOPT_CLOSESOCKETDATA, static_cast<void*>(this));
    // No proxy option is set: libcurl then honours http_proxy / https_proxy /
    // no_proxy from the environment.

    const bool has_body = !r.body.empty() || r.method == "POST" || r.method == "PUT" || r.method == "PATCH";
    if (r.method == "HEAD") {
      set(CURLOPT_NOBODY, 1L);
    } else if (has_body) {
      // Not copied: the body lives in t->request until the transfer ends.
      set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
      set(CURLOPT_POSTFIELDS, r.body.data());
      if (r.method != "POST") set(CURLOPT_CUSTOMREQUEST, r.method.c_str());
    } else if (r.method == "GET") {
      set(CURLOPT_HTTPGET, 1L);
    } else {
      set(CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }
    if (rc != CURLE_OK) return rc;

    // Header lines: "Name: value", or "Name;" (libcurl's syntax for an empty
    // value); then, with a body, "Expect:" (100-continue costs a round trip)
    // and, unless the caller set one, "Content-Type:" (libcurl would add a
    // form type): a name with nothing after the colon removes that header.
    bool has_content_type = false;
    size_t text_bytes = 0;
    for (const auto& [name, value] : r.headers) {
      if (!has_content_type && EqualsIgnoreAsciiCase(name, "content-type")) has_content_type = true;
      text_bytes += name.size() + (value.empty() ? 1 : 2 + value.size()) + 1;
    }
    constexpr std::string_view kNoExpect = "Expect:";
    constexpr std::string_view kNoContentType = "Content-Type:";
    const bool remove_expect = has_body;
    const bool remove_content_type = has_body && !has_content_type;
    if (remove_expect) text_bytes += kNoExpect.size() + 1;
    if (remove_content_type) text_bytes += kNoContentType.size() + 1;
    const size_t lines = r.headers.size() + (remove_expect ? 1 : 0) + (remove_content_type ? 1 : 0);
    if (lines == 0) return CURLE_OK;
    handle.header_text.resize(text_bytes);  // not grown below: the nodes point into it
    handle.header_nodes.resize(lines);
    char* out = handle.header_text.data();
    size_t line = 0;
    auto add_line = [&](char* start) {
      *out++ = '\0';
      handle.header_nodes[line].data = start;
      handle.header_nodes[line].next = line + 1 < lines ? &handle.header_nodes[line + 1] : nullptr;
      ++line;
    };
    auto put = [&](std::string_view text) {
      std::memcpy(out, text.data(), text.size());
      out += text.size();
    };
    for (const auto& [name, value] : r.headers) {
      char* start = out;
      put(name);
      if (value.empty()) {
        put(";");
      } else {
        put(": ");
        put(value);
      }
      add_line(start);
    }
    if (remove_expect) {
      char* start = out;
      put(kNoExpect);
      add_line(start);
    }
    if (remove_content_type) {
      char* start = out;
      put(kNoContentType);
      add_line(start);
    }
    assert(out == handle.header_text.data() + text_bytes && line == lines);
    return curl_easy_setopt(easy, CURLOPT_HTTPHEADER, handle.header_nodes.data());
  }

  void ReadCompletions(CURLM* multi) {
    int remaining = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &remaining)) {
      if (message->msg != CURLMSG_DONE) continue;
      void* priv = nullptr;
      curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &priv);
      auto* t = static_cast<Transfer*>(priv);
      const CURLcode code = message->data.result;
      if (t->aborted) {
        Finish(t, t->abort_outcome, t->abort_error);
      } else if (code == CURLE_OK) {
        Finish(t, TransportOutcome::kOk, "");
      } else {
        const TransportOutcome outcome = MapCode(t, code);
        Finish(t, outcome, DescribeError(t, outcome, code));
      }
    }
  }

  static TransportOutcome MapCode(const Transfer* t, CURLcode code) {
    switch (code) {
      case CURLE_OK:
        return TransportOutcome::kOk;
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_COULDNT_CONNECT:
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_ENGINE_NOTFOUND:
      case CURLE_SSL_ENGINE_SETFAILED:
      case CURLE_SSL_ENGINE_INITFAILED:
      case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      case CURLE_SSL_INVALIDCERTSTATUS:
      case CURLE_SSL_CRL_BADFILE:
      case CURLE_USE_SSL_FAILED:
        return TransportOutcome::kConnectFailed;
      case CURLE_OPERATION_TIMEDOUT: {
        const auto elapsed = SteadyClock::now() - t->started;
        if (!t->connected && elapsed < t->request.request_timeout) return TransportOutcome::kConnectTimeout;
        return TransportOutcome::kRequestTimeout;
      }
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
      case CURLE_SSL_SHUTDOWN_FAILED:
        return TransportOutcome::kConnectionReset;
      case CURLE_FILESIZE_EXCEEDED:
        return TransportOutcome::kResponseTooLarge;
      case CURLE_ABORTED_BY_CALLBACK:
        return TransportOutcome::kCancelled;
      default:
        return TransportOutcome::kOther;
    }
  }

  static std::string DescribeError(const Transfer* t, TransportOutcome outcome, CURLcode code) {
    const char* buffer = t->handle != nullptr ? t->handle->error_buffer : "";
    std::string detail = buffer[0] != '\0' ? std::string(buffer) : curl_easy_strerror(code);
    std::string text = t->request.method + " request to " + UrlHost(t->request.url) + " failed (" +
                       std::string(TransportOutcomeName(outcome)) + "): " + detail + " [libcurl " +
                       std::to_string(static_cast<int>(code)) + ": " + curl_easy_strerror(code) + "]";
    switch (outcome) {
      case TransportOutcome::kConnectFailed:
        if (code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE) {
          text += "; the server's TLS certificate is not trusted: if a TLS-inspecting proxy or a private CA is in "
                  "the way, give its CA certificate to the client as a CA bundle (PEM)";
        } else {
          text += "; check the endpoint, DNS, network and proxy settings (https_proxy/no_proxy)";
        }
        break;
      case TransportOutcome::kConnectTimeout:
        text += "; the server did not accept a connection within " +
                std::to_string(t->request.connect_timeout.count()) + " ms";
        break;
      case TransportOutcome::kRequestTimeout:
        text += "; the exchange did not finish within request_timeout (" +
                std::to_string(t->request.request_timeout.count()) + " ms)";
        break;
      case TransportOutcome::kResponseTooLarge:
        text += "; the response is larger than max_response_bytes (" +
                std::to_string(t->request.max_response_bytes) + " bytes); raise the limit if that is expected";
        break;
      case TransportOutcome::kConnectionReset:
        text += "; the connection ended before the response was complete (" +
                std::to_string(t->response.body_bytes) + " body bytes received); retry the request";
        break;
      default:
        break;
    }
    return text;
  }

  void CheckIdle() {
    if (idle_deadlines_.empty()) return;
    const auto now = SteadyClock::now();
    std::vector<Transfer*> expired;
    while (!idle_deadlines_.empty() && idle_deadlines_.begin()->first <= now) {
      const RequestId id = idle_deadlines_.begin()->second;
      idle_deadlines_.erase(idle_deadlines_.begin());
      auto it = active_.find(id);
      if (it == active_.end()) continue;  // defensive: Finish() removes entries
      Transfer* t = it->second.get();
      t->idle_entry.reset();
      const auto deadline = t->last_activity + t->request.idle_timeout;
      if (deadline <= now) {
        expired.push_back(t);
      } else {
        t->idle_entry = idle_deadlines_.emplace(deadline, t->id).first;  // activity since: later
      }
    }
    for (Transfer* t : expired) {
      const auto waited = duration_cast<milliseconds>(now - t->last_activity).count();
      Finish(t, TransportOutcome::kIdleTimeout,
             t->request.method + " request to " + UrlHost(t->request.url) + " timed out: no bytes received for " +
                 std::to_string(waited) + " ms (idle_timeout " +
                 std::to_string(t->request.idle_timeout.count()) + " ms); " +
                 (t->response.headers_received ? "status " + std::to_string(t->response.status) + " and "
                                               : std::string("no response headers, ")) +
                 std::to_string(t->response.body_bytes) +
                 " body bytes had arrived; the server or a proxy stalled, or raise idle_timeout");
    }
  }

  // Completes a transfer of active_, started or not: takes it out of its
  // multi handle, returns its easy handle to the free list, runs on_complete.
  void Finish(Transfer* t, TransportOutcome outcome, std::string error) {
    auto it = active_.find(t->id);
    assert(it != active_.end());
    std::unique_ptr<Transfer> owned = std::move(it->second);
    active_.erase(it);
    ForgetIdleCheck(t);
    if (t->shard != nullptr) {
      curl_multi_remove_handle(t->shard->multi, t->easy);
      --t->shard->transfers;
      t->shard = nullptr;
    }
    if (t->easy != nullptr && t->response.http_version.empty()) {
      long version = 0;
      if (curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &version) == CURLE_OK) {
        switch (version) {
          case CURL_HTTP_VERSION_1_0: t->response.http_version = "1.0"; break;
          case CURL_HTTP_VERSION_1_1: t->response.http_version = "1.1"; break;
          case CURL_HTTP_VERSION_2_0: t->response.http_version = "2"; break;
          case CURL_HTTP_VERSION_3: t->response.http_version = "3"; break;
          default: break;
        }
      }
    }
    t->easy = nullptr;
    ReleaseHandle(std::move(t->handle));
    FinishUnstarted(std::move(owned), outcome, std::move(error));
  }

  // Completes a transfer that has no easy handle (any more) and is not in
  // active_: runs on_complete.
  void FinishUnstarted(std::unique_ptr<Transfer> t, TransportOutcome outcome, std::string error) {
    assert(t->handle == nullptr && t->shard == nullptr);
    HttpClientResponse response = std::move(t->response);
    response.outcome = outcome;
    response.error = outcome == TransportOutcome::kOk ? std::string() : std::move(error);
    response.elapsed = duration_cast<std::chrono::microseconds>(SteadyClock::now() - t->started);
    auto on_complete = std::move(t->callbacks.on_complete);
    const std::string url = std::move(t->request.url);  // for a log line, below
    t.reset();  // no callback of this request can run any more
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    if (!on_complete) return;
    try {
      on_complete(std::move(response));
    } catch (const std::exception& e) {
      spdlog::error("the on_complete callback of an HTTP request to {} threw: {}", UrlHost(url), e.what());
    } catch (...) {
      spdlog::error("the on_complete callback of an HTTP request to {} threw a non-standard exception",
                    UrlHost(url));
    }
  }

  const HttpClientOptions options_;
  const bool single_shard_;  // the caller limits connections (see the file comment)
  std::thread thread_;

  std::mutex mu_;
  bool stopping_ = false;                          // guarded by mu_
  RequestId next_id_ = 0;                          // guarded by mu_
  std::vector<std::unique_ptr<Transfer>> pending_;  // guarded by mu_
  std::vector<RequestId> cancels_;                 // guarded by mu_
  bool wake_pending_ = false;  // guarded by mu_; the loop has not taken the queues since the last Wake()
  std::atomic<size_t> in_flight_{0};

  int epoll_fd_ = -1;  // set by Init(), closed by the destructor
  int wake_fd_ = -1;   // eventfd in epoll_fd_

  // Loop thread only.
  std::unordered_map<RequestId, std::unique_ptr<Transfer>> active_;  // admitted, started or not
  std::deque<RequestId> admitted_;  // of active_, not started yet, in order (see StartAdmitted())
  bool queued_from_loop_ = false;   // a callback called Start() or Cancel() (see Loop())
  // Read by the libcurl callbacks as the time bytes arrived: one clock read
  // per loop iteration (after epoll_wait) instead of one per header line.
  SteadyClock::time_point loop_now_{};
  std::vector<std::unique_ptr<EasyHandle>> spare_handles_;  // reset, ready for the next transfer
  std::vector<SocketEntry> sockets_;  // by descriptor number; also used by the destructor
  IdleDeadlines idle_deadlines_;
  std::vector<std::unique_ptr<Shard>> shards_;  // the first made by Init(); the others by the loop
};

}  // namespace

Result<std::unique_ptr<HttpClient>> HttpClient::Create(const HttpClientOptions& options) {
  if (!options.ca_bundle.empty()) {
    // libcurl would only find out at the first request, as a TLS error.
    std::ifstream bundle(options.ca_bundle);
    const std::string fix = "; point it at a readable PEM file of CA certificates, or leave it unset to use the system's";
    if (!bundle) {
      return InvalidArgumentError("the CA bundle " + options.ca_bundle + " cannot be read (" + std::strerror(errno) +
                                  ")" + fix);
    }
    if (bundle.peek() == std::ifstream::traits_type::eof()) {
      return InvalidArgumentError("the CA bundle " + options.ca_bundle + " is empty or not a file" + fix);
    }
  }
  static std::once_flag global_init_once;
  static CURLcode global_init_result = CURLE_OK;
  std::call_once(global_init_once, [] { global_init_result = curl_global_init(CURL_GLOBAL_ALL); });
  if (global_init_result != CURLE_OK) {
    return InternalError(std::string("curl_global_init failed: ") + curl_easy_strerror(global_init_result));
  }
  auto client = std::make_unique<CurlHttpClient>(options);
  QUARRY_RETURN_IF_ERROR(client->Init());
  return std::unique_ptr<HttpClient>(std::move(client));
}

HttpClientResponse HttpClient::Send(HttpClientRequest request) {
  if (tls_loop_client != nullptr) {
    HttpClientResponse response;
    response.outcome = TransportOutcome::kOther;
    response.error = "HttpClient::Send() was called from an HttpClient callback (the loop thread) and would "
                     "deadlock; use Start() with callbacks there";
    return response;
  }
  auto promise = std::make_shared<std::promise<HttpClientResponse>>();
  std::future<HttpClientResponse> future = promise->get_future();
  HttpCallbacks callbacks;
  callbacks.on_complete = [promise](HttpClientResponse response) { promise->set_value(std::move(response)); };
  Result<RequestId> started = Start(std::move(request), std::move(callbacks));
  if (!started.ok()) {
    HttpClientResponse response;
    response.outcome = TransportOutcome::kOther;
    response.error = started.status().ToString();
    return response;
  }
  return future.get();
}

}  // namespace quarry::net
