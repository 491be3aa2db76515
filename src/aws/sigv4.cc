#include "aws/sigv4.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include "common/encoding.h"

namespace quarry::aws {
namespace internal {
namespace {

constexpr char kUpperHex[] = "0123456789ABCDEF";
constexpr char kLowerHex[] = "0123456789abcdef";

struct ByteTables {
  std::array<bool, 256> unreserved{};
  std::array<bool, 256> whitespace{};
  std::array<unsigned char, 256> lower{};
  std::array<signed char, 256> hex_value{};
};

constexpr ByteTables MakeTables() {
  ByteTables t;
  for (int c = 0; c < 256; ++c) {
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    const bool digit = c >= '0' && c <= '9';
    t.unreserved[c] = alpha || digit || c == '-' || c == '.' || c == '_' || c == '~';
    // Python's str.split() whitespace within ASCII, which botocore's
    // "' '.join(value.split())" uses to fold header values.
    t.whitespace[c] = c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r' ||
                      (c >= 0x1c && c <= 0x1f);
    t.lower[c] = static_cast<unsigned char>((c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c);
    t.hex_value[c] = static_cast<signed char>(
        digit ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1);
  }
  return t;
}

constexpr ByteTables kTables = MakeTables();

inline unsigned char U(char c) { return static_cast<unsigned char>(c); }

}  // namespace


void AppendPercentEncoded(std::string_view bytes, bool keep_slash, std::string* out) {
  for (const char c : bytes) {
    if (kTables.unreserved[U(c)] || (keep_slash && c == '/')) {
      out->push_back(c);
    } else {
      const char escaped[3] = {'%', kUpperHex[U(c) >> 4], kUpperHex[U(c) & 0xf]};
      out->append(escaped, 3);
    }
  }
}

void AppendDecodedThenEncoded(std::string_view text, std::string* out) {
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char byte = U(text[i]);
    if (byte == '%' && i + 2 < text.size() && kTables.hex_value[U(text[i + 1])] >= 0 &&
        kTables.hex_value[U(text[i + 2])] >= 0) {
      byte = static_cast<unsigned char>(kTables.hex_value[U(text[i + 1])] * 16 +
                                        kTables.hex_value[U(text[i + 2])]);
      i += 2;
    }
    if (kTables.unreserved[byte]) {
      out->push_back(static_cast<char>(byte));
    } else {
      const char escaped[3] = {'%', kUpperHex[byte >> 4], kUpperHex[byte & 0xf]};
      out->append(escaped, 3);
    }
  }
}

void AppendTrimmedHeaderValue(std::string_view value, std::string* out) {
  bool pending_space = false;
  bool any = false;
  for (const char c : value) {
    if (kTables.whitespace[U(c)]) {
      pending_space = any;
      continue;
    }
    if (pending_space) out->push_back(' ');
    pending_space = false;
    any = true;
    out->push_back(c);
  }
}

void AppendLowerAscii(std::string_view text, std::string* out) {
  for (const char c : text) out->push_back(static_cast<char>(kTables.lower[U(c)]));
}

int CompareIgnoreAsciiCase(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = kTables.lower[U(a[i])];
    const unsigned char y = kTables.lower[U(b[i])];
    if (x != y) return x < y ? -1 : 1;
  }
  if (a.size() == b.size()) return 0;
  return a.size() < b.size() ? -1 : 1;
}

bool NeedsNormalization(std::string_view path) {
  if (path.empty() || path.front() != '/') return true;
  // Any empty, "." or ".." segment other than the leading empty one (before
  // the first '/') and a trailing empty one (after a final '/').
  size_t start = 1;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    const bool last = end == path.size();
    if ((segment.empty() && !last) || segment == "." || segment == "..") return true;
    start = end + 1;
  }
  return false;
}

std::string NormalizePath(std::string_view path) {
  // botocore.utils.remove_dot_segments: RFC 3986 §5.2.4 plus the collapsing
  // of empty segments AWS requires; a trailing '/' survives only when some
  // segment remains.
  if (path.empty()) return "/";
  std::vector<std::string_view> kept;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view segment = path.substr(start, end - start);
    if (!segment.empty() && segment != ".") {
      if (segment == "..") {
        if (!kept.empty()) kept.pop_back();
      } else {
        kept.push_back(segment);
      }
    }
    start = end + 1;
  }
  std::string out;
  out.reserve(path.size());
  if (path.front() == '/') out.push_back('/');
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i > 0) out.push_back('/');
    out.append(kept[i]);
  }
  if (path.back() == '/' && !kept.empty()) out.push_back('/');
  return out;
}

