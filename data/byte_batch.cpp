// Byte batches normalised on their device: the upload buffer and the CPU twin of the
// normalisation kernel (see data/byte_batch.h).
#include "data/byte_batch.h"

#include "tensor/allocator.h"
#include "tensor/check.h"
#include "tensor/device.h"

namespace qnn {

const uint8_t* DeviceBytes::upload(const std::vector<uint8_t>& bytes) {
  if (device_ == Device::CPU) return bytes.data();
  if (bytes.size() > capacity_) {
    const size_t size = bytes.size();
    uint8_t* block = static_cast<uint8_t*>(cuda_allocate(size));
    block_ = std::shared_ptr<uint8_t>(block, [size](uint8_t* p) { cuda_free(p, size); });
    capacity_ = size;
  }
  device_copy(block_.get(), device_, bytes.data(), Device::CPU, bytes.size());
  return block_.get();
}

Tensor normalization_table_on(const Normalization& norm, Device device) {
  return Tensor::from_vector(norm.lookup, {static_cast<int64_t>(norm.lookup.size())}).to(device);
}

void normalize_bytes(const uint8_t* bytes, const Tensor& table, Tensor& images) {
  QNN_CHECK(images.dim() == 4 && !images.is_channels_last(), "normalize_bytes: images ", shape_str(images.shape()),
            images.is_channels_last() ? " channels-last" : "", ", expected [rows, C, H, W] row-major");
  const int64_t channels = images.size(1), plane = images.size(2) * images.size(3);
  QNN_CHECK(table.numel() == channels * 256, "normalize_bytes: a table of ", table.numel(), " values for ",
            channels, " channels, expected ", channels * 256);
  QNN_CHECK(table.device() == images.device(), "normalize_bytes: table on ", device_name(table.device()),
            ", images on ", device_name(images.device()));
  QNN_ON_CUDA(images, cuda::normalize_bytes(bytes, table, images));
  const float* lookup = table.data();
  float* out = images.data();
  const int64_t total = images.numel();
#pragma omp parallel for schedule(static) if (total >= (1 << 16))
  for (int64_t t = 0; t < total; ++t) out[t] = lookup[((t / plane) % channels) * 256 + bytes[t]];
}

}  // namespace qnn
