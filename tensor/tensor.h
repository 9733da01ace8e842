// Tensor: an n-dimensional array of float32 in reference-counted storage.
//
// This is the bottom layer of qnn: it knows nothing of graphs, layers or training. A Tensor is
// a shape plus a window (element offset) into a shared Storage; copying a Tensor shares the
// storage, `clone()` copies the data. All tensors are contiguous and row-major (NCHW for
// images), which keeps every kernel a plain loop over memory. Views (`view`, `slice`) share
// storage, which is how each model parameter becomes a window into one flat buffer.
// Only float32 exists: it is what training runs in, and gradient checks use small inputs.
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

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[128, 3, 32, 32]"

// A block of memory on one device, from the caching allocator (tensor/allocator.h): 64-byte
// aligned on the CPU (one cache line, one AVX-512 vector), reused across training steps.
struct Storage {
  Storage(int64_t numel, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data = nullptr;
  int64_t numel = 0;
  Device device = Device::CPU;
};

class Tensor {
 public:
  Tensor() = default;  // undefined: holds no storage
  explicit Tensor(Shape shape, Device device = Device::CPU);  // uninitialised contents

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

  float* data() { return storage_->data + offset_; }
  const float* data() const { return storage_->data + offset_; }

  // Same storage, new shape (element count must match).
  Tensor view(Shape shape) const;
  // A window of `shape` starting `offset` elements into this tensor's data.
  Tensor slice(int64_t offset, Shape shape) const;
  // Rows [begin, end) along the first dimension.
  Tensor narrow(int64_t begin, int64_t end) const;
  bool shares_storage(const Tensor& other) const { return storage_ == other.storage_; }

  Tensor clone() const;                  // a copy on the same device
  Tensor to(Device device) const;        // this tensor itself if already there, else a copy
  void copy_from(const Tensor& source);  // element counts must match; any devices
  bool is_cuda() const { return device() == Device::CUDA; }
  void fill(float value);
  void zero() { fill(0.0f); }
  std::vector<float> to_vector() const;  // on the host, from any device (waits for the GPU)
  float item() const;  // the value of a one-element tensor (waits for the GPU)

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;
  int64_t numel_ = 0;
  Shape shape_;
};

}  // namespace qnn
