#include "cli/serve_config.h"

#include <cstdlib>
#include <set>
#include <string_view>

#include <toml++/toml.h>

extern char** environ;

namespace quarry::cli {
namespace {

bool ParseBoolText(std::string_view text, bool* value) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") {
    *value = true;
    return true;
  }
  if (text == "0" || text == "false" || text == "no" || text == "off" || text.empty()) {
    *value = false;
    return true;
  }
  return false;
}

Status ParseIntText(std::string_view name, std::string_view text, int* value) {
  try {
    size_t used = 0;
    const int parsed = std::stoi(std::string(text), &used);
    if (used != text.size()) throw std::invalid_argument("trailing characters");
    *value = parsed;
    return Status::Ok();
  } catch (const std::exception&) {
    return InvalidArgumentError(std::string(name) + "=\"" + std::string(text) +
                                "\" is not a whole number; set it to a number such as 8080");
  }
}

// Reads `section.key` when present, checking its type.
class TomlReader {
 public:
  TomlReader(const toml::table& root, const std::string& source) : root_(root), source_(source) {}

  template <typename T>
  Status Read(std::string_view section, std::string_view key, T* out) {
    known_.insert(std::string(section) + "." + std::string(key));
    const toml::node* node = root_.at_path(std::string(section) + "." + std::string(key)).node();
    if (node == nullptr) return Status::Ok();
    if constexpr (std::is_same_v<T, std::string>) {
      if (const auto* s = node->as_string()) {
        *out = s->get();
        return Status::Ok();
      }
      return TypeError(section, key, "a string in quotes");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (const auto* b = node->as_boolean()) {
        *out = b->get();
        return Status::Ok();
      }
      return TypeError(section, key, "true or false");
    } else {
      if (const auto* i = node->as_integer()) {
        const int64_t v = i->get();
        if (v < INT32_MIN || v > INT32_MAX) return TypeError(section, key, "a 32-bit integer");
        *out = static_cast<int>(v);
        return Status::Ok();
      }
      return TypeError(section, key, "a whole number");
    }
  }

  // Every key in the file must be one Read() asked for.
  Status CheckNoUnknownKeys() const {
    for (const auto& [section_name, section_node] : root_) {
      const std::string section(section_name.str());
      const toml::table* table = section_node.as_table();
      if (table == nullptr) {
        return InvalidArgumentError(source_ + ": \"" + section +
                                    "\" must be a [section]; the sections are [server], "
                                    "[database], [bedrock], [log], [security] and [engine]");
      }
      for (const auto& [key_name, unused] : *table) {
        const std::string full = section + "." + std::string(key_name.str());
        if (!known_.contains(full)) {
          return InvalidArgumentError(source_ + ": unknown setting \"" + full +
                                      "\"; check the spelling (docs/serve.md lists every setting)");
        }
      }
    }
    return Status::Ok();
  }

 private:
  Status TypeError(std::string_view section, std::string_view key, std::string_view expected) {
    return InvalidArgumentError(source_ + ": " + std::string(section) + "." + std::string(key) +
                                " must be " + std::string(expected));
  }

  const toml::table& root_;
  std::string source_;
  std::set<std::string> known_;
};

}  // namespace

std::string ServeConfig::EffectiveDatabaseUrl() const {
  if (!database_url.empty()) return database_url;
  return "sqlite:" + data_dir + "/quarry.db";
}

Status ApplyServeToml(const std::string& text, const std::string& source_name,
                      ServeConfig* config) {
  toml::table root;
  try {
    root = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    return InvalidArgumentError(source_name + ":" + std::to_string(where.line) + ":" +
                                std::to_string(where.column) + ": not valid TOML: " +
                                std::string(e.description()));
  }
  TomlReader reader(root, source_name);
  QUARRY_RETURN_IF_ERROR(reader.Read("server", "host", &config->host));
  QUARRY_RETURN_IF_ERROR(reader.Read("server", "port", &config->port));
  QUARRY_RETURN_IF_ERROR(reader.Read("server", "io_threads", &config->io_threads));
  QUARRY_RETURN_IF_ERROR(reader.Read("server", "worker_threads", &config->worker_threads));
  QUARRY_RETURN_IF_ERROR(reader.Read("server", "data_dir", &config->data_dir));
  QUARRY_RETURN_IF_ERROR(reader.Read("database", "url", &config->database_url));
  QUARRY_RETURN_IF_ERROR(reader.Read("bedrock", "embedded_sim", &config->embedded_sim));
  QUARRY_RETURN_IF_ERROR(
      reader.Read("bedrock", "default_endpoint_url", &config->default_endpoint_url));
  QUARRY_RETURN_IF_ERROR(reader.Read("log", "format", &config->log_format));
  QUARRY_RETURN_IF_ERROR(reader.Read("log", "level", &config->log_level));
  QUARRY_RETURN_IF_ERROR(reader.Read("security", "key_rotation_days", &config->key_rotation_days));
  QUARRY_RETURN_IF_ERROR(reader.Read("security", "admin_email", &config->admin_email));
  QUARRY_RETURN_IF_ERROR(reader.Read("engine", "workers", &config->engine_workers));
  QUARRY_RETURN_IF_ERROR(reader.Read("engine", "max_in_flight", &config->engine_max_in_flight));
  QUARRY_RETURN_IF_ERROR(reader.Read("engine", "lease_seconds", &config->engine_lease_seconds));
  QUARRY_RETURN_IF_ERROR(reader.Read("engine", "requests_per_minute", &config->engine_requests_per_minute));
  QUARRY_RETURN_IF_ERROR(reader.Read("engine", "tokens_per_minute", &config->engine_tokens_per_minute));
  return reader.CheckNoUnknownKeys();
}

