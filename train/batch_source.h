// Where a training or evaluation step gets its batch: the seam that lets one epoch loop
// (train/trainer.h) run on the CPU or on the GPU without knowing which.
//
// A step takes its batch in two halves. prepare(number), on the host before the step, makes
// batch `number` of the epoch the next one; produce(), part of the step itself, puts the
// batch's images and labels in tensors on the training device. On the GPU the step may be a
// replayed CUDA graph, in which produce() ran only once, at capture: so everything that changes
// from batch to batch must reach produce()'s kernels through device memory that prepare()
// writes. Two sources:
//   LoaderSource: the threaded CPU Loader (data/loader.h): decoded and augmented on loader
//     threads while the previous step trains; produce() hands over the prepared host tensors
//     (on the GPU: an image folder's batches are copied there as bytes and normalised by a
//     kernel, data/byte_batch.h; such a step is not captured in a graph).
//   ResidentSource: the whole uint8 dataset uploaded to the device once (data/device_data.h);
//     prepare() writes the batch number and epoch into a two-float "clock" tensor, and
//     produce() gathers, crops, flips and normalises the batch in one kernel that reads it.
//   FixedSource: one batch, every step (benchmarks and tests of the step itself).
// Both give the same batches, bit for bit, for the same seed (tests/data/test_device_data.cpp).
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>

#include "data/byte_batch.h"
#include "data/device_data.h"
#include "data/loader.h"
#include "tensor/device.h"
#include "tensor/softmax_xent.h"

namespace qnn {

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual int64_t batches_per_epoch() const = 0;
  virtual int64_t batch_size() const = 0;
  virtual int64_t rows(int64_t number) const = 0;  // images in batch `number` (the last may be short)
  virtual void start_epoch(int64_t epoch) = 0;
  // From the next start_epoch on, prepare() is asked only for the batch numbers first,
  // first + stride, ... (one rank's share when K ranks train together): a source that builds
  // batches ahead builds only those. Sources with random access ignore it.
  virtual void share_batches(int64_t /*first*/, int64_t /*stride*/) {}
  virtual void prepare(int64_t number) = 0;          // host side, before the step
  virtual void produce(Tensor& images, Tensor& labels) = 0;  // device side, inside the step
  // Whether produce() may be captured in a CUDA graph and replayed (its inputs reach it through
  // device memory that prepare() writes).
  virtual bool capturable() const { return true; }
};

class LoaderSource : public BatchSource {
 public:
  // CIFAR-style bytes in memory, augmented as `config` says.
  LoaderSource(const ImageDataset& dataset, LoaderConfig config)
      : loader_(dataset, config), count_(dataset.count), device_(Device::CPU),
        shape_{dataset.channels, dataset.height, dataset.width}, upload_(Device::CPU) {}
  // Any sample source (an image folder, data/image_folder_source.h), which must outlive this;
  // on a GPU each prepared batch is copied to `device` inside the step: as bytes, normalised
  // there (data/byte_batch.h), when the source has a byte form.
  LoaderSource(const SampleSource& source, LoaderConfig config, Device device)
      : loader_(source, with_bytes(config, source, device)), count_(source.count()), device_(device),
        shape_(source.shape()), upload_(device) {
    if (loader_.config().bytes) table_ = normalization_table_on(*source.byte_normalization(), device);
  }
  int64_t batches_per_epoch() const override { return loader_.batches_per_epoch(); }
  int64_t batch_size() const override { return loader_.config().batch_size; }
  int64_t rows(int64_t number) const override {
    return std::min(batch_size(), count_ - number * batch_size());
  }
  void start_epoch(int64_t epoch) override { loader_.start_epoch(epoch, first_, stride_); }
  void share_batches(int64_t first, int64_t stride) override { first_ = first, stride_ = stride; }
  void prepare(int64_t number) override {
    QNN_CHECK(loader_.next(batch_) && batch_.number == number, "batch ", number, " requested out of order");
  }
  void produce(Tensor& images, Tensor& labels) override {
    if (loader_.config().bytes) {
      const int64_t rows = static_cast<int64_t>(batch_.labels.size());
      images = Tensor({rows, shape_.channels, shape_.height, shape_.width}, device_);
      normalize_bytes(upload_.upload(batch_.bytes), table_, images);
    } else {
      images = device_ == Device::CPU ? batch_.images : batch_.images.to(device_);
    }
    labels = label_tensor(batch_.labels, device_);
  }
  // A captured CUDA graph would replay the first batch's copy: batches from the host change.
  bool capturable() const override { return device_ == Device::CPU; }

