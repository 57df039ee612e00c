// Path resolution for inputs (data files) and outputs (databases, reports).
#include "core/paths.h"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <vector>

namespace fecsearch {

bool PathExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

std::string UserWorkingDirectory() {
  if (const char* d = std::getenv("BUILD_WORKING_DIRECTORY"); d && *d) return d;
  char buf[PATH_MAX];
  if (getcwd(buf, sizeof(buf)) != nullptr) return buf;
  return ".";
}

namespace {

std::vector<std::string> RunfilesRoots() {
  std::vector<std::string> roots;
  if (const char* d = std::getenv("RUNFILES_DIR"); d && *d) roots.push_back(std::string(d) + "/fecsearch");
  if (const char* d = std::getenv("TEST_SRCDIR"); d && *d) roots.push_back(std::string(d) + "/fecsearch");
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) {
    exe[n] = 0;
    roots.push_back(std::string(exe) + ".runfiles/fecsearch");
  }
  return roots;
}

}  // namespace

std::string ResolveInputPath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  const std::string user = UserWorkingDirectory() + "/" + path;
  if (PathExists(user)) return user;
  if (PathExists(path)) return path;
  for (const std::string& root : RunfilesRoots()) {
    const std::string candidate = root + "/" + path;
    if (PathExists(candidate)) return candidate;
  }
  return path;
}

std::string ResolveOutputPath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return UserWorkingDirectory() + "/" + path;
}

}  // namespace fecsearch
