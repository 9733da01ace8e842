// GradientExchange: see dist/exchange.h.
#include "dist/exchange.h"

#include <algorithm>

#include "autograd/flat_parameters.h"
#include "dist/payload_wire.h"
#include "tensor/check.h"

namespace qnn {

std::string exchange_algorithm_name(ExchangeAlgorithm algorithm) {
  switch (algorithm) {
    case ExchangeAlgorithm::automatic: return "automatic";
    case ExchangeAlgorithm::fp32: return "fp32";
    case ExchangeAlgorithm::allgather: return "allgather";
    case ExchangeAlgorithm::scatter_reduce: return "scatter-reduce";
  }
  return "?";
}

ExchangeAlgorithm parse_exchange_algorithm(const std::string& name) {
  for (ExchangeAlgorithm a : {ExchangeAlgorithm::automatic, ExchangeAlgorithm::fp32, ExchangeAlgorithm::allgather,
                              ExchangeAlgorithm::scatter_reduce})
    if (name == exchange_algorithm_name(a)) return a;
  throw Error(str("unknown exchange algorithm '", name, "'; valid: automatic, fp32, allgather, scatter-reduce"));
}

std::vector<ExchangeLayer> exchange_layers(const FlatParameters& params) {
  std::vector<ExchangeLayer> layers;
  for (const Variable& leaf : params.leaves()) layers.push_back({leaf.numel(), int64_t(leaf.value().shape().size())});
  return layers;
}

GradientExchange::GradientExchange(Communicator& comm, GradientQuantizationHook* hook, std::vector<ExchangeLayer> layers,
                                   ExchangeOptions options)
    : comm_(comm), hook_(hook), layers_(std::move(layers)), options_(options), algorithm_(options.algorithm) {
  if (algorithm_ == ExchangeAlgorithm::automatic)
    algorithm_ = !hook_ ? ExchangeAlgorithm::fp32
                 : comm_.size() >= 3 ? ExchangeAlgorithm::scatter_reduce
                                     : ExchangeAlgorithm::allgather;
  QNN_CHECK(hook_ || algorithm_ == ExchangeAlgorithm::fp32, "the ", exchange_algorithm_name(algorithm_),
            " exchange sends quantized payloads: it needs a quantizer (--quant)");
  for (const ExchangeLayer& l : layers_) {
    const bool quantized =
        algorithm_ != ExchangeAlgorithm::fp32 && l.dims >= 2 && l.numel >= options_.min_quantized_layer;
    quantize_layer_.push_back(quantized);
    total_ += l.numel;
    if (quantized) quantized_ += l.numel;
  }
}

Payload GradientExchange::encode(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step,
                                 double* variance) const {
  const bool record = hook_->options().record_variance;
  double v = 0;
  Payload p = hook_->quantizer().encode_slice_with_variance(x, n, first, seed, step, record ? &v : nullptr);
  if (record) *variance += v;
  return p;
}

void GradientExchange::decode_into(const Payload& p, float* out) { hook_->quantizer().decode(p, out); }

double GradientExchange::exchange_allgather(uint64_t step, int64_t* bits) {
  const int p = comm_.size();
  const uint64_t seed = GradientQuantizationHook::worker_seed(hook_->options().seed, comm_.rank());
  // The slices: one network-wide vector, or the quantized layers one by one.
  std::vector<int64_t> slices = {quantized_};
  if (hook_->options().flattening == Flattening::per_layer) {
    slices.clear();
    for (size_t l = 0; l < layers_.size(); ++l)
      if (quantize_layer_[l]) slices.push_back(layers_[l].numel);
  }
  double variance = 0;
  Bytes message;
  std::vector<Payload> own;
  int64_t first = 0;
  for (int64_t s : slices) {
    own.push_back(encode(q_.data() + first, s, first, seed, step, &variance));
    *bits += own.back().bits();
    write_payload(own.back(), message);
    first += s;
  }
  const std::vector<Bytes> all = comm_.allgather(message);
  // Every header is checked before anything is decoded: a bad one stops every rank alike.
  std::vector<std::vector<Payload>> received(static_cast<size_t>(p));
  for (int r = 0; r < p; ++r) {
    size_t offset = 0;
    for (size_t k = 0; k < slices.size(); ++k)
      received[size_t(r)].push_back(read_payload(
          all[size_t(r)], offset, {hook_->quantizer().name(), slices[k], -1, int64_t(step), &own[k]}, str("rank ", r)));
    QNN_CHECK(offset == all[size_t(r)].size(), "rank ", r, " sent ", all[size_t(r)].size() - offset,
              " bytes beyond its payloads");
  }
  sum_.assign(size_t(quantized_), 0.0f);
  decoded_.resize(size_t(quantized_));
  for (int r = 0; r < p; ++r) {  // rank order, as the emulated workers add theirs
    first = 0;
    for (size_t k = 0; k < slices.size(); ++k) {
      decode_into(received[size_t(r)][k], decoded_.data() + first);
      first += slices[k];
    }
    for (int64_t i = 0; i < quantized_; ++i) sum_[size_t(i)] += decoded_[size_t(i)];
  }
  q_.swap(sum_);
  return variance;
}

double GradientExchange::exchange_scatter_reduce(uint64_t step, int64_t* bits) {
  const int p = comm_.size(), rank = comm_.rank();
  const uint64_t seed = hook_->options().seed;
  // Chunk j is [start[j], start[j + 1]), whole buckets except the last chunk's tail.
  const int64_t bucket = std::max<int64_t>(1, hook_->quantizer().options().bucket_size);
  const int64_t buckets = (quantized_ + bucket - 1) / bucket, per_chunk = (buckets + p - 1) / p;
  std::vector<int64_t> start(size_t(p) + 1);
  for (int j = 0; j <= p; ++j) start[size_t(j)] = std::min(quantized_, int64_t(j) * per_chunk * bucket);
  auto length = [&](int j) { return start[size_t(j) + 1] - start[size_t(j)]; };
  const std::string scheme = hook_->quantizer().name();

  // Scatter: this rank's payload of chunk j goes to rank j.
  double variance = 0;
  std::vector<Payload> own(static_cast<size_t>(p));
  std::vector<Bytes> send(static_cast<size_t>(p));
  // Schemes that key their randomness by the index within the slice (smart, the level-set
  // ones) would draw the same numbers for every chunk of a seed: each chunk gets its own.
  const uint64_t my_seed = GradientQuantizationHook::worker_seed(seed, rank);
  auto chunk_seed = [](uint64_t s, int chunk) { return s ^ (uint64_t(chunk + 1) * 0xD1B54A32D192ED03ull); };
  for (int j = 0; j < p; ++j) {
    if (length(j) == 0) continue;
    own[size_t(j)] = encode(q_.data() + start[size_t(j)], length(j), start[size_t(j)], chunk_seed(my_seed, j), step, &variance);
    *bits += own[size_t(j)].bits();
    write_payload(own[size_t(j)], send[size_t(j)]);
  }
  const std::vector<Bytes> received = comm_.alltoall(send);

  // Reduce: this rank's chunk, summed in rank order in fp32, then re-quantized.
  const int64_t mine = length(rank), my_start = start[size_t(rank)];
  Bytes requantized;
  if (mine > 0) {
    std::vector<Payload> parts;
    for (int i = 0; i < p; ++i) {
      size_t offset = 0;
      parts.push_back(read_payload(received[size_t(i)], offset, {scheme, mine, -1, int64_t(step), &own[size_t(rank)]},
                                   str("rank ", i)));
      QNN_CHECK(offset == received[size_t(i)].size(), "rank ", i, " sent ", received[size_t(i)].size() - offset,
                " bytes beyond its payload of chunk ", rank);
    }
    sum_.assign(size_t(mine), 0.0f);
    decoded_.resize(size_t(mine));
    for (const Payload& part : parts) {
      decode_into(part, decoded_.data());
      for (int64_t i = 0; i < mine; ++i) sum_[size_t(i)] += decoded_[size_t(i)];
    }
    const Payload again = encode(sum_.data(), mine, my_start, GradientQuantizationHook::worker_seed(seed, p + rank), step,
                                 &variance);
    write_payload(again, requantized);
  } else {
    for (int i = 0; i < p; ++i)
      QNN_CHECK(received[size_t(i)].empty(), "rank ", i, " sent ", received[size_t(i)].size(),
                " bytes for chunk ", rank, ", which is empty");
  }

  // All-gather the re-quantized chunks; every rank (the owner too) decodes each one.
  const std::vector<Bytes> chunks = comm_.allgather(requantized);
  std::vector<Payload> parsed(static_cast<size_t>(p));
  for (int j = 0; j < p; ++j) {
    size_t offset = 0;
    if (length(j) > 0)
      parsed[size_t(j)] = read_payload(chunks[size_t(j)], offset,
                                       {scheme, length(j), -1, int64_t(step), &own[size_t(j)]},
                                       str("rank ", j, " (owner of chunk ", j, ")"));
    QNN_CHECK(offset == chunks[size_t(j)].size(), "rank ", j, " sent ", chunks[size_t(j)].size() - offset,
              " bytes beyond its re-quantized chunk");
  }
  for (int j = 0; j < p; ++j)
    if (length(j) > 0) decode_into(parsed[size_t(j)], q_.data() + start[size_t(j)]);
  return variance;
}

void GradientExchange::average(float* grad, int64_t n, int contributors) {
  QNN_CHECK(n == total_, "the exchange was set up for ", total_, " coordinates, the gradient has ", n);
  QNN_CHECK(contributors >= 1 && contributors <= comm_.size(), "contributors must be 1..", comm_.size(), ", got ",
            contributors);
  const int64_t before = comm_.bytes_sent();
  q_.resize(size_t(quantized_));
  f_.resize(size_t(total_ - quantized_));
  int64_t at = 0, qi = 0, fi = 0;
  for (size_t l = 0; l < layers_.size(); ++l) {
    float* to = quantize_layer_[l] ? q_.data() + qi : f_.data() + fi;
    std::copy(grad + at, grad + at + layers_[l].numel, to);
    (quantize_layer_[l] ? qi : fi) += layers_[l].numel;
    at += layers_[l].numel;
  }
  double variance = 0;
  int64_t bits = 0;
  const int64_t step = hook_ ? hook_->step() : 0;
  if (quantized_ > 0) {
    if (hook_->quantizer().observes_at(step)) {
      // Adaptive schemes refit on rank 0's gradient, on every rank, so that their levels (and
      // their checkpointed state) stay identical: the emulated workers refit on worker 0's.
      std::vector<float> first_rank = q_;
      comm_.broadcast(first_rank.data(), quantized_, 0);
      hook_->observe(first_rank.data(), quantized_);
    }
    variance = algorithm_ == ExchangeAlgorithm::allgather ? exchange_allgather(uint64_t(step), &bits)
                                                          : exchange_scatter_reduce(uint64_t(step), &bits);
  }
  if (!f_.empty()) comm_.allreduce_sum(f_.data(), int64_t(f_.size()));
  const float inverse = 1.0f / float(contributors);
  at = 0, qi = 0, fi = 0;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const float* from = quantize_layer_[l] ? q_.data() + qi : f_.data() + fi;
    for (int64_t i = 0; i < layers_[l].numel; ++i) grad[at + i] = contributors == 1 ? from[i] : from[i] * inverse;
    (quantize_layer_[l] ? qi : fi) += layers_[l].numel;
    at += layers_[l].numel;
  }
  last_bytes_ = comm_.bytes_sent() - before;
  if (hook_) {
    if (hook_->options().record_variance) comm_.allreduce_sum(&variance, 1);  // a statistic, not gradient bytes
    const double bits_per_coordinate = n ? double(bits + 32 * (total_ - quantized_)) / double(n) : 0.0;
    hook_->finish_exchanged_step(bits_per_coordinate, variance / (double(contributors) * double(contributors)));
  }
}

}  // namespace qnn