 private:
  static LoaderConfig with_bytes(LoaderConfig config, const SampleSource& source, Device device) {
    config.bytes = device != Device::CPU && source.byte_normalization() != nullptr;
    return config;
  }

  Loader loader_;
  int64_t count_;
  Device device_;
  SampleShape shape_;
  DeviceBytes upload_;
  Tensor table_;  // the source's normalisation table on device_, for byte batches
  Batch batch_;
  int64_t first_ = 0, stride_ = 1;  // the share of the batches this source delivers
};

class ResidentSource : public BatchSource {
 public:
  ResidentSource(const ImageDataset& dataset, const LoaderConfig& config, Device device)
      : data_(dataset, device), config_(config), clock_(Tensor::zeros({2}, device)) {}
  int64_t batches_per_epoch() const override {
    const int64_t b = config_.batch_size, n = data_.count();
    return config_.drop_last ? n / b : (n + b - 1) / b;
  }
  int64_t batch_size() const override { return config_.batch_size; }
  int64_t rows(int64_t number) const override {
    return std::min(config_.batch_size, data_.count() - number * config_.batch_size);
  }
  // The new order is written into the same device buffer every epoch: a captured step reads it
  // through the address it saw at capture, so a fresh tensor would leave the graph reading the
  // first epoch's order (or a block the allocator has since handed to someone else).
  void start_epoch(int64_t epoch) override {
    epoch_ = epoch;
    const Tensor order = epoch_order(data_.count(), config_.seed, epoch, config_.shuffle, Device::CPU);
    if (!order_.defined()) order_ = Tensor(order.shape(), data_.device());
    order_.copy_from(order);
  }
  void prepare(int64_t number) override {
    rows_ = rows(number);
    clock_.slice(0, {1}).fill(float(number));
    clock_.slice(1, {1}).fill(float(epoch_));
  }
  void produce(Tensor& images, Tensor& labels) override {
    const bool on_gpu = data_.device() == Device::CUDA;  // the batch in the layout and type the model takes
    images = Tensor({rows_, data_.channels(), data_.height(), data_.width()}, data_.device(),
                    on_gpu && backend_options().channels_last ? MemoryFormat::channels_last : MemoryFormat::contiguous,
                    on_gpu && backend_options().bf16 ? DType::bf16 : DType::f32);
    labels = Tensor({rows_}, data_.device());
    gather_batch(data_, order_, clock_, config_.batch_size, config_.augment, config_.seed, config_.padding,
                 config_.normalization, images, labels);
  }

 private:
  DeviceDataset data_;
  LoaderConfig config_;
  Tensor clock_, order_;
  int64_t epoch_ = 0, rows_ = 0;
};

class FixedSource : public BatchSource {
 public:
  FixedSource(Tensor images, Tensor labels) : images_(std::move(images)), labels_(std::move(labels)) {}
  int64_t batches_per_epoch() const override { return INT64_MAX / 2; }
  int64_t batch_size() const override { return images_.size(0); }
  int64_t rows(int64_t) const override { return images_.size(0); }
  void start_epoch(int64_t) override {}
  void prepare(int64_t) override {}
  void produce(Tensor& images, Tensor& labels) override { images = images_, labels = labels_; }

 private:
  Tensor images_, labels_;
};

// The source a device trains from: resident data on the GPU, loader threads on the CPU.
inline std::unique_ptr<BatchSource> make_batch_source(const ImageDataset& dataset, const LoaderConfig& config,
                                                      Device device) {
  if (device == Device::CUDA) return std::make_unique<ResidentSource>(dataset, config, device);
  return std::make_unique<LoaderSource>(dataset, config);
}

}  // namespace qnn