Status ApplyServeEnvironment(const std::map<std::string, std::string>& env, ServeConfig* config) {
  auto text = [&](const char* name, std::string* out) {
    if (auto it = env.find(name); it != env.end()) *out = it->second;
  };
  text("QUARRY_HOST", &config->host);
  text("QUARRY_DATA_DIR", &config->data_dir);
  text("QUARRY_DB", &config->database_url);
  text("QUARRY_BEDROCK_ENDPOINT_URL", &config->default_endpoint_url);
  text("QUARRY_LOG_FORMAT", &config->log_format);
  text("QUARRY_LOG_LEVEL", &config->log_level);
  text("QUARRY_ADMIN_EMAIL", &config->admin_email);
  if (auto it = env.find("QUARRY_PORT"); it != env.end()) {
    QUARRY_RETURN_IF_ERROR(ParseIntText("QUARRY_PORT", it->second, &config->port));
  }
  if (auto it = env.find("QUARRY_EMBEDDED_SIM"); it != env.end()) {
    if (!ParseBoolText(it->second, &config->embedded_sim)) {
      return InvalidArgumentError("QUARRY_EMBEDDED_SIM=\"" + it->second +
                                  "\" is not a yes/no value; use 1 or 0");
    }
  }
  if (auto it = env.find("QUARRY_ENGINE_WORKERS"); it != env.end()) {
    if (!ParseBoolText(it->second, &config->engine_workers)) {
      return InvalidArgumentError("QUARRY_ENGINE_WORKERS=\"" + it->second + "\" is not a yes/no value; use 1 or 0");
    }
  }
  return Status::Ok();
}

Status ValidateServeConfig(const ServeConfig& config) {
  if (config.port < 0 || config.port > 65535) {
    return InvalidArgumentError("port " + std::to_string(config.port) +
                                " is out of range; use 1-65535, or 0 for a free port");
  }
  if (config.io_threads < 1 || config.io_threads > 64) {
    return InvalidArgumentError("io_threads must be 1-64");
  }
  if (config.worker_threads < 1 || config.worker_threads > 256) {
    return InvalidArgumentError("worker_threads must be 1-256");
  }
  if (config.data_dir.empty()) {
    return InvalidArgumentError("data_dir is empty; set --data-dir to a directory Quarry may write");
  }
  if (config.log_format != "text" && config.log_format != "json") {
    return InvalidArgumentError("log format \"" + config.log_format + "\" is unknown; use text or json");
  }
  if (config.key_rotation_days < 1 || config.key_rotation_days > 3650) {
    return InvalidArgumentError("key_rotation_days must be 1-3650");
  }
  if (config.admin_email.find('@') == std::string::npos) {
    return InvalidArgumentError("admin_email \"" + config.admin_email +
                                "\" is not an e-mail address; set one such as admin@yourcompany.com");
  }
  if (config.engine_max_in_flight < 1 || config.engine_max_in_flight > 1'000'000) {
    return InvalidArgumentError("engine max_in_flight must be 1-1000000");
  }
  if (config.engine_lease_seconds < 5 || config.engine_lease_seconds > 3600) {
    return InvalidArgumentError("engine lease_seconds must be 5-3600 (a lost node's runs wait this long)");
  }
  if (config.engine_requests_per_minute < 0 || config.engine_tokens_per_minute < 0) {
    return InvalidArgumentError("engine requests_per_minute and tokens_per_minute must be >= 0 (0 = unlimited)");
  }
  if (config.embedded_sim && !config.default_endpoint_url.empty()) {
    return InvalidArgumentError(
        "both the embedded emulator and default_endpoint_url are set; choose one (the emulator "
        "provides its own endpoint)");
  }
  return Status::Ok();
}

std::map<std::string, std::string> QuarryEnvironment() {
  std::map<std::string, std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (!text.starts_with("QUARRY_")) continue;
    const size_t equals = text.find('=');
    if (equals == std::string_view::npos) continue;
    env.emplace(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
  }
  return env;
}

}  // namespace quarry::cli
