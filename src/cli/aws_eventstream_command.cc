// `quarry aws eventstream decode|encode`: converts between the AWS event-stream
// binary framing and its JSON-lines form (aws/eventstream_json.h), for looking
// at captured Bedrock response bodies and for writing test fixtures.
//
// Both directions stream: input is read in 64 KiB chunks and output is written
// as soon as each message is complete, so a huge capture never sits in memory
// whole. Exit status: 0 on success (empty input included), 1 when the input is
// malformed or cannot be read, with the reason on stderr; whatever was valid
// before the failure has already been written to stdout.

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "aws/eventstream.h"
#include "aws/eventstream_json.h"
#include "cli/commands.h"
#include "common/status.h"

namespace quarry::cli {
namespace {

constexpr size_t kReadChunkSize = 64 * 1024;
// A JSON line holds at most one 24 MiB payload in base64 (32 MiB) plus
// headers; anything longer cannot encode to a valid message anyway.
constexpr size_t kMaxJsonLineSize = 40 * 1024 * 1024;
// Encoded frames are written in batches of about this size.
constexpr size_t kEncodeFlushSize = 1024 * 1024;

[[noreturn]] void FailCommand(std::string_view command, std::string_view message) {
  std::fflush(stdout);
  fmt::print(stderr, "quarry aws eventstream {}: {}\n", command, message);
  throw CLI::RuntimeError(1);
}

// Owns the input stream: a named file, or stdin for "-".
class Input {
 public:
  Input(std::string_view command, const std::string& path) : path_(path) {
    if (path == "-") {
      file_ = stdin;
      return;
    }
    file_ = std::fopen(path.c_str(), "rb");
    if (file_ == nullptr) {
      FailCommand(command, fmt::format("cannot open '{}': {}; give an existing file or - for stdin",
                                       path, std::strerror(errno)));
    }
    owned_ = true;
  }
  ~Input() {
    if (owned_) std::fclose(file_);
  }
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;

  // Reads up to kReadChunkSize bytes into `*chunk`; false at end of input.
  bool Read(std::string_view command, std::string* chunk) {
    chunk->resize(kReadChunkSize);
    const size_t n = std::fread(chunk->data(), 1, chunk->size(), file_);
    chunk->resize(n);
    if (n == 0 && std::ferror(file_)) {
      FailCommand(command, fmt::format("cannot read '{}': {}", path_, std::strerror(errno)));
    }
    return n > 0;
  }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  bool owned_ = false;
};

void WriteStdout(std::string_view command, std::string_view bytes) {
  if (bytes.empty()) return;
  if (std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size() || std::fflush(stdout)) {
    FailCommand(command, fmt::format("cannot write to stdout: {}", std::strerror(errno)));
  }
}

void RunDecode(const std::string& path) {
  constexpr std::string_view kCommand = "decode";
  Input input(kCommand, path);
  aws::EventStreamDecoder decoder;
  std::string chunk;
  std::vector<aws::Message> messages;
  std::string lines;
  uint64_t message_index = 0;
  bool more = true;
  while (more) {
    more = input.Read(kCommand, &chunk);
    messages.clear();
    const Status status = more ? decoder.Feed(chunk, &messages) : decoder.Finish();
    // Messages completed before a corrupt one are still printed.
    lines.clear();
    for (const aws::Message& message : messages) {
      Result<std::string> line = aws::MessageToJsonLine(message);
      if (!line.ok()) {
        WriteStdout(kCommand, lines);
        FailCommand(kCommand, fmt::format("message #{} cannot be shown as JSON: {}",
                                          message_index, line.status().message()));
      }
      ++message_index;
      lines += *line;
      lines += '\n';
    }
    WriteStdout(kCommand, lines);
    if (!status.ok()) FailCommand(kCommand, status.message());
  }
}

// Splits input into lines without ever holding more than one line (bounded by
// kMaxJsonLineSize) plus one read chunk.
void RunEncode(const std::string& path) {
  constexpr std::string_view kCommand = "encode";
  Input input(kCommand, path);
  std::string pending;
  std::string chunk;
  std::string frames;
  size_t line_number = 0;
  const auto handle_line = [&](std::string_view line) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) return;  // blank line
    Result<aws::Message> message = aws::MessageFromJsonLine(line);
    Status status = message.ok() ? aws::AppendEncodedMessage(*message, &frames) : message.status();
    if (!status.ok()) {
      WriteStdout(kCommand, frames);
      FailCommand(kCommand, fmt::format("line {}: {}", line_number, status.message()));
    }
    if (frames.size() >= kEncodeFlushSize) {
      WriteStdout(kCommand, frames);
      frames.clear();
    }
  };
  while (input.Read(kCommand, &chunk)) {
    std::string_view rest = chunk;
    for (size_t newline; (newline = rest.find('\n')) != std::string_view::npos;) {
      if (pending.empty()) {
        handle_line(rest.substr(0, newline));
      } else {
        pending.append(rest.substr(0, newline));
        handle_line(pending);
        pending.clear();
      }
      rest.remove_prefix(newline + 1);
    }
    pending.append(rest);
    if (pending.size() > kMaxJsonLineSize) {
      WriteStdout(kCommand, frames);
      FailCommand(kCommand,
                  fmt::format("line {} is longer than {} bytes, more than any valid message needs",
                              line_number + 1, kMaxJsonLineSize));
    }
  }
  if (!pending.empty()) handle_line(pending);
  WriteStdout(kCommand, frames);
}

}  // namespace

void RegisterAwsEventStreamCommand(CLI::App& aws) {
  CLI::App* eventstream = aws.add_subcommand(
      "eventstream",
      "Convert AWS event streams (application/vnd.amazon.eventstream) to and from JSON lines");
  eventstream->require_subcommand(1);
  eventstream->footer(
      "JSON line form: {\"headers\":[{\"name\":\":event-type\",\"type\":\"string\","
      "\"value\":\"chunk\"}],\"payload_base64\":\"...\"}\n"
      "Types: bool, byte, short, int, long, timestamp (ms since epoch), bytes (base64), string, "
      "uuid (8-4-4-4-12 hex).\n");

  auto decode_path = std::make_shared<std::string>("-");
  CLI::App* decode = eventstream->add_subcommand(
      "decode", "Binary event stream -> one JSON line per message on stdout");
  decode->add_option("input", *decode_path, "File to read, or - for stdin")->capture_default_str();
  decode->callback([decode_path] { RunDecode(*decode_path); });

  auto encode_path = std::make_shared<std::string>("-");
  CLI::App* encode = eventstream->add_subcommand(
      "encode", "JSON lines (one message each) -> binary event stream on stdout");
  encode->add_option("input", *encode_path, "File to read, or - for stdin")->capture_default_str();
  encode->callback([encode_path] { RunEncode(*encode_path); });
}

}  // namespace quarry::cli
