// The training data on the compute device, and the per-step batch gather, so a GPU training step
// needs nothing from the host (and can be captured as a CUDA graph).
//
// DeviceDataset uploads a byte dataset (data/cifar.h) once: on the GPU the uint8 CHW images stay
// bytes (CIFAR-10's training set is 150 MB that way) and the labels become a float tensor. Each
// step then gathers its batch on the device: row r of batch b of an epoch is dataset image
// order[b * batch_size + r], cropped, flipped (data/augment.h's draw_augmentation, keyed by
// seed, epoch and dataset index) and normalised through the same lookup table as the CPU
// loader, so the batch is bit for bit the one the Loader (data/loader.h) builds for the same
// seed, epoch and batch number. The batch number and the epoch are read from a small device
// tensor (`clock`) that the host writes before each step: a captured graph sees each step's
// values. Loss and accuracy accumulate on the device too (accumulate_metrics) and are read once
// per log interval.
//
// On the CPU the same functions run as plain loops over the host bytes (the CPU twin, used by
// the tests to check the GPU against the Loader).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "data/augment.h"
#include "data/cifar.h"
#include "tensor/tensor.h"

namespace qnn {

class DeviceDataset {
 public:
  // On CUDA: copies the images and labels to the GPU (once, here). On the CPU: refers to
  // `dataset`'s bytes, so `dataset` must then outlive this object and stay unchanged. The
  // normalisation table for `norm` is uploaded too (see normalization_table).
  DeviceDataset(const ImageDataset& dataset, Device device,
                const Normalization& norm = cifar10_normalization());

  Device device() const { return device_; }
  int64_t count() const { return count_; }
  int channels() const { return channels_; }
  int height() const { return height_; }
  int width() const { return width_; }
  int64_t image_bytes() const { return int64_t(channels_) * height_ * width_; }
  // count x C x H x W bytes, image after image: device memory on CUDA, the host bytes on the CPU.
  const uint8_t* pixels() const { return pixels_; }
  const Tensor& labels() const { return labels_; }  // float [count], on device()

  // The lookup table of `norm` (channels x 256 floats, Normalization::lookup) on device(). It is
  // uploaded again only when `norm`'s table differs from the last one asked for, which needs a
  // copy from the host: ask for each normalisation once before capturing a graph. Not
  // thread-safe.
  const Tensor& normalization_table(const Normalization& norm) const;

 private:
  Device device_;
  int64_t count_ = 0;
  int channels_ = 0, height_ = 0, width_ = 0;
  std::shared_ptr<uint8_t> device_pixels_;  // GPU bytes from cuda_allocate, freed by cuda_free
  const uint8_t* pixels_ = nullptr;
  Tensor labels_;
  mutable std::vector<float> table_values_;  // host copy of the uploaded table
  mutable Tensor table_;
};

// The order in which epoch `epoch` visits `count` images (shuffled_order in data/loader.h, or
// 0, 1, ... without shuffle) as a float tensor [count] of dataset indices on `device` (exact:
// count must be <= 2^24).
Tensor epoch_order(int64_t count, uint64_t seed, int64_t epoch, bool shuffle, Device device);

// Gathers batch number clock[0] of epoch clock[1] into images [rows, C, H, W] and labels [rows]
// (rows <= batch_size; both allocated by the caller on data.device()): row r is dataset image
// order[clock[0] * batch_size + r], augmented (crop with `padding` and flip, keyed by `seed`,
// the epoch and the dataset index) when `augment`, and normalised through `norm`. `order` is
// epoch_order()'s tensor and `clock` a float tensor of at least 2 elements, both on
// data.device(); the caller guarantees the positions exist. The CPU twin checks positions and
// indices; the GPU kernel cannot without a round trip to the host and writes NaN pixels and
// labels for a position or index out of range.
void gather_batch(const DeviceDataset& data, const Tensor& order, const Tensor& clock,
                  int64_t batch_size, bool augment, uint64_t seed, int padding,
                  const Normalization& norm, Tensor& images, Tensor& labels);

// Adds one step's figures to metrics, a float tensor [4] on the logits' device:
//   metrics[0] += loss[0] * N     (one rounding: a fused multiply-add on CPU and GPU alike)
//   metrics[1] += rows whose first maximum logit is at the label's class
//   metrics[2] += N
//   metrics[3] += rows whose label is among the 5 top classes: fewer than 5 classes rank above
//                 it, a class ranking above when its logit is larger, or equal at a lower index
//                 (so top-1 is metrics[1]'s rule)
// for logits [N, K], labels [N] (float class indices) and loss [1]. Counts are exact while
// metrics[1..3] stay below 2^24: read and reset them at least that often.
void accumulate_metrics(const Tensor& logits, const Tensor& labels, const Tensor& loss, Tensor& metrics);

// The ranking rules of accumulate_metrics, shared by its CPU and CUDA twins: a label's class
// (-1 for a value that names none, NaN included: converting it would be undefined), the index of
// the first maximum of z[0 .. classes), and how many classes rank above class `label` (for a
// label that names no class, more than any top-k counts: INT64_MAX).
QNN_HOST_DEVICE int64_t label_class(float label, int64_t classes) {
  return label >= 0.0f && label < float(classes) ? int64_t(label) : -1;
}
QNN_HOST_DEVICE int64_t first_maximum(const float* z, int64_t classes) {
  int64_t best = 0;
  for (int64_t k = 1; k < classes; ++k)
    if (z[k] > z[best]) best = k;
  return best;
}
QNN_HOST_DEVICE int64_t rank_of(const float* z, int64_t classes, int64_t label) {
  if (label < 0 || label >= classes) return INT64_MAX;
  int64_t above = 0;
  for (int64_t k = 0; k < classes; ++k) above += z[k] > z[label] || (z[k] == z[label] && k < label);
  return above;
}

namespace cuda {  // data/device_data.cu; called by the functions above for CUDA tensors
void gather_batch(const DeviceDataset& data, const Tensor& order, const Tensor& clock,
                  int64_t batch_size, bool augment, uint64_t seed, int padding,
                  const Normalization& norm, Tensor& images, Tensor& labels);
void accumulate_metrics(const Tensor& logits, const Tensor& labels, const Tensor& loss, Tensor& metrics);
}  // namespace cuda

}  // namespace qnn
