// The batch loader (see data/loader.h): the epoch order, building one batch, and the worker
// threads with their bounded window of prepared batches.
#include "data/loader.h"

#include <algorithm>
#include <utility>

#include "tensor/check.h"

namespace qnn {

std::vector<int64_t> shuffled_order(int64_t count, uint64_t seed, int64_t epoch) {
  QNN_CHECK(count >= 0 && count <= int64_t{0xFFFFFFFF}, "cannot shuffle ", count,
            " images: expected 0..2^32-1");
  std::vector<int64_t> order(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) order[i] = i;
  const uint64_t stream = shuffle_stream(epoch);
  for (int64_t i = count - 1; i > 0; --i) {
    const uint32_t word = random_words(seed, stream, static_cast<uint64_t>(i)).v[0];
    const int64_t j = uniform_below(word, static_cast<uint32_t>(i + 1));  // 0..i
    std::swap(order[i], order[j]);
  }
  return order;
}

Loader::Loader(const ImageDataset& dataset, LoaderConfig config)
    : Loader(std::make_unique<ByteImageSource>(dataset, config.augment, config.padding, config.normalization),
             nullptr, config) {}

Loader::Loader(const SampleSource& source, LoaderConfig config) : Loader(nullptr, &source, std::move(config)) {}

Loader::Loader(std::unique_ptr<SampleSource> owned, const SampleSource* source, LoaderConfig config)
    : owned_(std::move(owned)), source_(owned_ ? *owned_ : *source), count_(source_.count()),
      shape_(source_.shape()), config_(std::move(config)) {
  QNN_CHECK(config_.batch_size >= 1, "batch size is ", config_.batch_size, ", expected >= 1");
  QNN_CHECK(config_.workers >= 0, "workers is ", config_.workers, ", expected >= 0");
  QNN_CHECK(config_.prefetch >= 1, "prefetch is ", config_.prefetch, ", expected >= 1");
  QNN_CHECK(!config_.bytes || source_.byte_normalization(),
            "byte batches asked for, but the sample source gives normalised floats only");
  for (int i = 0; i < config_.workers; ++i) workers_.emplace_back(&Loader::work, this);
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

int64_t Loader::batches_per_epoch() const {
  const int64_t n = count_, b = config_.batch_size;
  return config_.drop_last ? n / b : (n + b - 1) / b;
}

void Loader::start_epoch(int64_t epoch, int64_t first, int64_t stride) {
  QNN_CHECK(epoch >= 0 && epoch <= int64_t{0xFFFFFFFF}, "epoch ", epoch,
            " out of range: expected 0..2^32-1");
  QNN_CHECK(stride >= 1 && first >= 0 && first < stride, "batch share first ", first, ", stride ", stride,
            ": expected stride >= 1 and 0 <= first < stride");
  auto next = std::make_shared<Epoch>();
  next->epoch = epoch;
  next->first = first;
  next->stride = stride;
  next->batches = std::max<int64_t>(0, (batches_per_epoch() - first + stride - 1) / stride);
  if (config_.shuffle) {
    next->order = shuffled_order(count_, config_.seed, epoch);
  } else {
    next->order.resize(static_cast<size_t>(count_));
    for (int64_t i = 0; i < count_; ++i) next->order[i] = i;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    epoch_ = std::move(next);
    ++generation_;
    next_to_build_ = next_to_deliver_ = 0;
    prepared_.clear();
  }
  work_ready_.notify_all();
}

Batch Loader::build(const Epoch& epoch, int64_t number) const {
  const int64_t begin = number * config_.batch_size;
  const int64_t end = std::min(begin + config_.batch_size, count_);
  const int64_t size = end - begin;
  Batch batch;
  batch.number = number;
  if (config_.bytes)
    batch.bytes.resize(static_cast<size_t>(size * shape_.values()));
  else
    batch.images = Tensor({size, shape_.channels, shape_.height, shape_.width});
  batch.labels.resize(static_cast<size_t>(size));
  batch.indices.resize(static_cast<size_t>(size));
  for (int64_t i = 0; i < size; ++i) {
    const int64_t index = epoch.order[begin + i];
    if (config_.bytes)
      batch.labels[i] = source_.fill_bytes(index, config_.seed, epoch.epoch, batch.bytes.data() + i * shape_.values());
    else
      batch.labels[i] = source_.fill(index, config_.seed, epoch.epoch, batch.images.data() + i * shape_.values());
    batch.indices[i] = index;
  }
  return batch;
}

bool Loader::work_available() const {
  return epoch_ != nullptr && next_to_build_ < epoch_->batches &&
         next_to_build_ < next_to_deliver_ + config_.prefetch;
}

void Loader::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_ready_.wait(lock, [this] { return stopping_ || work_available(); });
    if (stopping_) return;
    const int64_t k = next_to_build_++;
    const std::shared_ptr<const Epoch> epoch = epoch_;
    const uint64_t generation = generation_;
    lock.unlock();
    Prepared prepared;
    try {
      prepared.batch = build(*epoch, epoch->number(k));
    } catch (...) {
      prepared.error = std::current_exception();
    }
    lock.lock();
    if (generation == generation_) {  // not abandoned by a start_epoch meanwhile
      prepared_[k] = std::move(prepared);
      batch_ready_.notify_all();
    }
  }
}

bool Loader::next(Batch& out) {
  std::unique_lock<std::mutex> lock(mutex_);
  QNN_CHECK(epoch_ != nullptr, "call start_epoch() before next()");
  if (next_to_deliver_ >= epoch_->batches) return false;
  const int64_t k = next_to_deliver_;
  if (workers_.empty()) {  // no threads: build it here
    ++next_to_deliver_;
    const std::shared_ptr<const Epoch> epoch = epoch_;
    lock.unlock();
    out = build(*epoch, epoch->number(k));
    return true;
  }
  batch_ready_.wait(lock, [&] { return prepared_.count(k) != 0; });
  Prepared prepared = std::move(prepared_[k]);
  prepared_.erase(k);
  ++next_to_deliver_;
  lock.unlock();
  work_ready_.notify_all();  // the window moved: one more batch may be prepared
  if (prepared.error) std::rethrow_exception(prepared.error);
  out = std::move(prepared.batch);
  return true;
}

}  // namespace qnn