void AppendCanonicalUri(std::string_view raw_path, std::string_view service, bool normalize_path,
                        std::string* out) {
  std::string normalized;
  std::string_view path = raw_path;
  if (normalize_path && NeedsNormalization(path)) {
    normalized = NormalizePath(path);
    path = normalized;
  }
  if (path.empty()) path = "/";
  if (service == "s3") {
    out->append(path);
  } else {
    AppendPercentEncoded(path, /*keep_slash=*/true, out);
  }
}

void AppendCanonicalQuery(std::string_view raw_query, std::string* out) {
  if (raw_query.empty()) return;
  std::vector<std::pair<std::string, std::string>> pairs;
  size_t start = 0;
  while (start <= raw_query.size()) {
    size_t end = raw_query.find('&', start);
    if (end == std::string_view::npos) end = raw_query.size();
    const std::string_view piece = raw_query.substr(start, end - start);
    if (!piece.empty()) {
      const size_t eq = piece.find('=');
      std::pair<std::string, std::string> pair;
      AppendDecodedThenEncoded(piece.substr(0, eq), &pair.first);
      if (eq != std::string_view::npos) AppendDecodedThenEncoded(piece.substr(eq + 1), &pair.second);
      pairs.push_back(std::move(pair));
    }
    start = end + 1;
  }
  // Encoded strings are ASCII, so std::string's byte order is the code-point
  // order botocore's sorted() uses; pairs sort by name, then value.
  std::sort(pairs.begin(), pairs.end());
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (i > 0) out->push_back('&');
    out->append(pairs[i].first);
    out->push_back('=');
    out->append(pairs[i].second);
  }
}

void AppendHexDigest(const Sha256Digest& digest, std::string* out) {
  char hex[64];
  WriteDigestHex(digest, hex);
  out->append(hex, sizeof(hex));
}

void AppendStringToSign(std::string_view amz_date, std::string_view date, std::string_view region,
                        std::string_view service, const Sha256Digest& canonical_hash, std::string* out) {
  out->append(kSigV4Algorithm);
  out->push_back('\n');
  out->append(amz_date);
  out->push_back('\n');
  AppendScope(date, region, service, out);
  out->push_back('\n');
  AppendHexDigest(canonical_hash, out);
}

void AppendScope(std::string_view date, std::string_view region, std::string_view service,
                 std::string* out) {
  out->append(date);
  out->push_back('/');
  out->append(region);
  out->push_back('/');
  out->append(service);
  out->append("/aws4_request");
}

bool IsUnsignedHeaderName(std::string_view name) {
  if (EqualsIgnoreCase(name, "authorization")) return true;
  for (const std::string_view excluded : kUnsignedHeaderNames) {
    if (EqualsIgnoreCase(name, excluded)) return true;
  }
  return false;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (kTables.lower[U(a[i])] != kTables.lower[U(b[i])]) return false;
  }
  return true;
}

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  // Howard Hinnant's days_from_civil.
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool ParseDigits(std::string_view text, unsigned* out) {
  unsigned value = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  *out = value;
  return true;
}

bool ParseScopeDate(std::string_view date, int64_t* days) {
  unsigned year = 0, month = 0, day = 0;
  if (date.size() != 8 || !ParseDigits(date.substr(0, 4), &year) || !ParseDigits(date.substr(4, 2), &month) ||
      !ParseDigits(date.substr(6, 2), &day)) {
    return false;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31) return false;
  *days = DaysFromCivil(year, month, day);
  // Reject dates like 20150231 that roll over into the next month.
  int64_t y;
  unsigned m, d;
  CivilFromDays(*days, &y, &m, &d);
  return m == month && d == day;
}

void WriteAmzDate(WallTime time, char out[16]) {
  const int64_t seconds =
      std::chrono::floor<std::chrono::seconds>(time.time_since_epoch()).count();
  int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
  int64_t rem = seconds - days * 86400;
  int64_t year;
  unsigned month, day;
  CivilFromDays(days, &year, &month, &day);
  auto put = [](char* p, int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      p[i] = static_cast<char>('0' + (v % 10));
      v /= 10;
    }
  };
  put(out, year, 4);
  put(out + 4, month, 2);
  put(out + 6, day, 2);
  out[8] = 'T';
  put(out + 9, rem / 3600, 2);
  put(out + 11, (rem / 60) % 60, 2);
  put(out + 13, rem % 60, 2);
  out[15] = 'Z';
}

