// Where relative paths point: the directory the user started the command from (also under
// `bazel run`, which changes the working directory), then the binary's runfiles.
#ifndef FECSEARCH_CORE_PATHS_H_
#define FECSEARCH_CORE_PATHS_H_

#include <string>

namespace fecsearch {

// The user's working directory: $BUILD_WORKING_DIRECTORY under `bazel run`, else the cwd.
std::string UserWorkingDirectory();
// An input path: absolute as is; relative, the first existing of
// UserWorkingDirectory()/path, ./path and the runfiles tree's path. Unchanged if none exists
// (so that the error names what the user wrote).
std::string ResolveInputPath(const std::string& path);
// An output path: absolute as is; relative to UserWorkingDirectory().
std::string ResolveOutputPath(const std::string& path);
// Whether a file or directory exists.
bool PathExists(const std::string& path);

}  // namespace fecsearch

#endif  // FECSEARCH_CORE_PATHS_H_
