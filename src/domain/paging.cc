#include "domain/paging.h"

#include <charconv>

#include "common/encoding.h"

namespace quarry::domain {
namespace {

// A version tag and a separator no sort value or id contains (both are
// printable text), so a decoded cursor is unambiguous and foreign base64
// is recognised as such.
constexpr std::string_view kCursorTag = "c1\x1f";
constexpr char kSeparator = '\x1f';

Status BadCursor() {
  return InvalidArgumentError("the cursor is not one this server issued; start again without a cursor");
}

std::string ToBase64Url(std::string_view bytes) {
  std::string text = Base64Encode(bytes);
  while (!text.empty() && text.back() == '=') text.pop_back();
  for (char& c : text) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return text;
}

Result<std::string> FromBase64Url(std::string_view text) {
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return BadCursor();
    }
  }
  while (standard.size() % 4 != 0) standard += '=';
  return Base64Decode(standard);
}

}  // namespace

std::string EncodeCursor(std::string_view sort_value, std::string_view id) {
  std::string raw(kCursorTag);
  raw += sort_value;
  raw += kSeparator;
  raw += id;
  return ToBase64Url(raw);
}

Status DecodeCursor(std::string_view cursor, std::string* sort_value, std::string* id) {
  if (cursor.empty() || cursor.size() > 1024) return BadCursor();
  Result<std::string> raw = FromBase64Url(cursor);
  if (!raw.ok()) return BadCursor();
  std::string_view text = *raw;
  if (!text.starts_with(kCursorTag)) return BadCursor();
  text.remove_prefix(kCursorTag.size());
  const size_t separator = text.find(kSeparator);
  if (separator == std::string_view::npos || text.find(kSeparator, separator + 1) != std::string_view::npos) {
    return BadCursor();
  }
  *sort_value = std::string(text.substr(0, separator));
  *id = std::string(text.substr(separator + 1));
  return Status::Ok();
}

Result<PageRequest> ParsePageRequest(std::string_view limit, std::string_view cursor) {
  PageRequest page;
  if (!limit.empty()) {
    int value = 0;
    const auto [end, error] = std::from_chars(limit.data(), limit.data() + limit.size(), value);
    if (error != std::errc() || end != limit.data() + limit.size() || value < 1 || value > 500) {
      return InvalidArgumentError("limit must be a whole number from 1 to 500 (got '" +
                                  std::string(limit.substr(0, 32)) + "')");
    }
    page.limit = value;
  }
  if (!cursor.empty()) {
    std::string sort_value;
    std::string id;
    QUARRY_RETURN_IF_ERROR(DecodeCursor(cursor, &sort_value, &id));
    page.cursor = std::string(cursor);
  }
  return page;
}

Status AppendKeysetPage(const PageRequest& page, std::string* sql, store::Params* params,
                        SortOrder order) {
  const bool ascending = order == SortOrder::kAscending;
  if (!page.cursor.empty()) {
    std::string created_at, id;
    QUARRY_RETURN_IF_ERROR(DecodeCursor(page.cursor, &created_at, &id));
    params->push_back(std::move(created_at));
    const std::string at = "$" + std::to_string(params->size());
    params->push_back(std::move(id));
    const std::string after = "$" + std::to_string(params->size());
    const char* beyond = ascending ? " > " : " < ";
    *sql += " AND (created_at" + std::string(beyond) + at + " OR (created_at = " + at + " AND id" +
            beyond + after + "))";
  }
  *sql += ascending ? " ORDER BY created_at, id" : " ORDER BY created_at DESC, id DESC";
  *sql += " LIMIT " + std::to_string(page.limit + 1);
  return Status::Ok();
}

}  // namespace quarry::domain