namespace {

struct SelectedHeader {
  std::string_view name;
  std::string_view value;
};

// Writes "name:v1,v2\n" lines for headers already sorted by lower-cased name
// (stable, so repeated names keep their received order), and the
// ';'-separated list of names into *signed_headers.
void AppendSortedCanonicalHeaders(std::span<const SelectedHeader> sorted, std::string* out,
                                  std::string* signed_headers) {
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i + 1;
    while (j < sorted.size() && EqualsIgnoreCase(sorted[i].name, sorted[j].name)) ++j;
    AppendLowerAscii(sorted[i].name, out);
    if (!signed_headers->empty()) signed_headers->push_back(';');
    AppendLowerAscii(sorted[i].name, signed_headers);
    out->push_back(':');
    for (size_t k = i; k < j; ++k) {
      if (k > i) out->push_back(',');
      AppendTrimmedHeaderValue(sorted[k].value, out);
    }
    out->push_back('\n');
    i = j;
  }
}

}  // namespace

void AppendCanonicalRequestForSigning(std::string_view method, std::string_view raw_path,
                                      std::string_view raw_query, std::span<const HttpHeader> headers,
                                      std::string_view payload_hash, std::string_view service,
                                      bool normalize_path, std::string* out, std::string* signed_headers) {
  for (const char c : method) out->push_back((c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c);
  out->push_back('\n');
  AppendCanonicalUri(raw_path, service, normalize_path, out);
  out->push_back('\n');
  AppendCanonicalQuery(raw_query, out);
  out->push_back('\n');

  // Typical requests carry a handful of headers: sort them on the stack with
  // an insertion sort (stable, allocation-free); fall back to the heap only
  // for unusually many.
  constexpr size_t kInline = 32;
  std::array<SelectedHeader, kInline> inline_storage;
  std::vector<SelectedHeader> heap_storage;
  SelectedHeader* selected = inline_storage.data();
  if (headers.size() > kInline) {
    heap_storage.resize(headers.size());
    selected = heap_storage.data();
  }
  size_t count = 0;
  for (const HttpHeader& header : headers) {
    if (IsUnsignedHeaderName(header.name)) continue;
    SelectedHeader item{header.name, header.value};
    size_t pos = count++;
    while (pos > 0 && CompareIgnoreAsciiCase(selected[pos - 1].name, item.name) > 0) {
      selected[pos] = selected[pos - 1];
      --pos;
    }
    selected[pos] = item;
  }
  signed_headers->clear();
  AppendSortedCanonicalHeaders({selected, count}, out, signed_headers);
  out->push_back('\n');
  out->append(*signed_headers);
  out->push_back('\n');
  out->append(payload_hash);
}

}  // namespace internal

using namespace internal;  // NOLINT(build/namespaces): this file implements them.

void WriteDigestHex(const Sha256Digest& digest, char* out) {
  for (size_t i = 0; i < digest.size(); ++i) {
    out[2 * i] = kLowerHex[digest[i] >> 4];
    out[2 * i + 1] = kLowerHex[digest[i] & 0xf];
  }
}

const HttpHeader* HttpRequest::FindHeader(std::string_view name) const {
  for (const HttpHeader& header : headers) {
    if (EqualsIgnoreCase(header.name, name)) return &header;
  }
  return nullptr;
}

size_t HttpRequest::RemoveHeaders(std::string_view name) {
  const auto first = std::remove_if(headers.begin(), headers.end(),
                                    [&](const HttpHeader& h) { return EqualsIgnoreCase(h.name, name); });
  const size_t removed = static_cast<size_t>(headers.end() - first);
  headers.erase(first, headers.end());
  return removed;
}

