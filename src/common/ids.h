#pragma once
// Identifiers for stored entities: a short type prefix, an underscore and 20
// characters of Crockford base32 (100 random bits from the OS generator), e.g.
// "prv_7k3m9q2x4d8h1c6v5b0n". The prefix tells a person what kind of thing an
// id names when it appears in a log line or an error message; the random part
// makes ids unguessable and collision-free without a central counter, so any
// node may create them.
//
// Thread safety: free functions, safe from any thread.

#include <string>
#include <string_view>

namespace quarry {

// A new id "<prefix>_<20 base32 chars>". `prefix` is 1-8 lower-case letters.
std::string NewId(std::string_view prefix);

// True when `id` has the shape NewId(prefix) produces (prefix checked when
// non-empty). Used to reject ids that cannot exist before touching the store.
bool IsWellFormedId(std::string_view id, std::string_view prefix = {});

}  // namespace quarry
