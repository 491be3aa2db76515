#include "aws/shared_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>

#include "common/encoding.h"

namespace quarry::aws {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// Cuts a comment that starts with `#` or `;` after whitespace. A `#` glued to
// text (`abc#def`) stays, because secrets and commands may contain one.
std::string_view StripInlineComment(std::string_view value) {
  for (size_t i = 1; i < value.size(); ++i) {
    if ((value[i] == '#' || value[i] == ';') && IsBlank(value[i - 1])) {
      return TrimAsciiWhitespace(value.substr(0, i));
    }
  }
  return value;
}

std::string LineError(std::string_view path, int line, std::string_view what) {
  std::string out(path);
  out += ":" + std::to_string(line) + ": " + std::string(what);
  return out;
}

// The profile a config-file section defines, if any.
std::optional<std::string> ConfigSectionProfile(std::string_view section) {
  if (section == "default") return std::string("default");
  constexpr std::string_view kPrefix = "profile";
  if (section.size() <= kPrefix.size() || section.substr(0, kPrefix.size()) != kPrefix ||
      !IsBlank(section[kPrefix.size()])) {
    return std::nullopt;
  }
  std::string_view name = TrimAsciiWhitespace(section.substr(kPrefix.size()));
  if (name.size() >= 2 && ((name.front() == '"' && name.back() == '"') ||
                           (name.front() == '\'' && name.back() == '\''))) {
    name = name.substr(1, name.size() - 2);
  }
  if (name.empty()) return std::nullopt;
  return std::string(name);
}

}  // namespace

std::optional<std::string> Environment::GetNonEmpty(std::string_view name) const {
  std::optional<std::string> value = Get(name);
  if (!value.has_value() || value->empty()) return std::nullopt;
  return value;
}

const ProcessEnvironment& ProcessEnvironment::Get() {
  static const ProcessEnvironment* const instance = new ProcessEnvironment();
  return *instance;
}