namespace {

// The first header with this name, with any later duplicates removed; a new
// one appended (with `name` as its spelling) when absent.
HttpHeader& UniqueHeader(std::vector<HttpHeader>& headers, std::string_view name) {
  HttpHeader* found = nullptr;
  size_t write = 0;
  for (size_t read = 0; read < headers.size(); ++read) {
    if (EqualsIgnoreCase(headers[read].name, name)) {
      if (found != nullptr) continue;  // drop a duplicate
      if (write != read) headers[write] = std::move(headers[read]);
      found = &headers[write];
      ++write;
      continue;
    }
    if (write != read) headers[write] = std::move(headers[read]);
    ++write;
  }
  if (found != nullptr) {
    // `found` points into the compacted prefix, which erase does not move.
    const size_t index = static_cast<size_t>(found - headers.data());
    headers.erase(headers.begin() + static_cast<std::ptrdiff_t>(write), headers.end());
    return headers[index];
  }
  headers.push_back(HttpHeader{std::string(name), std::string()});
  return headers.back();
}

}  // namespace

void HttpRequest::SetHeader(std::string_view name, std::string_view value) {
  UniqueHeader(headers, name).value.assign(value.data(), value.size());
}

std::string HostHeaderValue(std::string_view scheme, std::string_view host, int port) {
  std::string out;
  AppendLowerAscii(host, &out);
  const bool default_port = (port == 80 && EqualsIgnoreCase(scheme, "http")) ||
                            (port == 443 && EqualsIgnoreCase(scheme, "https"));
  if (port > 0 && !default_port) {
    out.push_back(':');
    out.append(std::to_string(port));
  }
  return out;
}

std::string FormatAmzDate(WallTime time) {
  char buffer[16];
  WriteAmzDate(time, buffer);
  return std::string(buffer, sizeof(buffer));
}

bool ParseAmzDate(std::string_view text, WallTime* out) {
  if (text.size() != 16 || text[8] != 'T' || text[15] != 'Z') return false;
  int64_t days = 0;
  unsigned hour = 0, minute = 0, second = 0;
  if (!ParseScopeDate(text.substr(0, 8), &days) || !ParseDigits(text.substr(9, 2), &hour) ||
      !ParseDigits(text.substr(11, 2), &minute) || !ParseDigits(text.substr(13, 2), &second) ||
      hour > 23 || minute > 59 || second > 60) {
    return false;
  }
  *out = WallTime{} + std::chrono::seconds(days * 86400 + hour * 3600 + minute * 60 + second);
  return true;
}

Sha256Digest DeriveSigningKey(std::string_view secret_access_key, std::string_view date,
                              std::string_view region, std::string_view service) {
  std::string seed;
  seed.reserve(4 + secret_access_key.size());
  seed.append("AWS4");
  seed.append(secret_access_key);
  const Sha256Digest k_date = HmacSha256(seed, date);
  OPENSSL_cleanse(seed.data(), seed.size());
  const Sha256Digest k_region = HmacSha256(DigestView(k_date), region);
  const Sha256Digest k_service = HmacSha256(DigestView(k_region), service);
  return HmacSha256(DigestView(k_service), "aws4_request");
}

SigningKeyCache::SigningKeyCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {
  entries_.reserve(capacity_);
}

SigningKeyCache& SigningKeyCache::Default() {
  static SigningKeyCache* const cache = new SigningKeyCache();
  return *cache;
}

HmacSha256Key SigningKeyCache::Get(std::string_view secret_access_key, std::string_view date,
                                   std::string_view region, std::string_view service) {
  // The id separates the fields with NUL so ("ab","c") and ("a","bc") differ;
  // a domain prefix keeps it from being a plain hash of the secret.
  Sha256Hasher hasher;
  hasher.Update(std::string_view("quarry-sigv4-key-cache\0", 23));
  hasher.Update(secret_access_key);
  hasher.Update(std::string_view("\0", 1));
  hasher.Update(date);
  hasher.Update(std::string_view("\0", 1));
  hasher.Update(region);
  hasher.Update(std::string_view("\0", 1));
  hasher.Update(service);
  const Sha256Digest id = hasher.Finish();
  {
    std::shared_lock lock(mutex_);
    for (const Entry& entry : entries_) {
      if (entry.id == id) return entry.key;
    }
  }
  const Sha256Digest signing_key = DeriveSigningKey(secret_access_key, date, region, service);
  HmacSha256Key key(DigestView(signing_key));
  int64_t day = 0;
  if (!ParseScopeDate(date, &day)) day = INT64_MIN;  // a malformed date never evicts anything

  std::unique_lock lock(mutex_);
  for (const Entry& entry : entries_) {
    if (entry.id == id) return entry.key;  // another thread derived it meanwhile
  }
  if (day != INT64_MIN && day > newest_day_) {
    newest_day_ = day;
    std::erase_if(entries_, [&](const Entry& entry) { return entry.day < newest_day_ - 1; });
  }
  Entry entry{id, day, ++insertions_, key};
  if (entries_.size() < capacity_) {
    entries_.push_back(std::move(entry));
  } else {
    auto oldest = std::min_element(entries_.begin(), entries_.end(), [](const Entry& a, const Entry& b) {
      return a.inserted < b.inserted;
    });
    *oldest = std::move(entry);
  }
  return key;
}

