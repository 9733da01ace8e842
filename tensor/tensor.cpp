// Tensor and Storage: allocation, views, copies and seeded creation (see tensor/tensor.h).
#include "tensor/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "tensor/allocator.h"
#include "tensor/bf16.h"
#include "tensor/device.h"
#include "tensor/random.h"

namespace qnn {

const char* device_name(Device device) { return device == Device::CPU ? "cpu" : "cuda"; }

const char* dtype_name(DType dtype) { return dtype == DType::f32 ? "float32" : "bfloat16"; }
size_t dtype_size(DType dtype) { return dtype == DType::f32 ? 4 : 2; }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    QNN_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Storage::Storage(size_t n, Device dev) : bytes(n), device(dev) {
  data = static_cast<char*>(dev == Device::CPU ? cpu_allocate(bytes) : cuda_allocate(bytes));
}

Storage::~Storage() {
  if (device == Device::CPU) cpu_free(data, bytes);
  else cuda_free(data, bytes);
}

Tensor::Tensor(Shape shape, Device device)
    : storage_(std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * sizeof(float), device)),
      numel_(shape_numel(shape)),
      shape_(std::move(shape)) {}

Tensor::Tensor(Shape shape, Device device, MemoryFormat format)
    : Tensor(std::move(shape), device, format, DType::f32) {}

Tensor::Tensor(Shape shape, Device device, MemoryFormat format, DType dtype) {
  QNN_CHECK(dtype == DType::f32 || device == Device::CUDA, "a bfloat16 tensor lives on the GPU, not the CPU (",
            shape_str(shape), ")");
  if (format == MemoryFormat::channels_last)
    QNN_CHECK(shape.size() == 4 && device == Device::CUDA, "a channels-last tensor is a 4-D image batch on the GPU, not ",
              device_name(device), " ", shape_str(shape));
  numel_ = shape_numel(shape);
  storage_ = std::make_shared<Storage>(static_cast<size_t>(numel_) * dtype_size(dtype), device);
  shape_ = std::move(shape);
  format_ = format;
  dtype_ = dtype;
}

Tensor Tensor::empty_like(const Tensor& t) { return Tensor(t.shape(), t.device(), t.format(), t.dtype()); }

void Tensor::refuse_float_access() const {
  throw Error(str("a ", dtype_name(dtype_), " ", shape_str(shape_), " tensor was passed where float32 is expected ",
                  "(this operation has no ", dtype_name(dtype_), " version; convert with to_dtype(DType::f32))"));
}

Tensor Tensor::zeros(Shape shape, Device device) { return full(std::move(shape), 0.0f, device); }

Tensor Tensor::full(Shape shape, float value, Device device) {
  Tensor t(std::move(shape), device);
  t.fill(value);
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, Shape shape) {
  Tensor t(std::move(shape));
  QNN_CHECK(static_cast<int64_t>(values.size()) == t.numel(), "got ", values.size(),
            " values for shape ", shape_str(t.shape()));
  std::memcpy(t.data(), values.data(), values.size() * sizeof(float));
  return t;
}

Tensor Tensor::uniform(Shape shape, float low, float high, uint64_t seed, uint64_t stream) {
  Tensor t(std::move(shape));
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = low + (high - low) * random_uniform(seed, stream, i);
  return t;
}

Tensor Tensor::normal(Shape shape, float mean, float stddev, uint64_t seed, uint64_t stream) {
  Tensor t(std::move(shape));
  float* p = t.data();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = mean + stddev * random_normal(seed, stream, i);
  return t;
}

namespace {
// Copies a (contiguous) tensor's elements to host memory, from whichever device holds them.
void device_copy_or_memcpy(float* host, const Tensor& t) {
  const Tensor f = t.to_dtype(DType::f32);
  if (f.device() == Device::CPU) std::memcpy(host, f.data(), f.numel() * sizeof(float));
  else device_copy(host, Device::CPU, f.data(), f.device(), f.numel() * sizeof(float));
}
}  // namespace

int64_t Tensor::size(int d) const {
  const int n = dim();
  QNN_CHECK(d >= -n && d < n, "dimension ", d, " out of range for shape ", shape_str(shape_));
  return shape_[d < 0 ? d + n : d];
}

Tensor Tensor::view(Shape shape) const {
  QNN_CHECK(shape_numel(shape) == numel_, "cannot view ", shape_str(shape_), " as ", shape_str(shape));
  QNN_CHECK(!is_channels_last() || shape_[1] == 1 || shape_[2] * shape_[3] == 1, "cannot view channels-last ",
            shape_str(shape_), " as ", shape_str(shape), ": its memory is not row-major (contiguous() first)");
  Tensor t = *this;
  t.shape_ = std::move(shape);
  t.format_ = MemoryFormat::contiguous;
  return t;
}

