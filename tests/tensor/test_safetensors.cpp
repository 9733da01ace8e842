// safetensors: round trips, every kind of corrupt file and its message, the atomic write, and
// a file written by PyTorch (tests/fixtures/torch_written.safetensors, see
// scripts/make_torch_fixture.py).
#include <doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <unistd.h>

#include "tensor/safetensors.h"
#include "tests/data/synthetic_cifar.h"

using namespace qnn;
namespace fs = std::filesystem;

namespace {

// A fresh, empty folder for one test, removed at the end of it.
struct TempDir {
  fs::path dir;
  TempDir() {
    static int counter = 0;
    dir = fs::temp_directory_path() / ("qnn_test_safetensors_" + std::to_string(::getpid()) + "_" +
                                       std::to_string(counter++));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~TempDir() { fs::remove_all(dir); }
  std::string file(const std::string& name) const { return (dir / name).string(); }
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file from a header text and a data section, with a correct length prefix.
std::string file_bytes(const std::string& json, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
  return out + json + data;
}

// The message of the qnn::Error that `f` throws; "no error" if it throws none.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

std::string load_error(const std::string& path) {
  return error_of([&] { load_safetensors(path); });
}

// The fixtures folder, found from this file's path (tests/tensor/ -> tests/fixtures/).
std::string fixture(const std::string& name) {
  return (fs::path(__FILE__).parent_path().parent_path() / "fixtures" / name).string();
}

}  // namespace

TEST_CASE("safetensors: round trip keeps values, shapes, order, metadata and int64 values") {
  TempDir tmp;
  const std::string path = tmp.file("model.safetensors");
  Tensor w = Tensor::normal({4, 3, 3, 3}, 0, 1, 11);
  w.data()[0] = -0.0f;
  w.data()[1] = 3.4e38f;
  w.data()[2] = 1e-40f;  // subnormal
  Tensor scalar = Tensor::full({}, 2.5f);
  Tensor empty(Shape{0, 5});
  Tensor counter = Tensor::full({}, 123456);
  Tensor steps = Tensor::from_vector({-3, 0, 16777216}, {3});
  const std::vector<NamedTensor> saved = {{"zeta.weight", w},    {"alpha", scalar},        {"empty", empty},
                                          {"bn.num_batches_tracked", counter, true}, {"steps", steps, true}};
  const std::map<std::string, std::string> metadata = {
      {"format", "pt"}, {"quote\"back\\slash", "line\nbreak\ttab"}, {"unicode", "µ → ∞"}};
  save_safetensors(path, saved, metadata);

  const std::string bytes = testing::read_file(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);
  CHECK(header_len % 8 == 0);  // data section 8-byte aligned
  CHECK(bytes.size() == 8 + header_len + 4 * (w.numel() + 1) + 8 * 4);

  const SafetensorsFile f = load_safetensors(path);
  CHECK(f.path == path);
  CHECK(f.metadata == metadata);
  REQUIRE(f.tensors.size() == saved.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    CAPTURE(saved[i].name);
    CHECK(f.tensors[i].name == saved[i].name);
    CHECK(f.tensors[i].as_int64 == saved[i].as_int64);
    CHECK(f.tensors[i].tensor.shape() == saved[i].tensor.shape());
    CHECK(std::memcmp(f.tensors[i].tensor.data(), saved[i].tensor.data(), 4 * saved[i].tensor.numel()) == 0);
  }
  CHECK(std::signbit(f.get("zeta.weight").data()[0]));
  CHECK(f.get("bn.num_batches_tracked").item() == 123456);
  CHECK(f.get("steps").to_vector() == std::vector<float>{-3, 0, 16777216});
  CHECK(f.has("alpha"));
  CHECK_FALSE(f.has("beta"));
  CHECK(error_of([&] { f.get("beta"); }) ==
        "[SafetensorsFile::get] " + path +
            ": no tensor named 'beta'; the file holds: zeta.weight, alpha, empty, bn.num_batches_tracked, steps");

  // I64 data is real int64 little-endian: the counter's 8 bytes follow the float data.
  const size_t counter_at = 8 + header_len + 4 * (w.numel() + 1);
  int64_t stored = 0;
  std::memcpy(&stored, bytes.data() + counter_at, 8);
  CHECK(stored == 123456);
}

TEST_CASE("safetensors: save rejects what it cannot write faithfully") {
  TempDir tmp;
  const std::string path = tmp.file("bad.safetensors");
  Tensor t = Tensor::full({2}, 1.5f);
  CHECK(error_of([&] { save_safetensors(path, {{"count", t, true}}); }) ==
        "[save_safetensors] " + path + ": tensor 'count' is saved as I64 but holds 1.5 at index 0, not a whole number");
  CHECK(error_of([&] { save_safetensors(path, {{"a", t}, {"a", t}}); }) ==
        "[save_safetensors] " + path + ": two tensors are named 'a'");
  CHECK(error_of([&] { save_safetensors(path, {{"__metadata__", t}}); }) ==
        "[save_safetensors] " + path + ": \"__metadata__\" is reserved and cannot name a tensor");
  CHECK(error_of([&] { save_safetensors(path, {{"u", Tensor()}}); }) ==
        "[save_safetensors] " + path + ": tensor 'u' is undefined (holds no storage)");
  CHECK(tmp.listing().empty());  // nothing was created
}

TEST_CASE("safetensors: U8 tensors are one byte per value, 0..255 only") {
  TempDir tmp;
  const std::string path = tmp.file("bytes.safetensors");
  save_safetensors(path, {{"packed", Tensor::from_vector({0, 7, 255, 128}, {4}), false, true},
                          {"scale", Tensor::full({1}, 0.5f)}});
  SafetensorsFile file = load_safetensors(path);
  CHECK(file.get("packed").to_vector() == std::vector<float>{0, 7, 255, 128});
  CHECK(file.find("packed")->as_uint8);
  CHECK(!file.find("scale")->as_uint8);
  CHECK(fs::file_size(path) % 8 == (4 + 4) % 8);  // header padded to 8 bytes, then 4 + 4 data bytes
  CHECK(error_of([&] { save_safetensors(path, {{"b", Tensor::full({1}, 256.0f), false, true}}); }) ==
        "[save_safetensors] " + path + ": tensor 'b' is saved as U8 but holds 256 at index 0, not a whole number in 0..255");
}

TEST_CASE("safetensors: the write is atomic and leaves no temporary file") {
  TempDir tmp;
  const std::string path = tmp.file("ckpt.safetensors");
  save_safetensors(path, {{"a", Tensor::full({3}, 1.0f)}});
  save_safetensors(path, {{"b", Tensor::full({2}, 2.0f)}});  // replaces the first
  CHECK(tmp.listing() == std::vector<std::string>{"ckpt.safetensors"});
  const SafetensorsFile f = load_safetensors(path);
  CHECK_FALSE(f.has("a"));
  CHECK(f.get("b").to_vector() == std::vector<float>{2, 2});

  // A folder that does not exist: nothing can be created, the error names the file and why.
  const std::string missing = tmp.file("no/such/folder/ckpt.safetensors");
  const std::string message = error_of([&] { save_safetensors(missing, {{"a", Tensor::full({1}, 1.0f)}}); });
  CHECK(message.rfind("[save_safetensors] cannot create " + missing + ".tmp.", 0) == 0);
  CHECK(message.find("to write " + missing + ": No such file or directory") != std::string::npos);
  CHECK_FALSE(fs::exists(missing));

  // The target is a folder: writing the temporary file succeeds, the rename fails, and the
  // temporary file must be cleaned up.
  fs::create_directory(tmp.file("taken"));
  const std::string taken = tmp.file("taken");
  const std::string rename_error = error_of([&] { save_safetensors(taken, {{"a", Tensor::full({1}, 1.0f)}}); });
  CHECK(rename_error.rfind("[save_safetensors] cannot save " + taken + ": renaming ", 0) == 0);
  CHECK(rename_error.find("Is a directory") != std::string::npos);
  CHECK(tmp.listing() == std::vector<std::string>{"ckpt.safetensors", "taken"});
  CHECK(fs::is_empty(taken));

  // A folder we may not write to (meaningless as root, who may write anywhere).
  if (::geteuid() != 0) {
    const std::string locked = tmp.file("locked");
    fs::create_directory(locked);
    fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec);
    const std::string denied = error_of([&] { save_safetensors(locked + "/x.safetensors", {{"a", Tensor::full({1}, 1.0f)}}); });
    CHECK(denied.find("Permission denied") != std::string::npos);
    fs::permissions(locked, fs::perms::owner_all);
    CHECK(fs::is_empty(locked));
  }
}

TEST_CASE("safetensors: truncated and missing files name the file and the sizes") {
  TempDir tmp;
  const std::string path = tmp.file("t.safetensors");
  CHECK(load_error(path) == "[load_safetensors] cannot open " + path + ": No such file or directory");

  write_bytes(path, "abc");
  CHECK(load_error(path) == "[load_safetensors] " + path +
                                ": file is 3 bytes, shorter than the 8-byte header length that starts a safetensors file");

  write_bytes(path, file_bytes("{}", "").substr(0, 9));  // claims 2 header bytes, has 1
  CHECK(load_error(path) == "[load_safetensors] " + path +
                                ": header length 2 runs past the end of the file (1 bytes follow the length); "
                                "truncated or not a safetensors file?");

  // A real file cut short inside its data.
  save_safetensors(path, {{"w", Tensor::full({4}, 1.0f)}});
  const std::string whole = testing::read_file(path);
  write_bytes(path, whole.substr(0, whole.size() - 4));
  CHECK(load_error(path) == "[load_safetensors] " + path +
                                ": tensor 'w' has data_offsets [0, 16], outside the data section of 12 bytes");
}

TEST_CASE("safetensors: malformed header JSON says where") {
  TempDir tmp;
  const std::string path = tmp.file("j.safetensors");
  auto error_for = [&](const std::string& json, const std::string& data = "") {
    write_bytes(path, file_bytes(json, data));
    return load_error(path);
  };
  const std::string at = "[load_safetensors] " + path + ": header JSON at byte ";
  CHECK(error_for("") == at + "0: expected '{', found the end of the header");
  CHECK(error_for("{\"a\" {}}") == at + "5: expected ':', found '{'");
  CHECK(error_for("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}") ==
        at + "53: expected ',' or '}', found the end of the header");
  CHECK(error_for("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}") ==
        at + "30: expected an integer (no fraction or exponent), found '.'");
  CHECK(error_for("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}") ==
        at + "29: expected a non-negative integer, found '-'");
  CHECK(error_for("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0]}}") ==
        at + "46: expected data_offsets as [begin, end], found 1 numbers");
  CHECK(error_for("{\"a\":{\"dtype\":\"F32\",\"shape\":[]}}") ==
        at + "5: expected a \"data_offsets\" in the entry of tensor 'a', found none");
  CHECK(error_for("{\"a\":{\"dtype\":\"F32\",\"kind\":1}}") ==
        at + "20: expected \"dtype\", \"shape\" or \"data_offsets\", found \"kind\"");
  CHECK(error_for("{\"__metadata__\":{\"k\":1}}") == at + "21: expected a string, found '1'");
  CHECK(error_for("{\"__metadata__\":{\"k\":\"bad \\q\"}}") ==
        at + "27: expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u after '\\', found 'q'");
  CHECK(error_for("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}} x") ==
        at + "54: expected the end of the header after the top-level object, found 'x'");
  CHECK(error_for("{\"__metadata__\":{\"k\":\"\\udc00\"}}") ==
        at + "22: expected a high surrogate (\\uD800-\\uDBFF) before a low one, found a lone low surrogate");
  CHECK(error_for("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}") == at + "25: expected unique metadata keys, found a second \"k\"");
  // Escapes decode to UTF-8 of one to four bytes, a surrogate pair joined; trailing padding
  // spaces are fine.
  write_bytes(path, file_bytes("{\"__metadata__\":{\"k\":\"\\u0041\\u00b5\\u20ac\\ud83d\\ude00\\n\"}}   ", ""));
  CHECK(load_safetensors(path).metadata.at("k") == "Aµ€😀\n");
  write_bytes(path, file_bytes("{\"__metadata__\":{}}", ""));  // empty objects
  CHECK(load_safetensors(path).metadata.empty());
}

TEST_CASE("safetensors: header entries must agree with the data") {
  TempDir tmp;
  const std::string path = tmp.file("e.safetensors");
  auto error_for = [&](const std::string& json, const std::string& data) {
    write_bytes(path, file_bytes(json, data));
    return load_error(path);
  };
  const std::string in = "[load_safetensors] " + path + ": ";
  const std::string eight(8, '\0');
  CHECK(error_for("{\"h\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]}}", eight) ==
        in + "tensor 'h' has dtype BF16; supported dtypes are F32, I64 and U8");
  CHECK(error_for("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", eight) ==
        in + "tensor 'w' has data_offsets [0, 16], outside the data section of 8 bytes");
  CHECK(error_for("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", eight) ==
        in + "tensor 'w' has data_offsets [8, 0], outside the data section of 8 bytes");
  CHECK(error_for("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", eight) ==
        in + "tensor 'w' of dtype F32 and shape [3] needs 12 bytes, its data_offsets [0, 8] hold 8");
  CHECK(error_for("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  eight) == in + "header JSON at byte 54: expected unique tensor names, found a second tensor named 'w'");
  CHECK(error_for("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                  eight) ==
        in + "tensor 'b' starts at data byte 0, expected 4 (tensors must follow each other with no gap or overlap)");
  CHECK(error_for("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", eight) ==
        in + "the data section has 8 bytes but the tensors cover 4");
  // An I64 value float32 cannot hold exactly.
  std::string big(8, '\0');
  const int64_t too_big = (int64_t{1} << 24) + 1;
  std::memcpy(big.data(), &too_big, 8);
  CHECK(error_for("{\"n\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}", big) ==
        in + "I64 tensor 'n' holds 16777217 at index 0, beyond 2^24 where float32 stops representing integers exactly");
}

TEST_CASE("safetensors: reads a file written by PyTorch") {
  const std::string path = fixture("torch_written.safetensors");
  const SafetensorsFile f = load_safetensors(path);
  CHECK(f.metadata == std::map<std::string, std::string>{{"format", "pt"}, {"note", "scale in µm"}});
  REQUIRE(f.tensors.size() == 6);
  const char* order[] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked", "ramp"};
  for (int i = 0; i < 6; ++i) CHECK(f.tensors[i].name == order[i]);
  CHECK(f.get("weight").to_vector() == std::vector<float>{1, 1, 1});
  CHECK(f.get("bias").to_vector() == std::vector<float>{0, 0, 0});
  CHECK(f.get("running_mean").to_vector() == std::vector<float>{0.5f, -1, 2});
  CHECK(f.get("running_var").to_vector() == std::vector<float>{1, 2, 3});
  CHECK(f.tensors[4].as_int64);
  CHECK(f.get("num_batches_tracked").shape() == Shape{});
  CHECK(f.get("num_batches_tracked").item() == 7);
  CHECK(f.get("ramp").shape() == Shape{2, 3});
  CHECK(f.get("ramp").to_vector() == std::vector<float>{-0.5f, -0.25f, 0, 0.25f, 0.5f, 0.75f});
}

TEST_CASE("safetensors: a file's bytes in memory load as the file does, with the same checks") {
  const std::string bytes = testing::read_file(fixture("torch_written.safetensors"));
  const SafetensorsFile f = load_safetensors(bytes.data(), bytes.size(), "in-memory.safetensors");
  const SafetensorsFile g = load_safetensors(fixture("torch_written.safetensors"));
  CHECK(f.path == "in-memory.safetensors");
  CHECK(f.metadata == g.metadata);
  REQUIRE(f.tensors.size() == g.tensors.size());
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    CHECK(f.tensors[i].name == g.tensors[i].name);
    CHECK(f.tensors[i].as_int64 == g.tensors[i].as_int64);
    CHECK(f.tensors[i].tensor.shape() == g.tensors[i].tensor.shape());
    CHECK(f.tensors[i].tensor.to_vector() == g.tensors[i].tensor.to_vector());
  }

  // U8 tensors too.
  TempDir tmp;
  save_safetensors(tmp.file("u8.safetensors"), {{"packed", Tensor::from_vector({0, 7, 255}, {3}), false, true}});
  const std::string u8 = testing::read_file(tmp.file("u8.safetensors"));
  const SafetensorsFile h = load_safetensors(u8.data(), u8.size(), "u8");
  CHECK(h.find("packed")->as_uint8);
  CHECK(h.get("packed").to_vector() == std::vector<float>{0, 7, 255});

  auto error_for = [](const std::string& b) { return error_of([&] { load_safetensors(b.data(), b.size(), "m"); }); };
  CHECK(error_for("abc") ==
        "[load_safetensors] m: file is 3 bytes, shorter than the 8-byte header length that starts a safetensors file");
  CHECK(error_for(bytes.substr(0, bytes.size() - 1)) ==
        "[load_safetensors] m: tensor 'ramp' has data_offsets [56, 80], outside the data section of 79 bytes");
  CHECK(error_for(file_bytes("{\"a\" {}}", "")) == "[load_safetensors] m: header JSON at byte 5: expected ':', found '{'");
}