std::optional<std::string> ProcessEnvironment::Get(std::string_view name) const {
  // getenv is safe to call concurrently as long as nobody calls setenv, which
  // Quarry never does after start-up.
  const char* value = std::getenv(std::string(name).c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

std::optional<std::string> MapEnvironment::Get(std::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

const IniSection* IniFile::Find(std::string_view name) const {
  for (const IniSection& section : sections) {
    if (section.name == name) return &section;
  }
  return nullptr;
}

Result<IniFile> ParseIni(std::string_view text, std::string_view path) {
  IniFile file;
  file.path = std::string(path);
  IniSection* section = nullptr;
  std::string current_key;  // the property indented lines continue
  int line_number = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string_view line = TrimAsciiWhitespace(raw);
    if (line.empty() || line.front() == '#' || line.front() == ';') {
      continue;
    }
    const bool indented = IsBlank(raw.front());

    // People indent whole profiles, so an indented `k = v` after a property
    // that has a value is a property of its own (configparser would glue it
    // onto the previous value, silently corrupting a key).
    if (indented && section != nullptr && !current_key.empty() &&
        (section->values[current_key].value.empty() || line.find('=') == std::string_view::npos)) {
      IniValue& parent = section->values[current_key];
      if (parent.value.empty()) {
        // Under an empty value, indented lines are nested `key = value`s.
        size_t eq = line.find('=');
        if (eq == std::string_view::npos || TrimAsciiWhitespace(line.substr(0, eq)).empty()) {
          return InvalidArgumentError(
              LineError(path, line_number,
                        "expected an indented `key = value` under \"" + current_key +
                            " =\"; fix or remove the line (a `#` or `;` starts a comment)"));
        }
        std::string key = current_key + "." + AsciiToLower(TrimAsciiWhitespace(line.substr(0, eq)));
        section->values[key] = IniValue{
            std::string(StripInlineComment(TrimAsciiWhitespace(line.substr(eq + 1)))), line_number};
      } else {
        parent.value += "\n";
        parent.value += StripInlineComment(line);
      }
      continue;
    }

    if (line.front() == '[') {
      size_t close = line.find(']');
      if (close == std::string_view::npos) {
        return InvalidArgumentError(
            LineError(path, line_number, "section header has no closing ']'; write it as [name]"));
      }
      std::string_view rest = TrimAsciiWhitespace(line.substr(close + 1));
      if (!rest.empty() && rest.front() != '#' && rest.front() != ';') {
        return InvalidArgumentError(
            LineError(path, line_number,
                      "unexpected text after the section header's ']'; only a comment may follow"));
      }
      std::string_view name = TrimAsciiWhitespace(line.substr(1, close - 1));
      if (name.empty()) {
        return InvalidArgumentError(LineError(path, line_number, "empty section name '[]'"));
      }
      section = nullptr;
      for (IniSection& existing : file.sections) {
        if (existing.name == name) section = &existing;
      }
      if (section == nullptr) {
        file.sections.push_back(IniSection{std::string(name), line_number, {}});
        section = &file.sections.back();
      }
      current_key.clear();
      continue;
    }

    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgumentError(LineError(
          path, line_number,
          "expected `key = value`, a [section] header or a comment starting with # or ;"));
    }
    std::string key = AsciiToLower(TrimAsciiWhitespace(line.substr(0, eq)));
    if (key.empty()) {
      return InvalidArgumentError(LineError(path, line_number, "property has no name before '='"));
    }
    if (section == nullptr) {
      return InvalidArgumentError(LineError(
          path, line_number,
          "property \"" + key + "\" appears before any [section] header; put it under a profile"));
    }
    section->values[key] = IniValue{
        std::string(StripInlineComment(TrimAsciiWhitespace(line.substr(eq + 1)))), line_number};
    current_key = key;
  }
  return file;
}

Result<IniFile> ReadIniFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int error = errno;
    if (error == ENOENT || error == ENOTDIR) return NotFoundError(path + " does not exist");
    return PermissionDeniedError("cannot read " + path + ": " + std::strerror(error) +
                                 "; check the file's permissions");
  }
  struct stat info {};
  if (::fstat(fd, &info) == 0 && S_ISDIR(info.st_mode)) {
    ::close(fd);
    return InvalidArgumentError(path + " is a directory, not an AWS shared config file");
  }
  std::string text;
  char buffer[8192];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      ::close(fd);
      return PermissionDeniedError("cannot read " + path + ": " + std::strerror(error));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > kMaxSharedFileBytes) {
      ::close(fd);
      return InvalidArgumentError(
          path + " is larger than " + std::to_string(kMaxSharedFileBytes) +
          " bytes; an AWS shared config file is never that big, check the path");
    }
  }
  ::close(fd);
  return ParseIni(text, path);
}

SharedFilePaths ResolveSharedFilePaths(const Environment& env) {
  std::optional<std::string> home = env.GetNonEmpty("HOME");
  auto expand = [&](std::string path) {
    if (home.has_value() && (path == "~" || path.rfind("~/", 0) == 0)) {
      path = *home + path.substr(1);
    }
    return path;
  };
  auto pick = [&](std::string_view variable, std::string_view file_name) -> std::string {
    if (std::optional<std::string> value = env.GetNonEmpty(variable)) return expand(*value);
    if (!home.has_value()) return "";
    return *home + "/.aws/" + std::string(file_name);
  };
  return SharedFilePaths{pick("AWS_CONFIG_FILE", "config"),
                         pick("AWS_SHARED_CREDENTIALS_FILE", "credentials")};
}

Result<SharedConfig> SharedConfig::Load(const SharedFilePaths& paths) {
  SharedConfig config;
  config.paths_ = paths;
  if (!paths.config_file.empty()) {
    Result<IniFile> file = ReadIniFile(paths.config_file);
    if (file.ok()) {
      config.config_ = std::move(file).value();
    } else if (file.status().code() != StatusCode::kNotFound) {
      return file.status();
    }
  }
  if (!paths.credentials_file.empty()) {
    Result<IniFile> file = ReadIniFile(paths.credentials_file);
    if (file.ok()) {
      config.credentials_ = std::move(file).value();
    } else if (file.status().code() != StatusCode::kNotFound) {
      return file.status();
    }
  }
  config.Index();
  return config;
}

