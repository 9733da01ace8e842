// The device-resident dataset, the epoch order as a tensor, and the CPU twins of the batch gather
// and the metric accumulation (see data/device_data.h). The CPU gather calls the Loader's own
// augment_image and normalize_image, so it builds the Loader's batches by construction.
#include "data/device_data.h"

#include <cmath>
#include <initializer_list>

#include "data/loader.h"
#include "tensor/allocator.h"
#include "tensor/device.h"
#include "tensor/softmax_xent.h"

namespace qnn {

DeviceDataset::DeviceDataset(const ImageDataset& dataset, Device device, const Normalization& norm)
    : device_(device),
      count_(dataset.count),
      channels_(dataset.channels),
      height_(dataset.height),
      width_(dataset.width) {
  QNN_CHECK(static_cast<int64_t>(dataset.labels.size()) == dataset.count &&
                static_cast<int64_t>(dataset.pixels.size()) == dataset.count * dataset.image_bytes(),
            "dataset of ", dataset.count, " images holds ", dataset.labels.size(), " labels and ",
            dataset.pixels.size(), " pixel bytes, expected ", dataset.count, " and ",
            dataset.count * dataset.image_bytes());
  QNN_CHECK(dataset.count <= (int64_t{1} << 24), "dataset of ", dataset.count,
            " images: at most 2^24 fit the float index and label tensors exactly");
  const size_t bytes = dataset.pixels.size();
  if (device == Device::CUDA && bytes > 0) {
    uint8_t* block = static_cast<uint8_t*>(cuda_allocate(bytes));
    device_pixels_ = std::shared_ptr<uint8_t>(block, [bytes](uint8_t* p) { cuda_free(p, bytes); });
    device_copy(block, Device::CUDA, dataset.pixels.data(), Device::CPU, bytes);
    pixels_ = block;
  } else if (device == Device::CPU) {
    pixels_ = dataset.pixels.data();
  }
  labels_ = label_tensor(dataset.labels, device);
  normalization_table(norm);
}

const Tensor& DeviceDataset::normalization_table(const Normalization& norm) const {
  QNN_CHECK(norm.channels() == channels_, "normalisation has ", norm.channels(),
            " channels, the dataset's images have ", channels_);
  if (!table_.defined() || norm.lookup != table_values_) {
    table_values_ = norm.lookup;
    table_ = Tensor::from_vector(table_values_, {static_cast<int64_t>(table_values_.size())}).to(device_);
  }
  return table_;
}

Tensor epoch_order(int64_t count, uint64_t seed, int64_t epoch, bool shuffle, Device device) {
  QNN_CHECK(count >= 0 && count <= (int64_t{1} << 24), "cannot order ", count,
            " images as floats: expected 0..2^24");
  QNN_CHECK(epoch >= 0 && epoch <= int64_t{0xFFFFFFFF}, "epoch ", epoch, " out of range: expected 0..2^32-1");
  std::vector<float> values(static_cast<size_t>(count));
  if (shuffle) {
    const std::vector<int64_t> order = shuffled_order(count, seed, epoch);
    for (int64_t i = 0; i < count; ++i) values[i] = static_cast<float>(order[i]);
  } else {
    for (int64_t i = 0; i < count; ++i) values[i] = static_cast<float>(i);
  }
  return Tensor::from_vector(values, {count}).to(device);
}

void gather_batch(const DeviceDataset& data, const Tensor& order, const Tensor& clock,
                  int64_t batch_size, bool augment, uint64_t seed, int padding,
                  const Normalization& norm, Tensor& images, Tensor& labels) {
  const int c = data.channels(), h = data.height(), w = data.width();
  QNN_CHECK(images.dim() == 4 && images.size(1) == c && images.size(2) == h && images.size(3) == w,
            "images ", shape_str(images.shape()), " expected [rows, ", c, ", ", h, ", ", w, "]");
  const int64_t rows = images.size(0);
  QNN_CHECK(batch_size >= 1 && rows <= batch_size, "batch of ", rows, " rows for batch size ", batch_size);
  QNN_CHECK(labels.numel() == rows, "labels ", shape_str(labels.shape()), " for ", rows, " rows");
  QNN_CHECK(order.dim() == 1 && clock.numel() >= 2, "order ", shape_str(order.shape()), " and clock ",
            shape_str(clock.shape()), ": expected [count] and at least [2]");
  QNN_CHECK(padding >= 0, "crop padding is ", padding, ", expected >= 0");
  for (const Tensor* t : std::initializer_list<const Tensor*>{&order, &clock, &images, &labels})
    QNN_CHECK(t->device() == data.device(), "dataset on ", device_name(data.device()), " but a tensor ",
              shape_str(t->shape()), " on ", device_name(t->device()));
  data.normalization_table(norm);  // checks the channels; uploads a new table before any capture
  QNN_ON_CUDA(images, cuda::gather_batch(data, order, clock, batch_size, augment, seed, padding, norm,
                                         images, labels));
  const int64_t number = static_cast<int64_t>(clock.data()[0]);
  const int64_t epoch = static_cast<int64_t>(clock.data()[1]);
  std::vector<int64_t> index(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t position = number * batch_size + r;
    QNN_CHECK(position >= 0 && position < order.numel(), "batch ", number, " row ", r, ": position ",
              position, " outside the epoch order of ", order.numel());
    const float i = order.data()[position];
    QNN_CHECK(i >= 0 && i < data.count() && i == std::floor(i), "order[", position, "] = ", i,
              " is no index into a dataset of ", data.count());
    index[r] = static_cast<int64_t>(i);
  }
  // Every check is done: the loop below cannot throw, so it may run on threads.
#pragma omp parallel for schedule(static) if (rows >= 16)
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* image = data.pixels() + index[r] * data.image_bytes();
    float* out = images.data() + r * data.image_bytes();
    if (augment)
      augment_image(image, c, h, w, draw_augmentation(seed, epoch, index[r], padding), padding, norm, out);
    else
      normalize_image(image, c, h, w, norm, out);
    labels.data()[r] = data.labels().data()[index[r]];
  }
}

void accumulate_metrics(const Tensor& logits, const Tensor& labels, const Tensor& loss, Tensor& metrics) {
  check_cross_entropy_inputs("accumulate_metrics", logits, labels);
  QNN_CHECK(loss.numel() == 1 && metrics.numel() == 4, "expected loss [1] and metrics [4], got ",
            shape_str(loss.shape()), " and ", shape_str(metrics.shape()));
  QNN_CHECK(loss.device() == logits.device() && metrics.device() == logits.device(), "logits on ",
            device_name(logits.device()), ", loss on ", device_name(loss.device()), ", metrics on ",
            device_name(metrics.device()));
  QNN_ON_CUDA(logits, cuda::accumulate_metrics(logits, labels, loss, metrics));
  const int64_t n = logits.size(0), classes = logits.size(1);
  int64_t correct = 0, top5 = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.data() + i * classes;
    const int64_t label = label_class(labels.data()[i], classes);
    correct += label == first_maximum(z, classes);
    top5 += rank_of(z, classes, label) < 5;
  }
  float* m = metrics.data();
  m[0] = std::fma(loss.data()[0], static_cast<float>(n), m[0]);
  m[1] += static_cast<float>(correct);
  m[2] += static_cast<float>(n);
  m[3] += static_cast<float>(top5);
}

}  // namespace qnn
