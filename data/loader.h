// A batch loader: turns a sample source (data/sample_source.h: an in-memory byte dataset, or an
// image folder decoded on the fly) into float32 NCHW batches, shuffled and augmented, prepared
// on worker threads while the current batch trains.
//
// What a batch holds depends only on (seed, epoch) and the batch's number: the epoch's order is
// a Fisher-Yates shuffle driven by the counter-based generator, and each image's augmentation
// is keyed by its dataset index (data/augment.h, data/image_transforms.h). Workers build whole batches, claimed by
// number, and the consumer receives them strictly in number order, so one worker or eight,
// fast or slow, the training run sees the same bytes.
//
//   LoaderConfig config;
//   config.augment = true;
//   Loader loader(train_set, config);
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     for (Batch batch; loader.next(batch);) train_step(batch.images, batch.labels);
//   }
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "data/augment.h"
#include "data/cifar.h"
#include "data/sample_source.h"
#include "tensor/tensor.h"

namespace qnn {

struct LoaderConfig {
  int64_t batch_size = 128;
  bool shuffle = true;     // a new permutation every epoch; otherwise dataset order
  bool drop_last = false;  // drop the last batch when it would be smaller than batch_size
  int workers = 2;         // threads preparing batches; 0 prepares each batch inside next()
  int prefetch = 4;        // at most this many batches prepared ahead of the consumer
  uint64_t seed = 0;       // keys the shuffle and the augmentation
  bool bytes = false;       // batches of the source's bytes (Batch::bytes), not normalised floats;
                           // the source must have a byte form (SampleSource::byte_normalization)
  // For an ImageDataset only (a SampleSource brings its own transforms):
  bool augment = false;    // random crop + flip (training); normalisation always
  int padding = 4;         // zero padding of the random crop
  Normalization normalization = cifar10_normalization();
};

struct Batch {
  Tensor images;                 // [B, C, H, W] float32, normalised (and augmented)
  std::vector<uint8_t> bytes;    // instead, with LoaderConfig::bytes: B x C x H x W bytes
  std::vector<int32_t> labels;   // B labels
  std::vector<int64_t> indices;  // the dataset index of each image
  int64_t number = 0;            // which batch of the epoch, from 0
};

// The counter-based stream of shuffle draws for an epoch ("SHF1" in the high 32 bits).
inline uint64_t shuffle_stream(int64_t epoch) {
  return (uint64_t{0x53484631} << 32) | static_cast<uint32_t>(epoch);
}

// The order in which an epoch visits `count` images: a Fisher-Yates shuffle whose i-th swap
// partner comes from random_words(seed, shuffle_stream(epoch), i).
std::vector<int64_t> shuffled_order(int64_t count, uint64_t seed, int64_t epoch);

class Loader {
 public:
  // Keeps a reference to `dataset`, which must outlive the loader and stay unchanged; augments
  // and normalises it as `config` says.
  Loader(const ImageDataset& dataset, LoaderConfig config);
  // Keeps a reference to `source`, which must outlive the loader.
  Loader(const SampleSource& source, LoaderConfig config);
  ~Loader();  // stops and joins the workers; batches in preparation are dropped
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Begins epoch `epoch` (0 <= epoch < 2^32) from its first batch, abandoning any batches of a
  // previous epoch not yet taken. Workers start preparing at once. The loader builds and
  // delivers the batches numbered first, first + stride, first + 2 stride, ... only: one rank's
  // share of every step when K ranks train together (first = rank, stride = K; see
  // train/trainer.h). The default is every batch.
  void start_epoch(int64_t epoch, int64_t first = 0, int64_t stride = 1);
  // The epoch's next batch of the share into `out`; false once the share is exhausted. An error
  // raised while preparing a batch is rethrown here, when that batch's turn comes.
  bool next(Batch& out);
  int64_t batches_per_epoch() const;  // all of the epoch's batches, whatever the share
  const LoaderConfig& config() const { return config_; }

 private:
  struct Epoch {  // immutable once published: workers read it without the lock
    int64_t epoch = 0;
    std::vector<int64_t> order;
    int64_t first = 0, stride = 1;  // the share: batch numbers first + k * stride
    int64_t batches = 0;            // how many batches the share holds
    int64_t number(int64_t k) const { return first + k * stride; }
  };
  struct Prepared {
    Batch batch;
    std::exception_ptr error;
  };

  Batch build(const Epoch& epoch, int64_t number) const;  // pure: same inputs, same batch
  void work();                                            // a worker thread's loop
  bool work_available() const;                            // caller holds mutex_

  Loader(std::unique_ptr<SampleSource> owned, const SampleSource* source, LoaderConfig config);

  const std::unique_ptr<SampleSource> owned_;  // the ImageDataset's source, when made from one
  const SampleSource& source_;
  const int64_t count_;  // images per epoch: the source's count when the loader was made
  const SampleShape shape_;
  const LoaderConfig config_;

  std::mutex mutex_;  // guards everything below
  std::condition_variable work_ready_, batch_ready_;
  std::shared_ptr<const Epoch> epoch_;  // null until start_epoch
  uint64_t generation_ = 0;             // bumped by start_epoch: stale batches are discarded
  int64_t next_to_build_ = 0, next_to_deliver_ = 0;  // positions k in the share, not batch numbers
  std::map<int64_t, Prepared> prepared_;  // finished batches by position in the share
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace qnn
