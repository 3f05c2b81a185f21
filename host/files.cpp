// Output files (splitconv/files.h): a unique temporary file, fsync, rename, fsync of the
// directory; and the check that an output path can be written, made before work starts.
#include "splitconv/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "splitconv/error.h"

namespace splitconv {
namespace {

std::string directory_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// PATH.tmp.PID.N: unique among the processes and threads that write beside PATH.
std::string temporary_name(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return path + ".tmp." + std::to_string(getpid()) + "." + std::to_string(counter++);
}

bool write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    p += n;
    size -= size_t(n);
  }
  return true;
}

// Makes the rename durable; a directory that cannot be opened or synced (some file systems)
// does not fail the write, which is already complete.
void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomic(const std::string& path, std::initializer_list<Bytes> parts,
                       const std::string& what) {
  const std::string tmp = temporary_name(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) throw Error(path + ": cannot write " + what + ": " + std::strerror(errno));
  bool ok = true;
  for (const Bytes& b : parts) ok = ok && write_all(fd, b.data, b.size);
  ok = ok && ::fsync(fd) == 0;
  int err = errno;
  if (::close(fd) != 0 && ok) ok = false, err = errno;
  if (ok && std::rename(tmp.c_str(), path.c_str()) != 0) ok = false, err = errno;
  if (!ok) {
    ::unlink(tmp.c_str());
    throw Error(path + ": cannot write " + what + ": " + std::strerror(err));
  }
  sync_directory(directory_of(path));
}

void check_writable(const std::string& path, const std::string& option) {
  if (path.empty()) throw InputError(option + ": an empty path");
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
    throw InputError(option + " " + path + ": is a directory, not a file");
  const std::string dir = directory_of(path);
  if (::stat(dir.c_str(), &st) != 0)
    throw InputError(option + " " + path + ": directory " + dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode))
    throw InputError(option + " " + path + ": " + dir + " is not a directory");
  const std::string probe = temporary_name(path);
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0)
    throw InputError(option + " " + path + ": cannot create a file in " + dir + ": " +
                     std::strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
}

}  // namespace splitconv
