#pragma once
// Keyset pagination for list endpoints.
//
// A list is ordered by a sort key (usually created_at, then id); the cursor
// is an opaque token (base64url of the last item's sort key) that the next
// request passes back. Unlike OFFSET, a cursor stays correct while rows are
// inserted and costs the same on page 1 and page 1,000.
// API shape: GET ...?limit=50&cursor=... -> {"items":[...],"next_cursor":"..."|null}

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace quarry::domain {

struct PageRequest {
  int limit = 50;        // 1..500 (ParsePageRequest enforces)
  std::string cursor{};  // "" = first page
};

template <typename T>
struct Page {
  std::vector<T> items{};
  std::string next_cursor{};  // "" = no more
};

// Cursor encoding of a (sort value, id) pair; Decode fails with
// InvalidArgument ("the cursor is not one this server issued; start again
// without a cursor") on anything else.
std::string EncodeCursor(std::string_view sort_value, std::string_view id);
Status DecodeCursor(std::string_view cursor, std::string* sort_value, std::string* id);

// From query parameters: limit missing = 50; non-numeric, < 1 or > 500 is
// InvalidArgument saying the allowed range.
Result<PageRequest> ParsePageRequest(std::string_view limit, std::string_view cursor);

}  // namespace quarry::domain
