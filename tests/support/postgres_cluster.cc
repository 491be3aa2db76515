// A throwaway PostgreSQL cluster per test process (see postgres_cluster.h).
//
// Clean-up must happen even when the test process crashes, so it is not an
// atexit handler: a small reaper process (sh) blocks reading a pipe whose
// only writer is this process; when this process ends, however it ends, the
// read returns end-of-file and the reaper stops the server and deletes the
// directory.
//
// A cached template data directory (see EnsureTemplate) saves running initdb
// in every process.

#include "tests/support/postgres_cluster.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/process.h"

namespace quarry::testing {
namespace {

constexpr const char* kServerRoot = "/usr/lib/postgresql";
constexpr const char* kSystemUser = "postgres";
// Only names the socket file (.s.PGSQL.<port>) in our private directory; no
// TCP listener is opened, so it cannot collide with anything.
constexpr int kPort = 5432;

struct Cluster {
  std::string socket_dir;   // also the scratch root
  std::string skip_reason;  // non-empty: no cluster
  std::string bin_dir;
};

// Where clusters live: memory (/dev/shm) when there is one, since a cluster
// is thrown away anyway and copying or initialising tens of megabytes on a
// busy disk costs seconds; the temp directory otherwise.
std::filesystem::path ScratchRoot() {
  std::error_code ignored;
  if (std::filesystem::is_directory("/dev/shm", ignored) && ::access("/dev/shm", W_OK | X_OK) == 0) {
    return "/dev/shm";
  }
  return std::filesystem::temp_directory_path();
}

// The newest /usr/lib/postgresql/<N>/bin that has initdb, or "".
std::string FindServerBinaries() {
  std::error_code error;
  std::string best;
  int best_version = -1;
  for (const auto& entry : std::filesystem::directory_iterator(kServerRoot, error)) {
    const std::string name = entry.path().filename().string();
    const int version = std::atoi(name.c_str());
    const std::string bin = entry.path().string() + "/bin";
    if (version > best_version && ::access((bin + "/initdb").c_str(), X_OK) == 0 &&
        ::access((bin + "/pg_ctl").c_str(), X_OK) == 0) {
      best_version = version;
      best = bin;
    }
  }
  return best;
}

// Commands run as the server's user: PostgreSQL refuses to run as root.
std::vector<std::string> AsServerUser(std::vector<std::string> argv) {
  if (::geteuid() != 0) return argv;
  std::vector<std::string> wrapped = {"runuser", "-u", kSystemUser, "--"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

std::string ShellQuote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

// Starts the reaper described at the top of this file. Returns false when
// it cannot (then the caller cleans up itself and skips).
bool StartReaper(const Cluster& cluster, const std::string& data_dir) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  std::string stop;
  for (const std::string& arg :
       AsServerUser({cluster.bin_dir + "/pg_ctl", "-D", data_dir, "-m", "immediate", "-w", "stop"})) {
    stop += ShellQuote(arg) + " ";
  }
  const std::string script =
      "cat >/dev/null; " + stop + ">/dev/null 2>&1; rm -rf " + ShellQuote(cluster.socket_dir);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  if (pid == 0) {
    ::setsid();  // outlives a Ctrl-C aimed at the test's process group
    ::dup2(fds[0], 0);
    const int null_fd = ::open("/dev/null", O_WRONLY);
    if (null_fd >= 0) {
      ::dup2(null_fd, 1);
      ::dup2(null_fd, 2);
    }
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    ::execl("/bin/sh", "sh", "-c", script.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(fds[0]);
  // fds[1] stays open (close-on-exec) for the life of this process on purpose.
  return true;
}

// initdb costs about a second (more on a busy machine) and every test
// process needs a cluster, so a freshly initialised data directory is kept
// as a template in the scratch root, keyed by server version and user, and
// copied (cp -a, ~0.1 s) into each scratch directory. Created once under a
// file lock, atomically (initdb elsewhere, then rename), so a half-made
// template is never used. Returns "" when no template can be made.
std::string EnsureTemplate(const std::string& bin_dir, const struct passwd* user) {
  const std::string version = std::filesystem::path(bin_dir).parent_path().filename().string();
  const std::string base = (ScratchRoot() /
                            ("quarry_pg_template_" + version + "_uid" +
                             std::to_string(user != nullptr ? user->pw_uid : ::geteuid())))
                               .string();
  std::error_code ignored;
  if (std::filesystem::exists(base + "/PG_VERSION", ignored)) return base;
  const int lock = ::open((base + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock < 0) return "";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (::flock(lock, LOCK_EX | LOCK_NB) != 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::close(lock);
      return "";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string result;
  if (std::filesystem::exists(base + "/PG_VERSION", ignored)) {
    result = base;  // made by another process while we waited
  } else {
    std::string pattern = base + ".tmp_XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr &&
        (user == nullptr || ::chown(pattern.c_str(), user->pw_uid, user->pw_gid) == 0)) {
      ProcessResult init = RunProcess(AsServerUser(
          {bin_dir + "/initdb", "-D", pattern + "/data", "-U", "postgres", "--auth=trust",
           "--no-sync", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"}));
      if (init.exit_code == 0 && ::rename((pattern + "/data").c_str(), base.c_str()) == 0) {
        result = base;
      }
    }
    std::filesystem::remove_all(pattern, ignored);
  }
  ::close(lock);
  return result;
}

Cluster StartCluster() {
  Cluster cluster;
  cluster.bin_dir = FindServerBinaries();
  if (cluster.bin_dir.empty()) {
    cluster.skip_reason =
        "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin; install "
        "the Debian package postgresql (apt-get install postgresql) to run these tests";
    return cluster;
  }
  struct passwd* user = nullptr;
  if (::geteuid() == 0) {
    user = ::getpwnam(kSystemUser);
    if (user == nullptr) {
      cluster.skip_reason =
          "running as root, and there is no 'postgres' system user to run the PostgreSQL server "
          "as (PostgreSQL refuses to run as root); install the postgresql package, which creates it";
      return cluster;
    }
  }
  std::string pattern = (ScratchRoot() / "quarry_pg_XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    cluster.skip_reason =
        "cannot create a scratch directory for PostgreSQL in " + ScratchRoot().string();
    return cluster;
  }
  cluster.socket_dir = pattern;
  if (user != nullptr && ::chown(cluster.socket_dir.c_str(), user->pw_uid, user->pw_gid) != 0) {
    std::filesystem::remove_all(cluster.socket_dir);
    cluster.skip_reason = "cannot give the scratch directory to the postgres user";
    return cluster;
  }
  const std::string data_dir = cluster.socket_dir + "/data";
  const std::string template_dir = EnsureTemplate(cluster.bin_dir, user);
  ProcessResult init;
  if (!template_dir.empty()) {
    // As root, cp -a keeps the postgres user's ownership and the 0700 mode.
    init = RunProcess(AsServerUser({"cp", "-a", template_dir, data_dir}));
  }
  if (template_dir.empty() || init.exit_code != 0) {
    std::error_code ignored;
    std::filesystem::remove_all(data_dir, ignored);
    init = RunProcess(AsServerUser(
        {cluster.bin_dir + "/initdb", "-D", data_dir, "-U", "postgres", "--auth=trust",
         "--no-sync", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"}));
  }
  if (init.exit_code != 0) {
    std::filesystem::remove_all(cluster.socket_dir);
    cluster.skip_reason = "initdb failed (exit " + std::to_string(init.exit_code) +
                          "): " + init.stderr_text + init.stdout_text;
    return cluster;
  }
  if (!StartReaper(cluster, data_dir)) {
    std::filesystem::remove_all(cluster.socket_dir);
    cluster.skip_reason = "cannot start the clean-up process for the PostgreSQL cluster";
    return cluster;
  }
  // Durability is irrelevant for a throwaway cluster; speed is not.
  const std::string server_options = "-k " + cluster.socket_dir +
                                     " -p " + std::to_string(kPort) +
                                     " -c listen_addresses='' -c fsync=off"
                                     " -c synchronous_commit=off -c full_page_writes=off"
                                     " -c max_connections=200 -c deadlock_timeout=100ms";
  ProcessResult start = RunProcess(
      AsServerUser({cluster.bin_dir + "/pg_ctl", "-D", data_dir, "-l", cluster.socket_dir + "/log",
                    "-w", "-t", "60", "-o", server_options, "start"}));
  if (start.exit_code != 0) {
    cluster.skip_reason = "pg_ctl start failed (exit " + std::to_string(start.exit_code) +
                          "): " + start.stderr_text + start.stdout_text + " (server log in " +
                          cluster.socket_dir + "/log)";
    return cluster;
  }
  return cluster;
}

}  // namespace

PostgresDatabase SharedPostgresDatabase() {
  static std::once_flag once;
  static Cluster* cluster = nullptr;
  static std::atomic<int> counter{0};
  std::call_once(once, [] { cluster = new Cluster(StartCluster()); });  // lives until exit
  PostgresDatabase result;
  if (!cluster->skip_reason.empty()) {
    result.skip_reason = cluster->skip_reason;
    return result;
  }
  const std::string name =
      "quarry_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter.fetch_add(1));
  ProcessResult created = RunProcess({cluster->bin_dir + "/psql", "-X", "-q", "-h",
                                      cluster->socket_dir, "-p", std::to_string(kPort), "-U",
                                      "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c",
                                      "CREATE DATABASE " + name});
  if (created.exit_code != 0) {
    result.skip_reason = "CREATE DATABASE in the test cluster failed: " + created.stderr_text;
    return result;
  }
  result.url = "postgresql://postgres@/" + name + "?host=" + cluster->socket_dir +
               "&port=" + std::to_string(kPort);
  return result;
}

}  // namespace quarry::testing