Tensor Tensor::slice(int64_t offset, Shape shape, MemoryFormat format) const {
  QNN_CHECK(!is_channels_last(), "cannot take a window of channels-last ", shape_str(shape_),
            " (contiguous() first)");
  QNN_CHECK(format == MemoryFormat::contiguous || (shape.size() == 4 && is_cuda()),
            "a channels-last window is 4-D and on the GPU, got ", device_name(device()), " ", shape_str(shape));
  const int64_t n = shape_numel(shape);
  QNN_CHECK(offset >= 0 && offset + n <= numel_, "window of ", n, " elements at ", offset,
            " exceeds tensor of ", numel_);
  Tensor t = *this;
  t.offset_ = offset_ + offset;
  t.numel_ = n;
  t.shape_ = std::move(shape);
  t.format_ = format;
  return t;
}

Tensor Tensor::narrow(int64_t begin, int64_t end) const {
  QNN_CHECK(dim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0], "rows [", begin, ", ",
            end, ") out of range for shape ", shape_str(shape_));
  Tensor rows = *this;  // an image's values are consecutive in either format
  rows.offset_ += begin * (numel_ / std::max<int64_t>(shape_[0], 1));
  rows.numel_ = (end - begin) * (numel_ / std::max<int64_t>(shape_[0], 1));
  rows.shape_[0] = end - begin;
  return rows;
}

Tensor Tensor::clone() const {
  Tensor t = empty_like(*this);
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(Device target) const {
  if (device() == target) return *this;
  const Tensor source = contiguous().to_dtype(DType::f32);
  Tensor t(shape_, target);
  t.copy_from(source);
  return t;
}

Tensor Tensor::contiguous() const {
  if (!is_channels_last()) return *this;
  Tensor t(shape_, Device::CUDA, MemoryFormat::contiguous, dtype_);
  device_to_contiguous(raw(), t.raw(), dtype_size(dtype_), shape_[0], shape_[1], shape_[2] * shape_[3]);
  return t;
}

Tensor Tensor::channels_last() const {
  if (is_channels_last()) return *this;
  QNN_CHECK(dim() == 4 && is_cuda(), "channels_last() takes a 4-D image batch on the GPU, got ",
            device_name(device()), " ", shape_str(shape_));
  Tensor t(shape_, Device::CUDA, MemoryFormat::channels_last, dtype_);
  device_to_channels_last(raw(), t.raw(), dtype_size(dtype_), shape_[0], shape_[1], shape_[2] * shape_[3]);
  return t;
}

Tensor Tensor::to_dtype(DType target) const {
  if (dtype_ == target) return *this;
  QNN_CHECK(is_cuda(), "to_dtype: a ", dtype_name(target), " tensor lives on the GPU, this ", shape_str(shape_),
            " tensor is on the CPU");
  Tensor t(shape_, Device::CUDA, format_, target);
  if (target == DType::bf16)
    device_float_to_bf16(static_cast<const float*>(raw()), static_cast<uint16_t*>(t.raw()), numel_);
  else
    device_bf16_to_float(static_cast<const uint16_t*>(raw()), static_cast<float*>(t.raw()), numel_);
  return t;
}

void Tensor::copy_from(const Tensor& source) {
  QNN_CHECK(source.numel() == numel_, "copying ", shape_str(source.shape()), " into ", shape_str(shape_));
  QNN_CHECK(source.shape() == shape_ || (!is_channels_last() && !source.is_channels_last()), "copying ",
            shape_str(source.shape()), " into ", shape_str(shape_), ": a channels-last copy needs equal shapes");
  if (numel_ == 0 || raw() == source.raw()) return;
  if (source.dtype() != dtype_)  // converted where the bf16 side is, on the GPU
    return copy_from(source.to(Device::CUDA).to_dtype(dtype_));
  if (source.format() != format_) {  // the values move to their places in this tensor's format
    const Tensor moved = is_channels_last() ? source.to(Device::CUDA).channels_last() : source.contiguous();
    return copy_from(moved);
  }
  if (device() == Device::CPU && source.device() == Device::CPU)
    std::memmove(raw(), source.raw(), nbytes());
  else
    device_copy(raw(), device(), source.raw(), source.device(), nbytes());
}

void Tensor::fill(float value) {
  if (is_bf16()) return device_fill_bf16(static_cast<uint16_t*>(raw()), numel_, bf16_bits(value));
  if (device() == Device::CUDA) return device_fill(data(), numel_, value);
  float* p = data();
  for (int64_t i = 0; i < numel_; ++i) p[i] = value;
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> out(static_cast<size_t>(numel_));
  if (numel_ > 0) device_copy_or_memcpy(out.data(), contiguous());
  return out;
}

float Tensor::item() const {
  QNN_CHECK(numel_ == 1, "item() needs one element, tensor has shape ", shape_str(shape_));
  float value = 0;
  device_copy_or_memcpy(&value, *this);
  return value;
}

}  // namespace qnn
