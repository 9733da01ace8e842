// safetensors files: the byte layout, its validation, and the atomic write.
//
// Loading reads the 8-byte length and the header, checks every entry against the file size
// (see check_entries), and only then reads each tensor's bytes straight into its storage.
// The same code (parse) reads a file on disk and a file's bytes in memory.
// Saving builds the header from the tensors' sizes, writes header and data to a temporary file
// next to the target, fsyncs it and renames it into place (POSIX rename replaces atomically).
// Both assume a little-endian machine, as the format's data is little-endian; the
// static_assert below stops a build where that is false rather than corrupting data.
#include "tensor/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <set>

#include "tensor/safetensors_header.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O copies little-endian data as is; a big-endian port must swap bytes");

namespace qnn {
namespace {

constexpr int64_t kMaxExactInt = int64_t{1} << 24;  // float counts every integer up to here
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;  // the reference library's limit too

int64_t dtype_size(const std::string& dtype) {
  if (dtype == "F32") return 4;
  if (dtype == "I64") return 8;
  if (dtype == "U8") return 1;
  return 0;  // unsupported
}

// ---- loading ----

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

void read_exact(std::FILE* f, const std::string& path, int64_t at, void* dst, int64_t bytes) {
  if (bytes == 0) return;
  const bool ok = fseeko(f, static_cast<off_t>(at), SEEK_SET) == 0 &&
                  std::fread(dst, 1, static_cast<size_t>(bytes), f) == static_cast<size_t>(bytes);
  if (!ok)
    throw Error(str("[load_safetensors] ", path, ": could not read ", bytes, " bytes at offset ", at,
                    ": ", std::ferror(f) ? std::strerror(errno) : "unexpected end of file"));
}

// Checks each entry's dtype, its size against its shape, its place in a data section of
// `data_bytes`, and that the entries together cover the section exactly once.
void check_entries(const std::vector<SafetensorsEntry>& entries, int64_t data_bytes, const std::string& path) {
  const std::string where = str("[load_safetensors] ", path, ": ");
  for (const SafetensorsEntry& e : entries) {
    const int64_t elem = dtype_size(e.dtype);
    if (elem == 0)
      throw Error(str(where, "tensor '", e.name, "' has dtype ", e.dtype, "; supported dtypes are F32, I64 and U8"));
    int64_t numel = 1;
    for (int64_t d : e.shape) {
      if (d != 0 && numel > (int64_t{1} << 56) / d)
        throw Error(str(where, "tensor '", e.name, "' has shape ", shape_str(e.shape), ", too large to address"));
      numel *= d;
    }
    if (e.begin > e.end || e.end > data_bytes)
      throw Error(str(where, "tensor '", e.name, "' has data_offsets [", e.begin, ", ", e.end,
                      "], outside the data section of ", data_bytes, " bytes"));
    if (e.end - e.begin != numel * elem)
      throw Error(str(where, "tensor '", e.name, "' of dtype ", e.dtype, " and shape ", shape_str(e.shape),
                      " needs ", numel * elem, " bytes, its data_offsets [", e.begin, ", ", e.end, "] hold ",
                      e.end - e.begin));
  }
  std::vector<const SafetensorsEntry*> by_offset;
  for (const SafetensorsEntry& e : entries) by_offset.push_back(&e);
  std::stable_sort(by_offset.begin(), by_offset.end(),
                   [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->begin < b->begin; });
  int64_t covered = 0;
  for (const SafetensorsEntry* e : by_offset) {
    if (e->begin != covered)
      throw Error(str(where, "tensor '", e->name, "' starts at data byte ", e->begin, ", expected ", covered,
                      " (tensors must follow each other with no gap or overlap)"));
    covered = e->end;
  }
  if (covered != data_bytes)
    throw Error(str(where, "the data section has ", data_bytes, " bytes but the tensors cover ", covered));
}

// One tensor's data, through read(at, dst, n) as in parse() below; `e` has passed check_entries.
template <class Read>
Tensor read_tensor(Read& read, const std::string& path, const SafetensorsEntry& e, int64_t data_start) {
  Tensor t(e.shape);
  if (e.dtype == "F32") {
    read(data_start + e.begin, t.data(), e.end - e.begin);
    return t;
  }
  if (e.dtype == "U8") {
    std::vector<unsigned char> bytes(static_cast<size_t>(t.numel()));
    read(data_start + e.begin, bytes.data(), e.end - e.begin);
    for (int64_t i = 0; i < t.numel(); ++i) t.data()[i] = bytes[static_cast<size_t>(i)];
    return t;
  }
  std::vector<int64_t> values(static_cast<size_t>(t.numel()));
  read(data_start + e.begin, values.data(), e.end - e.begin);
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int64_t v = values[static_cast<size_t>(i)];
    if (v > kMaxExactInt || v < -kMaxExactInt)
      throw Error(str("[load_safetensors] ", path, ": I64 tensor '", e.name, "' holds ", v, " at index ", i,
                      ", beyond 2^24 where float32 stops representing integers exactly"));
    t.data()[i] = static_cast<float>(v);
  }
  return t;
}

// Reads and checks a whole safetensors file of `file_bytes` bytes called `path`, whose bytes
// come from read(at, dst, n): a file on disk or a buffer in memory, so that both readers run
// the same checks. The header is checked whole before any tensor data is read.
template <class Read>
SafetensorsFile parse(const std::string& path, int64_t file_bytes, Read&& read) {
  const std::string where = str("[load_safetensors] ", path, ": ");
  if (file_bytes < 8)
    throw Error(str(where, "file is ", file_bytes,
                    " bytes, shorter than the 8-byte header length that starts a safetensors file"));
  unsigned char len_bytes[8];
  read(0, len_bytes, 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > static_cast<uint64_t>(file_bytes - 8))
    throw Error(str(where, "header length ", header_len, " runs past the end of the file (", file_bytes - 8,
                    " bytes follow the length); truncated or not a safetensors file?"));
  if (header_len > kMaxHeaderBytes)
    throw Error(str(where, "header length ", header_len, " exceeds the ", kMaxHeaderBytes, "-byte limit"));

  std::string json(static_cast<size_t>(header_len), '\0');
  read(8, json.data(), static_cast<int64_t>(header_len));
  SafetensorsHeader header = parse_safetensors_header(json, path);
  const int64_t data_start = 8 + static_cast<int64_t>(header_len);
  check_entries(header.entries, file_bytes - data_start, path);

  std::stable_sort(header.entries.begin(), header.entries.end(),
                   [](const SafetensorsEntry& a, const SafetensorsEntry& b) { return a.begin < b.begin; });
  SafetensorsFile out;
  out.path = path;
  out.metadata = std::move(header.metadata);
  for (const SafetensorsEntry& e : header.entries)
    out.tensors.push_back({e.name, read_tensor(read, path, e, data_start), e.dtype == "I64", e.dtype == "U8"});
  return out;
}

// ---- saving ----

// Writes all of `bytes`, retrying short writes; false (errno set) on failure.
bool write_all(int fd, const void* bytes, size_t n) {
  const char* p = static_cast<const char*>(bytes);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// A name no other writer in this or another process is using: "<path>.tmp.<pid>.<counter>".
std::string temp_name(const std::string& path) {
  static std::atomic<uint64_t> counter{0};
  return str(path, ".tmp.", ::getpid(), ".", counter++);
}

std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

bool SafetensorsFile::has(const std::string& name) const { return find(name) != nullptr; }

const NamedTensor* SafetensorsFile::find(const std::string& name) const {
  for (const NamedTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const Tensor& SafetensorsFile::get(const std::string& name) const {
  if (const NamedTensor* t = find(name)) return t->tensor;
  std::string names;
  for (size_t i = 0; i < tensors.size() && i < 8; ++i) names += str(i ? ", " : "", tensors[i].name);
  if (tensors.size() > 8) names += str(", ... (", tensors.size(), " in all)");
  throw Error(str("[SafetensorsFile::get] ", path, ": no tensor named '", name, "'; the file holds: ",
                  tensors.empty() ? "nothing" : names));
}

SafetensorsFile load_safetensors(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  QNN_CHECK(f, "cannot open ", path, ": ", std::strerror(errno));
  QNN_CHECK(fseeko(f.get(), 0, SEEK_END) == 0, "cannot seek in ", path, ": ", std::strerror(errno));
  const int64_t file_bytes = ftello(f.get());
  std::FILE* file = f.get();
  return parse(path, file_bytes, [&](int64_t at, void* dst, int64_t bytes) { read_exact(file, path, at, dst, bytes); });
}

SafetensorsFile load_safetensors(const void* bytes, size_t size, const std::string& name) {
  const auto* base = static_cast<const unsigned char*>(bytes);
  QNN_CHECK(size <= static_cast<size_t>(std::numeric_limits<int64_t>::max()), name, ": ", size,
            " bytes is beyond any safetensors file");
  const int64_t total = static_cast<int64_t>(size);
  return parse(name, total, [&](int64_t at, void* dst, int64_t n) {
    // parse() only asks for ranges inside the file; this check keeps a mistake there from
    // becoming a read out of bounds.
    if (n == 0) return;
    if (at < 0 || n < 0 || at > total || n > total - at)
      throw Error(str("[load_safetensors] ", name, ": could not read ", n, " bytes at offset ", at,
                      ": unexpected end of file"));
    std::memcpy(dst, base + at, static_cast<size_t>(n));
  });
}

void save_safetensors(const std::string& path, const std::vector<NamedTensor>& given,
                      const std::map<std::string, std::string>& metadata) {
  // Tensors on the GPU are copied to the host first (CPU tensors are used as they are).
  std::vector<NamedTensor> tensors = given;
  for (NamedTensor& nt : tensors) nt.tensor = nt.tensor.to(Device::CPU);
  // Lay out the header and check every tensor before touching the disk.
  SafetensorsHeader header;
  header.metadata = metadata;
  std::set<std::string> names;
  std::vector<std::vector<int64_t>> int64_data(tensors.size());
  std::vector<std::vector<unsigned char>> uint8_data(tensors.size());
  int64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const NamedTensor& nt = tensors[i];
    QNN_CHECK(nt.name != "__metadata__", path, ": \"__metadata__\" is reserved and cannot name a tensor");
    QNN_CHECK(names.insert(nt.name).second, path, ": two tensors are named '", nt.name, "'");
    QNN_CHECK(nt.tensor.defined(), path, ": tensor '", nt.name, "' is undefined (holds no storage)");
    QNN_CHECK(nt.tensor.device() == Device::CPU, path, ": tensor '", nt.name, "' is on ",
              device_name(nt.tensor.device()), "; copy it to the CPU before saving");
    if (nt.as_int64) {
      std::vector<int64_t>& ints = int64_data[i];
      for (int64_t k = 0; k < nt.tensor.numel(); ++k) {
        const float v = nt.tensor.data()[k];
        QNN_CHECK(std::isfinite(v) && std::nearbyint(v) == v, path, ": tensor '", nt.name,
                  "' is saved as I64 but holds ", v, " at index ", k, ", not a whole number");
        ints.push_back(static_cast<int64_t>(v));
      }
    }
    QNN_CHECK(!(nt.as_int64 && nt.as_uint8), path, ": tensor '", nt.name, "' cannot be saved as both I64 and U8");
    if (nt.as_uint8)
      for (int64_t k = 0; k < nt.tensor.numel(); ++k) {
        const float v = nt.tensor.data()[k];
        QNN_CHECK(v >= 0 && v <= 255 && std::nearbyint(v) == v, path, ": tensor '", nt.name,
                  "' is saved as U8 but holds ", v, " at index ", k, ", not a whole number in 0..255");
        uint8_data[i].push_back(static_cast<unsigned char>(v));
      }
    const int64_t bytes = nt.tensor.numel() * (nt.as_int64 ? 8 : nt.as_uint8 ? 1 : 4);
    header.entries.push_back({nt.name, nt.as_int64 ? "I64" : nt.as_uint8 ? "U8" : "F32", nt.tensor.shape(), offset,
                              offset + bytes});
    offset += bytes;
  }
  std::string json = format_safetensors_header(header);
  json.append((8 - json.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(json.size()) >> (8 * i));

  const std::string tmp = temp_name(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  QNN_CHECK(fd >= 0, "cannot create ", tmp, " to write ", path, ": ", std::strerror(errno));
  // On any failure from here: close, remove the temporary file, report the step that failed.
  auto fail = [&](const char* step) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw Error(str("[save_safetensors] cannot save ", path, ": ", step, " ", tmp, " failed: ", std::strerror(err)));
  };
  if (!write_all(fd, len_bytes, 8) || !write_all(fd, json.data(), json.size())) fail("writing the header to");
  for (size_t i = 0; i < tensors.size(); ++i) {
    const bool ok = tensors[i].as_int64   ? write_all(fd, int64_data[i].data(), int64_data[i].size() * 8)
                    : tensors[i].as_uint8 ? write_all(fd, uint8_data[i].data(), uint8_data[i].size())
                                          : write_all(fd, tensors[i].tensor.data(), static_cast<size_t>(tensors[i].tensor.numel()) * 4);
    if (!ok) fail("writing tensor data to");
  }
  if (::fsync(fd) != 0) fail("flushing (fsync)");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(str("[save_safetensors] cannot save ", path, ": closing ", tmp, " failed: ", std::strerror(err)));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw Error(str("[save_safetensors] cannot save ", path, ": renaming ", tmp, " into place failed: ",
                    std::strerror(err)));
  }
  // Make the rename itself durable. Best effort: the file is complete either way.
  const int dir = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace qnn