size_t SigningKeyCache::size() const {
  std::shared_lock lock(mutex_);
  return entries_.size();
}

void SigningKeyCache::Clear() {
  std::unique_lock lock(mutex_);
  entries_.clear();
  newest_day_ = INT64_MIN;
}

Result<SigningContext> ParseSigningContextJson(std::string_view json_text) {
  const nlohmann::json json = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return InvalidArgumentError("signing context is not a JSON object; expected {\"credentials\":{...},"
                                "\"region\":...,\"service\":...,\"timestamp\":...}");
  }
  auto get_string = [&](const nlohmann::json& object, const char* name, const char* where,
                        bool required) -> Result<std::string> {
    const auto it = object.find(name);
    if (it == object.end() || it->is_null()) {
      if (!required) return std::string();
      return InvalidArgumentError(std::string("signing context is missing the string field ") + where + name);
    }
    if (!it->is_string()) {
      return InvalidArgumentError(std::string("signing context field ") + where + name + " must be a string");
    }
    return it->get<std::string>();
  };
  auto get_bool = [&](const char* name, bool fallback) -> Result<bool> {
    const auto it = json.find(name);
    if (it == json.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) {
      return InvalidArgumentError(std::string("signing context field ") + name + " must be true or false");
    }
    return it->get<bool>();
  };

  SigningContext context;
  const auto credentials = json.find("credentials");
  if (credentials == json.end() || !credentials->is_object()) {
    return InvalidArgumentError(
        "signing context is missing the object field credentials "
        "({\"access_key_id\":...,\"secret_access_key\":...,\"token\":... (optional)})");
  }
  QUARRY_ASSIGN_OR_RETURN(context.credentials.access_key_id,
                          get_string(*credentials, "access_key_id", "credentials.", true));
  QUARRY_ASSIGN_OR_RETURN(context.credentials.secret_access_key,
                          get_string(*credentials, "secret_access_key", "credentials.", true));
  QUARRY_ASSIGN_OR_RETURN(context.credentials.session_token, get_string(*credentials, "token", "credentials.", false));
  QUARRY_ASSIGN_OR_RETURN(context.region, get_string(json, "region", "", true));
  QUARRY_ASSIGN_OR_RETURN(context.service, get_string(json, "service", "", true));
  QUARRY_ASSIGN_OR_RETURN(std::string timestamp, get_string(json, "timestamp", "", true));
  if (!ParseIso8601Utc(timestamp, &context.time)) {
    return InvalidArgumentError("signing context timestamp '" + timestamp +
                                "' is not an ISO 8601 UTC time like 2015-08-30T12:36:00Z");
  }
  QUARRY_ASSIGN_OR_RETURN(context.normalize, get_bool("normalize", true));
  QUARRY_ASSIGN_OR_RETURN(context.sign_body, get_bool("sign_body", false));
  QUARRY_ASSIGN_OR_RETURN(context.omit_session_token, get_bool("omit_session_token", false));
  if (context.credentials.access_key_id.empty() || context.credentials.secret_access_key.empty() ||
      context.region.empty() || context.service.empty()) {
    return InvalidArgumentError(
        "signing context has an empty access_key_id, secret_access_key, region or service; fill them in");
  }
  return context;
}

