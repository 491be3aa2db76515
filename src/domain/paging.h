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
#include "store/database.h"

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

// The common listing: rows ordered by (created_at, id). Appends to `sql` (a
// SELECT whose WHERE clause is already open) the condition that skips to the
// cursor, the ORDER BY and a LIMIT of one row more than the page, which tells
// TakeKeysetPage whether a next page exists. Parameters are appended to
// `params` and numbered after the ones already there.
enum class SortOrder { kAscending, kDescending };
Status AppendKeysetPage(const PageRequest& page, std::string* sql, store::Params* params,
                        SortOrder order = SortOrder::kAscending);

// The page of rows fetched with AppendKeysetPage; T has string members
// created_at and id.
template <typename T, typename FromRow>
Page<T> TakeKeysetPage(const store::Rows& rows, int limit, FromRow from_row) {
  Page<T> out;
  for (const store::Row& row : rows.rows) {
    if (static_cast<int>(out.items.size()) == limit) {
      out.next_cursor = EncodeCursor(out.items.back().created_at, out.items.back().id);
      break;
    }
    out.items.push_back(from_row(row));
  }
  return out;
}

}  // namespace quarry::domain
