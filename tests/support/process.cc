#include "tests/support/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

namespace quarry::testing {

ProcessResult RunProcess(const std::vector<std::string>& argv, std::string_view stdin_text) {
  ProcessResult result;
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) != 0 || pipe2(out_pipe, O_CLOEXEC) != 0 ||
      pipe2(err_pipe, O_CLOEXEC) != 0) {
    result.exit_code = 127;
    result.stderr_text = std::string("pipe: ") + std::strerror(errno);
    return result;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    const std::string message = std::string("exec ") + argv[0] + ": " + std::strerror(errno);
    (void)!write(2, message.data(), message.size());
    _exit(127);
  }
  close(in_pipe[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  // The child may fill its output pipes before it has read all of its input,
  // so feed and drain together.
  signal(SIGPIPE, SIG_IGN);
  size_t written = 0;
  int in_fd = in_pipe[1];
  if (stdin_text.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  int open_outputs = 2;
  char buffer[65536];
  while (open_outputs > 0 || in_fd >= 0) {
    pollfd fds[3] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}, {in_fd, POLLOUT, 0}};
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n > 0) {
        (i == 0 ? result.stdout_text : result.stderr_text).append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(fds[i].fd);
        (i == 0 ? out_pipe[0] : err_pipe[0]) = -1;
        --open_outputs;
      }
    }
    if (in_fd >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t n = write(in_fd, stdin_text.data() + written, stdin_text.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) written = stdin_text.size();
      if (written == stdin_text.size()) {
        close(in_fd);
        in_fd = -1;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

namespace {

std::optional<PythonOracle> ProbeBotocore(const std::string& interpreter) {
  const ProcessResult probe =
      RunProcess({interpreter, "-c", "import botocore; print(botocore.__version__)"});
  if (probe.exit_code != 0) return std::nullopt;
  std::string version = probe.stdout_text;
  while (!version.empty() && (version.back() == '\n' || version.back() == '\r')) version.pop_back();
  return PythonOracle{interpreter, version};
}

bool VersionAtLeast(const std::string& version, int major, int minor) {
  std::istringstream in(version);
  int got_major = 0, got_minor = 0;
  char dot = 0;
  in >> got_major >> dot >> got_minor;
  return got_major > major || (got_major == major && got_minor >= minor);
}

}  // namespace

std::optional<PythonOracle> DebianBotocore() { return ProbeBotocore("/usr/bin/python3"); }

std::optional<PythonOracle> ModernBotocore() {
  auto oracle = ProbeBotocore("python3");
  if (!oracle || !VersionAtLeast(oracle->botocore_version, 1, 43)) return std::nullopt;
  return oracle;
}

}  // namespace quarry::testing
