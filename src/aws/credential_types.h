#pragma once
// The credentials a request is signed with, as a plain value.
//
// Credentials never reach a log or an error message in clear: ToString() and
// operator<< print only a masked access key id ("AKIA****MPLE") and whether a
// secret and a session token are present.
//
// Thread safety: a value type.

#include <chrono>
#include <optional>
#include <ostream>
#include <string>

namespace quarry::aws {

struct Credentials {
  std::string access_key_id{};
  std::string secret_access_key{};
  std::string session_token{};  // empty for long-term keys
  // When temporary credentials stop working; nullopt for long-term keys.
  std::optional<std::chrono::system_clock::time_point> expiration{};
  // Where they came from ("environment", "profile default", ...), for
  // diagnostics; never secret.
  std::string source{};

  bool HasSessionToken() const { return !session_token.empty(); }

  // "Credentials{access_key_id=AKID****MPLE, secret=<set>, session_token=<none>,
  // source=environment}".
  std::string ToString() const {
    std::string out = "Credentials{access_key_id=" + MaskKeyId(access_key_id);
    out += ", secret=";
    out += secret_access_key.empty() ? "<none>" : "<set>";
    out += ", session_token=";
    out += session_token.empty() ? "<none>" : "<set>";
    if (!source.empty()) out += ", source=" + source;
    out += "}";
    return out;
  }

  // Keeps the first and last four characters of a key id of at least 12
  // characters; masks shorter ones entirely.
  static std::string MaskKeyId(const std::string& key_id) {
    if (key_id.size() < 12) return std::string(key_id.size(), '*');
    return key_id.substr(0, 4) + std::string(key_id.size() - 8, '*') + key_id.substr(key_id.size() - 4);
  }
};

inline std::ostream& operator<<(std::ostream& out, const Credentials& credentials) {
  return out << credentials.ToString();
}

}  // namespace quarry::aws
