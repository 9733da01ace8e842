// Tensor: an n-dimensional array of float32 (or, on the GPU, bfloat16) in reference-counted storage.
//
// This is the bottom layer of qnn: it knows nothing of graphs, layers or training. A Tensor is
// a shape plus a window (element offset) into a shared Storage; copying a Tensor shares the
// storage, `clone()` copies the data. All tensors are contiguous and row-major (NCHW for
// images), which keeps every kernel a plain loop over memory. Views (`view`, `slice`) share
// storage, which is how each model parameter becomes a window into one flat buffer.
// The element type is float32: it is what training runs in, and gradient checks use small
// inputs. One exception: on the GPU a tensor may hold bfloat16 (DType::bf16, 16 bits per element,
// the upper half of a float; tensor/bf16.h), the activations of a `--precision bf16` step
// (docs/bf16.md). data() is the float pointer and refuses a bf16 tensor; raw() is either.
// One exception to row-major order: on the GPU an image batch may be stored channels-last
// (MemoryFormat::channels_last, NHWC in memory) while its shape stays [N, C, H, W], which is
// the layout cuDNN's fastest convolutions read and write (docs/channels-last.md). Ops keep
// their inputs' format; conversions are explicit (contiguous(), channels_last()).
// A tensor lives on the CPU or on the GPU (Device::CUDA); data() is then a device pointer that
// only CUDA kernels may touch, and every op sends CUDA tensors to its CUDA twin (op.cu beside
// op.cpp). Moving data between devices is explicit: to(), copy_from(), to_vector(), item().
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/check.h"

namespace qnn {

using Shape = std::vector<int64_t>;

enum class Device { CPU, CUDA };
const char* device_name(Device device);

// How a 4-D [N, C, H, W] tensor lies in memory: row-major (NCHW), or channels-last (NHWC:
// element (n, c, h, w) at ((n H + h) W + w) C + c), which only CUDA tensors may use.
enum class MemoryFormat { contiguous, channels_last };

// The element type: float32, or bfloat16 (CUDA tensors only).
enum class DType { f32, bf16 };
const char* dtype_name(DType dtype);  // "float32", "bfloat16"
size_t dtype_size(DType dtype);       // bytes per element

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[128, 3, 32, 32]"

// A block of memory on one device, from the caching allocator (tensor/allocator.h): 64-byte
// aligned on the CPU (one cache line, one AVX-512 vector), reused across training steps.
struct Storage {
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  char* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: holds no storage
  explicit Tensor(Shape shape, Device device = Device::CPU);  // uninitialised contents
  Tensor(Shape shape, Device device, MemoryFormat format);    // channels_last: 4-D, CUDA only
  Tensor(Shape shape, Device device, MemoryFormat format, DType dtype);  // bf16: CUDA only
  static Tensor empty_like(const Tensor& t);  // t's shape, device, format and dtype, uninitialised

  static Tensor zeros(Shape shape, Device device = Device::CPU);
  static Tensor full(Shape shape, float value, Device device = Device::CPU);
  static Tensor from_vector(const std::vector<float>& values, Shape shape);
  // Seeded random tensors from the counter-based generator (tensor/random.h): element i of
  // stream s under seed k is the same on every machine and in every build.
  static Tensor uniform(Shape shape, float low, float high, uint64_t seed, uint64_t stream = 0);
  static Tensor normal(Shape shape, float mean, float stddev, uint64_t seed, uint64_t stream = 0);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int dim() const { return static_cast<int>(shape_.size()); }
  int64_t size(int d) const;  // negative d counts from the end
  int64_t numel() const { return numel_; }
  Device device() const { return storage_ ? storage_->device : Device::CPU; }
  MemoryFormat format() const { return format_; }
  bool is_channels_last() const { return format_ == MemoryFormat::channels_last; }
  DType dtype() const { return dtype_; }
  bool is_bf16() const { return dtype_ == DType::bf16; }

  // The elements of a float32 tensor (an error for a bf16 one, which only CUDA kernels that
  // take bf16 read, through raw()).
  float* data() {
    if (dtype_ != DType::f32) refuse_float_access();
    return reinterpret_cast<float*>(raw());
  }
  const float* data() const { return const_cast<Tensor*>(this)->data(); }
  // The first element's bytes, whatever the element type.
  void* raw() { return storage_->data + offset_ * static_cast<int64_t>(dtype_size(dtype_)); }
  const void* raw() const { return const_cast<Tensor*>(this)->raw(); }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_size(dtype_); }

  // Same storage, new shape (element count must match). A channels-last tensor can be viewed
  // only where its memory is also row-major (C = 1 or H = W = 1), and the view is contiguous.
  Tensor view(Shape shape) const;
  // A window of `shape` starting `offset` elements into this tensor's data (contiguous only), read
  // in `format` (channels_last: a 4-D window on the GPU whose memory is NHWC).
  Tensor slice(int64_t offset, Shape shape, MemoryFormat format = MemoryFormat::contiguous) const;
  // Rows [begin, end) along the first dimension (images, in either format).
  Tensor narrow(int64_t begin, int64_t end) const;
  bool shares_storage(const Tensor& other) const { return storage_ == other.storage_; }

  Tensor clone() const;                  // a copy on the same device, in the same format
  Tensor to(Device device) const;        // this tensor itself if already there, else a copy
                                         // (contiguous float32 on the CPU)
  // This tensor if already in that format, else a converted copy (a kernel on the GPU).
  Tensor contiguous() const;
  Tensor channels_last() const;  // 4-D CUDA tensors only
  // This tensor if it already holds that type, else a converted copy in the same format (float
  // to bf16 rounds to nearest, ties to even, as tensor/bf16.h; bf16 to float is exact).
  Tensor to_dtype(DType dtype) const;
  // Element counts must match; any devices. Between formats the values move to their places
  // (shapes must then match); between types they are converted as by to_dtype.
  void copy_from(const Tensor& source);
  bool is_cuda() const { return device() == Device::CUDA; }
  void fill(float value);
  void zero() { fill(0.0f); }
  // On the host in row-major order as float, from any device, format and type.
  std::vector<float> to_vector() const;
  float item() const;  // the value of a one-element tensor (waits for the GPU)

 private:
  [[noreturn]] void refuse_float_access() const;

  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;
  int64_t numel_ = 0;
  Shape shape_;
  MemoryFormat format_ = MemoryFormat::contiguous;
  DType dtype_ = DType::f32;
};

}  // namespace qnn