Result<HttpRequest> ParseHttpRequestText(std::string_view text) {
  HttpRequest request;
  size_t pos = 0;
  size_t line_number = 0;
  // Returns false at the end of the text. The line excludes LF and a final CR.
  auto next_line = [&](std::string_view* line) {
    if (pos >= text.size()) return false;
    size_t end = text.find('\n', pos);
    const bool has_newline = end != std::string_view::npos;
    if (!has_newline) end = text.size();
    *line = text.substr(pos, end - pos);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    pos = has_newline ? end + 1 : end;
    ++line_number;
    return true;
  };

  std::string_view line;
  if (!next_line(&line) || line.empty()) {
    return InvalidArgumentError("the request is empty; it must start with a request line like "
                                "'POST /model/x/invoke HTTP/1.1'");
  }
  const size_t first_space = line.find(' ');
  const size_t last_space = line.rfind(' ');
  if (first_space == std::string_view::npos || first_space == last_space || first_space == 0 ||
      line.substr(last_space + 1).substr(0, 5) != "HTTP/" ||
      line.substr(first_space + 1, last_space - first_space - 1).find(' ') != std::string_view::npos ||
      last_space == first_space + 1) {
    return InvalidArgumentError("line 1: malformed request line '" + std::string(line) +
                                "'; expected 'METHOD TARGET HTTP/1.1', e.g. 'GET /?a=b HTTP/1.1'");
  }
  request.method = std::string(line.substr(0, first_space));
  const std::string_view target = line.substr(first_space + 1, last_space - first_space - 1);
  const size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) request.query = std::string(target.substr(question + 1));

  bool saw_blank_line = false;
  while (next_line(&line)) {
    if (line.empty()) {
      saw_blank_line = true;
      break;
    }
    if (line.front() == ' ' || line.front() == '\t') {
      if (request.headers.empty()) {
        return InvalidArgumentError("line " + std::to_string(line_number) +
                                    ": a continuation line (starting with a space or tab) must follow a header");
      }
      std::string& value = request.headers.back().value;
      value.push_back(' ');
      value.append(TrimAsciiWhitespace(line));
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return InvalidArgumentError("line " + std::to_string(line_number) + ": malformed header line '" +
                                  std::string(line) + "'; expected 'Name:value'");
    }
    request.headers.push_back(HttpHeader{std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
  }
  if (saw_blank_line) request.body = std::string(text.substr(pos));
  return request;
}

std::string CanonicalUri(std::string_view raw_path, std::string_view service, bool normalize_path) {
  std::string out;
  AppendCanonicalUri(raw_path, service, normalize_path, &out);
  return out;
}

std::string CanonicalQueryString(std::string_view raw_query) {
  std::string out;
  AppendCanonicalQuery(raw_query, &out);
  return out;
}

std::string CanonicalHeaderValue(std::string_view value) {
  std::string out;
  AppendTrimmedHeaderValue(value, &out);
  return out;
}

void AppendCanonicalRequest(const CanonicalRequestInput& input, std::string* out) {
  for (const char c : input.method) out->push_back((c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c);
  out->push_back('\n');
  AppendCanonicalUri(input.raw_path, input.service, input.normalize_path, out);
  out->push_back('\n');
  AppendCanonicalQuery(input.raw_query, out);
  out->push_back('\n');
  size_t start = 0;
  const std::string_view names = input.signed_headers;
  while (start < names.size()) {
    size_t end = names.find(';', start);
    if (end == std::string_view::npos) end = names.size();
    const std::string_view name = names.substr(start, end - start);
    AppendLowerAscii(name, out);
    out->push_back(':');
    bool first = true;
    for (const HttpHeader& header : input.headers) {
      if (!EqualsIgnoreCase(header.name, name)) continue;
      if (!first) out->push_back(',');
      first = false;
      AppendTrimmedHeaderValue(header.value, out);
    }
    out->push_back('\n');
    start = end + 1;
  }
  out->push_back('\n');
  out->append(input.signed_headers);
  out->push_back('\n');
  out->append(input.payload_hash);
}

std::string StringToSign(std::string_view amz_date, std::string_view credential_scope,
                         std::string_view canonical_request) {
  std::string out;
  out.reserve(kSigV4Algorithm.size() + amz_date.size() + credential_scope.size() + 67);
  out.append(kSigV4Algorithm);
  out.push_back('\n');
  out.append(amz_date);
  out.push_back('\n');
  out.append(credential_scope);
  out.push_back('\n');
  AppendHexDigest(Sha256(canonical_request), &out);
  return out;
}

Status SignRequest(const SigningParams& params, HttpRequest& request, SigningArtifacts* artifacts) {
  const Credentials* credentials = params.credentials;
  if (credentials == nullptr || credentials->access_key_id.empty() || credentials->secret_access_key.empty()) {
    return InvalidArgumentError(
        "SigV4 signing needs credentials with an access key id and a secret access key; configure the "
        "provider's credentials");
  }
  if (params.region.empty() || params.service.empty()) {
    return InvalidArgumentError(
        "SigV4 signing needs a region and a service signing name (e.g. us-east-1 and bedrock)");
  }
  if (request.method.empty()) {
    return InvalidArgumentError("SigV4 signing needs the request method (GET, POST, ...)");
  }
  if (request.FindHeader("host") == nullptr) {
    return InvalidArgumentError(
        "SigV4 signing needs a Host header (host[:port], the port only when not the scheme's default); add it "
        "before signing");
  }

  char amz_date[16];
  WriteAmzDate(params.time, amz_date);
  const std::string_view amz_date_view(amz_date, sizeof(amz_date));
  const std::string_view date = amz_date_view.substr(0, 8);

  request.SetHeader("X-Amz-Date", amz_date_view);
  if (credentials->HasSessionToken()) {
    if (params.omit_session_token) {
      request.RemoveHeaders("x-amz-security-token");
    } else {
      request.SetHeader("X-Amz-Security-Token", credentials->session_token);
    }
  }
  char payload_hex[64];
  std::string_view payload_hash;
  if (params.sign_body) {
    WriteDigestHex(Sha256(request.body), payload_hex);
    request.SetHeader("X-Amz-Content-SHA256", std::string_view(payload_hex, sizeof(payload_hex)));
  }
  if (const HttpHeader* content_sha = request.FindHeader("x-amz-content-sha256")) {
    payload_hash = content_sha->value;
  } else if (request.body.empty()) {
    payload_hash = kEmptyPayloadSha256;
  } else {
    WriteDigestHex(Sha256(request.body), payload_hex);
    payload_hash = std::string_view(payload_hex, sizeof(payload_hex));
  }

  // Scratch strings keep their capacity between calls on a thread, so a
  // steady stream of signatures does not allocate for them.
  thread_local std::string canonical_scratch;
  thread_local std::string signed_headers_scratch;
  thread_local std::string string_to_sign_scratch;
  std::string& canonical = artifacts != nullptr ? artifacts->canonical_request : canonical_scratch;
  std::string& signed_headers = artifacts != nullptr ? artifacts->signed_headers : signed_headers_scratch;
  std::string& string_to_sign = artifacts != nullptr ? artifacts->string_to_sign : string_to_sign_scratch;
  canonical.clear();
  canonical.reserve(1024);
  AppendCanonicalRequestForSigning(request.method, request.path, request.query, request.headers, payload_hash,
                                   params.service, params.normalize_path, &canonical, &signed_headers);

  string_to_sign.clear();
  string_to_sign.reserve(256);
  AppendStringToSign(amz_date_view, date, params.region, params.service, Sha256(canonical), &string_to_sign);

  SigningKeyCache& cache = params.key_cache != nullptr ? *params.key_cache : SigningKeyCache::Default();
  const HmacSha256Key key = cache.Get(credentials->secret_access_key, date, params.region, params.service);
  char signature[64];
  WriteDigestHex(key.Mac(string_to_sign), signature);
  const std::string_view signature_view(signature, sizeof(signature));

  std::string& authorization = UniqueHeader(request.headers, "Authorization").value;
  authorization.clear();
  authorization.append(kSigV4Algorithm);
  authorization.append(" Credential=");
  authorization.append(credentials->access_key_id);
  authorization.push_back('/');
  AppendScope(date, params.region, params.service, &authorization);
  authorization.append(", SignedHeaders=");
  authorization.append(signed_headers);
  authorization.append(", Signature=");
  authorization.append(signature_view);

  // Keep the per-thread scratch from pinning memory after one huge request.
  constexpr size_t kMaxRetainedScratch = 1 << 20;
  if (canonical_scratch.capacity() > kMaxRetainedScratch) std::string().swap(canonical_scratch);

  if (credentials->HasSessionToken() && params.omit_session_token) {
    request.headers.push_back(HttpHeader{"X-Amz-Security-Token", credentials->session_token});
  }

  if (artifacts != nullptr) {
    artifacts->signature.assign(signature_view);
    artifacts->authorization = request.FindHeader("authorization")->value;
    artifacts->credential_scope.clear();
    AppendScope(date, params.region, params.service, &artifacts->credential_scope);
    artifacts->amz_date.assign(amz_date_view);
  }
  return Status::Ok();
}

}  // namespace quarry::aws
