#pragma once
// Test support: `quarry sim --port 0 --exit-on-stdin-eof [extra args]` (or
// another announcing command, see StartCommand) as a child process. Start() reads the five lines it announces (URL and demo
// identity); closing its stdin (Stop()) stops it cleanly; the destructor kills
// it if it is still running.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace quarry::testing {

class SimProcess {
 public:
  SimProcess() = default;
  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;
  ~SimProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ != nullptr) fclose(out_);
  }

  // Starts `binary sim --port 0 --exit-on-stdin-eof extra_args…`. True when the
  // announced lines carried the URL, the access key and the agent alias ARN.
  bool Start(const std::string& binary, const std::vector<std::string>& extra_args = {}) {
    std::vector<std::string> args = {binary, "sim", "--port", "0", "--exit-on-stdin-eof"};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    if (!StartCommand(args, 5)) return false;
    return vars_.count("URL") && vars_.count("AWS_ACCESS_KEY_ID") && vars_.count("AGENT_ALIAS_ARN");
  }

  // Starts any command that announces itself on its first `lines` stdout
  // lines and stops at stdin EOF (`quarry serve --exit-on-stdin-eof`, ...).
  // "listening on URL" sets var("URL"); "NAME=value" sets var("NAME"); every
  // line is kept in lines(). False when the process could not start or
  // printed nothing.
  bool StartCommand(std::vector<std::string> args, int lines) {
    // O_CLOEXEC: a child started later must not inherit this child's stdin
    // write end, or this child would never see EOF while the later one lives
    // (dup2 below clears the flag on the child's own stdin and stdout).
    int in_pipe[2], out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0) return false;
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
      close(in_pipe[0]);
      close(in_pipe[1]);
      return false;
    }
    pid_ = fork();
    if (pid_ < 0) return false;
    if (pid_ == 0) {
      dup2(in_pipe[0], STDIN_FILENO);
      dup2(out_pipe[1], STDOUT_FILENO);
      close(in_pipe[1]);
      close(out_pipe[0]);
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    stdin_fd_ = in_pipe[1];
    out_ = fdopen(out_pipe[0], "r");
    char line[1024];
    for (int i = 0; i < lines && fgets(line, sizeof line, out_) != nullptr; ++i) {
      std::string text(line);
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      lines_.push_back(text);
      if (text.rfind("listening on ", 0) == 0) {
        vars_["URL"] = text.substr(13);
      } else if (const size_t eq = text.find('='); eq != std::string::npos) {
        vars_[text.substr(0, eq)] = text.substr(eq + 1);
      }
    }
    return !lines_.empty();
  }

  pid_t pid() const { return pid_; }
  const std::vector<std::string>& lines() const { return lines_; }

  // Closes stdin and waits: the exit status of a clean stop.
  int Stop() {
    if (pid_ <= 0) return -1;
    close(stdin_fd_);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (out_ != nullptr) fclose(out_);
    out_ = nullptr;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AGENT_ALIAS_ARN.
  const std::string& var(const std::string& name) { return vars_[name]; }

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  FILE* out_ = nullptr;
  std::map<std::string, std::string> vars_;
  std::vector<std::string> lines_;
};

}  // namespace quarry::testing