Result<SharedConfig> SharedConfig::FromText(const SharedFilePaths& paths,
                                            const std::optional<std::string>& config_text,
                                            const std::optional<std::string>& credentials_text) {
  SharedConfig config;
  config.paths_ = paths;
  if (config_text.has_value()) {
    QUARRY_ASSIGN_OR_RETURN(IniFile file, ParseIni(*config_text, paths.config_file));
    config.config_ = std::move(file);
  }
  if (credentials_text.has_value()) {
    QUARRY_ASSIGN_OR_RETURN(IniFile file, ParseIni(*credentials_text, paths.credentials_file));
    config.credentials_ = std::move(file);
  }
  config.Index();
  return config;
}

void SharedConfig::Index() {
  if (config_.has_value()) {
    for (size_t i = 0; i < config_->sections.size(); ++i) {
      // Later sections win, as botocore's dict does for [default] and
      // [profile default].
      if (std::optional<std::string> name = ConfigSectionProfile(config_->sections[i].name)) {
        config_profiles_[*name] = i;
      }
    }
  }
  if (credentials_.has_value()) {
    for (size_t i = 0; i < credentials_->sections.size(); ++i) {
      credentials_profiles_[credentials_->sections[i].name] = i;
    }
  }
}

bool SharedConfig::HasProfile(std::string_view profile) const {
  return config_profiles_.count(profile) > 0 || credentials_profiles_.count(profile) > 0;
}

const IniSection* SharedConfig::Section(SharedFileKind kind, std::string_view profile) const {
  if (kind == SharedFileKind::kConfig) {
    auto it = config_profiles_.find(profile);
    return it == config_profiles_.end() ? nullptr : &config_->sections[it->second];
  }
  auto it = credentials_profiles_.find(profile);
  return it == credentials_profiles_.end() ? nullptr : &credentials_->sections[it->second];
}

std::optional<ProfileValue> SharedConfig::GetFrom(SharedFileKind kind, std::string_view profile,
                                                  std::string_view key) const {
  const IniSection* section = Section(kind, profile);
  if (section == nullptr) return std::nullopt;
  auto it = section->values.find(std::string(key));
  if (it == section->values.end()) return std::nullopt;
  const std::string& file =
      kind == SharedFileKind::kConfig ? paths_.config_file : paths_.credentials_file;
  return ProfileValue{it->second.value, file, it->second.line};
}

std::optional<ProfileValue> SharedConfig::Get(std::string_view profile,
                                              std::string_view key) const {
  if (auto value = GetFrom(SharedFileKind::kCredentials, profile, key)) return value;
  return GetFrom(SharedFileKind::kConfig, profile, key);
}

std::vector<std::string> SharedConfig::ProfileNames() const {
  std::set<std::string> names;
  for (const auto& [name, index] : config_profiles_) names.insert(name);
  for (const auto& [name, index] : credentials_profiles_) names.insert(name);
  return std::vector<std::string>(names.begin(), names.end());
}

std::string SharedConfig::DescribeFiles() const {
  auto describe = [](std::string_view what, const std::string& path, bool exists,
                     std::string_view variable) {
    std::string out(what);
    if (path.empty()) {
      out += " (unknown: neither " + std::string(variable) + " nor HOME is set)";
    } else {
      out += " " + path + (exists ? "" : " (not found)");
    }
    return out;
  };
  return describe("config file", paths_.config_file, config_.has_value(), "AWS_CONFIG_FILE") +
         ", " +
         describe("credentials file", paths_.credentials_file, credentials_.has_value(),
                  "AWS_SHARED_CREDENTIALS_FILE");
}

std::string SharedConfig::MisplacedSectionHint(std::string_view profile) const {
  std::string hint;
  if (config_.has_value() && profile != "default") {
    if (const IniSection* section = config_->Find(profile)) {
      hint += "the config file has a section [" + std::string(profile) + "] at line " +
              std::to_string(section->line) +
              ", but in the config file a profile is written [profile " + std::string(profile) +
              "]";
    }
  }
  if (credentials_.has_value()) {
    if (const IniSection* section = credentials_->Find("profile " + std::string(profile))) {
      if (!hint.empty()) hint += "; ";
      hint += "the credentials file has a section [profile " + std::string(profile) + "] at line " +
              std::to_string(section->line) +
              ", but in the credentials file a profile is written [" + std::string(profile) +
              "] (no 'profile' prefix)";
    }
  }
  return hint;
}

}  // namespace quarry::aws
