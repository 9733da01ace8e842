// CUDA batch gather and metric accumulation: the twins of data/device_data.cpp (see
// data/device_data.h).
//   gather: one thread per output pixel. It reads the batch number and the epoch from the clock,
//     its image's dataset index from the epoch order, draws that image's crop and flip with the
//     very draw_augmentation() the CPU calls, and looks its byte up in the normalisation table
//     the CPU uses. No arithmetic on pixel values happens here (a table lookup), so the batch
//     equals the CPU Loader's bit for bit. Pixel (y, x) of an augmented image shows source pixel
//     (y + crop_y - padding, x' + crop_x - padding) with x' = W - 1 - x when flipped, else x;
//     outside the image it is byte 0's value, exactly as augment_image() fills its padding.
//     A channels-last batch (tensor/tensor.h) gets the same values, written in NHWC order. A bf16
//     batch (DType::bf16, docs/bf16.md) gets bf16_bits of the same float values (the kernel is
//     templated on the stored type), so it equals the float batch rounded on the GPU, bit for bit.
//     Labels stay float.
//   metrics: one block; each thread counts the correct rows i, i + 256, ..., the counts are
//     summed as integers (exact in any order) and thread 0 updates the three figures with the CPU
//     twin's float operations.
#include "data/device_data.h"
#include "tensor/bf16.h"
#include "tensor/cuda_runtime.h"

namespace qnn::cuda {

namespace {

struct GatherShape {
  int64_t rows, count, order_size, batch_size;
  int channels, height, width, padding;
  bool augment, channels_last;
  uint64_t seed;
};

template <class T>
__global__ void gather_kernel(const uint8_t* pixels, const float* dataset_labels, const float* table,
                              const float* order, const float* clock, GatherShape s, T* images,
                              float* labels) {
  const int64_t plane = int64_t(s.height) * s.width, image = s.channels * plane;
  const int64_t total = s.rows * image;
  const int64_t number = int64_t(clock[0]), epoch = int64_t(clock[1]);
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = t / image, within = t % image;
    const int64_t pixel = s.channels_last ? within / s.channels : within % plane;
    const int c = int(s.channels_last ? within % s.channels : within / plane);
    const int y = int(pixel / s.width), x = int(pixel % s.width);
    const int64_t position = number * s.batch_size + r;
    int64_t index = -1;
    if (position >= 0 && position < s.order_size) {
      const float i = order[position];
      if (i >= 0.0f && i < float(s.count)) index = int64_t(i);
    }
    if (index < 0) {  // the caller broke its promise: make it visible instead of reading wild memory
      images[t] = from_float<T>(NAN);
      if (within == 0) labels[r] = NAN;
      continue;
    }
    const float* lookup = table + 256 * c;
    const uint8_t* source = pixels + index * image + c * plane;
    float value;
    if (!s.augment) {
      value = lookup[source[int64_t(y) * s.width + x]];
    } else {
      const AugmentDraw draw = draw_augmentation(s.seed, epoch, index, s.padding);
      const int sy = y + draw.crop_y - s.padding;
      const int sx = (draw.flip ? s.width - 1 - x : x) + draw.crop_x - s.padding;
      const bool inside = sy >= 0 && sy < s.height && sx >= 0 && sx < s.width;
      value = inside ? lookup[source[int64_t(sy) * s.width + sx]] : lookup[0];
    }
    images[t] = from_float<T>(value);
    if (within == 0) labels[r] = dataset_labels[index];
  }
}

constexpr int kMetricThreads = 256;

__global__ void metrics_kernel(const float* logits, const float* labels, const float* loss, int64_t n,
                               int64_t classes, float* metrics) {
  __shared__ int64_t shared[2][kMetricThreads];
  int64_t correct = 0, top5 = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float* z = logits + i * classes;
    const int64_t label = label_class(labels[i], classes);
    correct += label == first_maximum(z, classes);
    top5 += rank_of(z, classes, label) < 5;
  }
  shared[0][threadIdx.x] = correct;
  shared[1][threadIdx.x] = top5;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      shared[0][threadIdx.x] += shared[0][threadIdx.x + half];
      shared[1][threadIdx.x] += shared[1][threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    metrics[0] = __fmaf_rn(loss[0], float(n), metrics[0]);
    metrics[1] = __fadd_rn(metrics[1], float(shared[0][0]));
    metrics[2] = __fadd_rn(metrics[2], float(n));
    metrics[3] = __fadd_rn(metrics[3], float(shared[1][0]));
  }
}

template <class T>
void gather(const DeviceDataset& data, const Tensor& table, const Tensor& order, const Tensor& clock,
            const GatherShape& s, Tensor& images, Tensor& labels) {
  gather_kernel<<<blocks_for(images.numel()), kThreads, 0, stream()>>>(
      data.pixels(), data.labels().data(), table.data(), order.data(), clock.data(), s, static_cast<T*>(images.raw()),
      labels.data());
}

}  // namespace

void gather_batch(const DeviceDataset& data, const Tensor& order, const Tensor& clock,
                  int64_t batch_size, bool augment, uint64_t seed, int padding,
                  const Normalization& norm, Tensor& images, Tensor& labels) {
  const GatherShape s{images.size(0), data.count(), order.numel(), batch_size, data.channels(), data.height(),
                      data.width(), padding, augment, images.is_channels_last(), seed};
  const int64_t total = images.numel();
  if (total == 0) return;
  const Tensor& table = data.normalization_table(norm);
  if (images.is_bf16())
    gather<uint16_t>(data, table, order, clock, s, images, labels);
  else
    gather<float>(data, table, order, clock, s, images, labels);
  QNN_LAUNCH_CHECK("gather_batch images ", shape_str(images.shape()), " batch size ", batch_size,
                   " from ", data.count(), " images");
}

void accumulate_metrics(const Tensor& logits, const Tensor& labels, const Tensor& loss, Tensor& metrics) {
  const int64_t n = logits.size(0), classes = logits.size(1);
  metrics_kernel<<<1, kMetricThreads, 0, stream()>>>(logits.data(), labels.data(), loss.data(), n, classes,
                                                     metrics.data());
  QNN_LAUNCH_CHECK("accumulate_metrics logits ", shape_str(logits.shape()));
}

}  // namespace qnn::cuda
