// Byte batches normalised on their device. A GPU run that reads an image folder (data/loader.h
// with LoaderConfig::bytes) copies each batch to the GPU as the transformed uint8 pixels, a
// quarter of the float32 batch, and turns them into the normalised float batch there:
//   images[r, c, y, x] = table[c * 256 + bytes[r, c, y, x]]
// with the Normalization's lookup table (data/augment.h), the very table the CPU loader reads,
// so the GPU's batch equals the CPU's bit for bit (a lookup, no arithmetic).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "data/augment.h"
#include "tensor/tensor.h"

namespace qnn {

// A byte buffer on a device, reused from batch to batch and grown to the largest one. On the CPU
// upload() hands back the host bytes themselves.
class DeviceBytes {
 public:
  explicit DeviceBytes(Device device) : device_(device) {}
  Device device() const { return device_; }
  // Copies `bytes` to the device and returns where they are there (valid until the next call).
  const uint8_t* upload(const std::vector<uint8_t>& bytes);

 private:
  Device device_;
  std::shared_ptr<uint8_t> block_;  // device memory from cuda_allocate
  size_t capacity_ = 0;
};

// The normalisation table of `norm` (channels x 256 floats) as a tensor on `device`.
Tensor normalization_table_on(const Normalization& norm, Device device);

// images [rows, C, H, W] = table[c * 256 + bytes[...]], with `bytes` (images.numel() bytes) and
// `table` (C x 256 floats) on images' device.
void normalize_bytes(const uint8_t* bytes, const Tensor& table, Tensor& images);

namespace cuda {  // data/byte_batch.cu
void normalize_bytes(const uint8_t* bytes, const Tensor& table, Tensor& images);
}  // namespace cuda

}  // namespace qnn
