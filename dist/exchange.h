// GradientExchange: the data-parallel all-reduce of a flat gradient between the ranks of a
// Communicator (dist/communicator.h), with the gradient quantized into packed payloads
// (quant/payload.h, dist/payload_wire.h) on the way. After CGX / torch_cgx (Markov et al.,
// "CGX: adaptive system support for communication-efficient deep learning", 2022), GRACE (Xu et
// al., "GRACE: a compressed communication framework for distributed machine learning", 2021)
// and QSGD (Alistarh et al., 2017). docs/distributed.md has the byte counts.
//
//   GradientExchange exchange(world, &hook, layers_of(flat), {ExchangeAlgorithm::automatic});
//   ... loss.backward();  exchange.average(flat.grads().data(), n, world.size());  sgd.step();
//
// The gradient is split by layer: layers of at least `min_quantized_layer` coordinates with two
// or more dimensions (weights of convolutions and linear layers) are quantized; 1-D parameters
// (biases, batch-norm scales) and small layers go through an fp32 all-reduce, as CGX sends them
// unquantized (they are a small share of the bytes and sensitive to noise). The quantized layers
// are concatenated into one vector and bucketed network-wide (or each on its own with the hook's
// per-layer flattening), their coordinates numbered from 0 in that vector.
//
// Algorithms for the quantized part, every rank r encoding with its own counter-based stream:
// seed worker_seed(seed, r) at the hook's step, keyed by coordinate (quant/rounding.h), so runs
// are reproducible and the ranks' rounding errors independent.
//   allgather       each rank encodes its gradient and all-gathers the payloads; every rank
//                   decodes the p payloads and sums them in rank order (fp32), so every rank
//                   computes the same sum, bit for bit. Sends (p-1) * payload bytes. The
//                   reference, and the better choice at 2 ranks.
//   scatter_reduce  CGX's scatter-reduce-allgather (SRA): the vector is cut into p chunks on
//                   bucket boundaries; rank j owns chunk j. Each rank encodes every chunk (its
//                   stream mixed with the chunk's number, so that schemes keyed by the index
//                   within a slice draw fresh numbers for each chunk) and
//                   sends chunk j's payload to rank j (all-to-all); rank j decodes the p payloads
//                   of its chunk, sums them in rank order in fp32, re-quantizes the sum (stream
//                   worker_seed(seed, p + j)) and all-gathers it; every rank, the owner too,
//                   decodes the re-quantized chunks, so all replicas stay identical. Sends about
//                   2 (p-1)/p * payload bytes: what a ring all-reduce sends, at the payload's size.
//   fp32            MPI_Allreduce (or ncclAllReduce) of the whole gradient, unquantized: the baseline.
//   automatic       fp32 without a quantizer; allgather at 1 or 2 ranks; scatter_reduce at 3 or more.
// The result is divided by `contributors` (the ranks that had a batch this step), as the
// emulated workers of GradientQuantizationHook::quantize_and_average divide their sum.
//
// Every received payload is checked before anything is decoded (dist/payload_wire.h): a rank
// running another scheme, other settings or another step is a qnn::Error naming the rank and the
// field, raised on every rank alike (they all check the same gathered data).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "quant/hook.h"

namespace qnn {

class FlatParameters;

enum class ExchangeAlgorithm { automatic, fp32, allgather, scatter_reduce };
std::string exchange_algorithm_name(ExchangeAlgorithm algorithm);
// "automatic", "fp32", "allgather" or "scatter-reduce"; anything else is a qnn::Error listing them.
ExchangeAlgorithm parse_exchange_algorithm(const std::string& name);

struct ExchangeLayer {
  int64_t numel = 0;
  int64_t dims = 1;
};
// The layers of a flat parameter buffer, in its order.
std::vector<ExchangeLayer> exchange_layers(const FlatParameters& params);

struct ExchangeOptions {
  ExchangeAlgorithm algorithm = ExchangeAlgorithm::automatic;
  int64_t min_quantized_layer = 1024;  // smaller layers, and 1-D ones, are sent in fp32
};

class GradientExchange {
 public:
  // `hook` may be null (no quantization: the fp32 all-reduce); it is not installed, the exchange
  // uses its quantizer, seed, flattening and step, and ends each step through it.
  GradientExchange(Communicator& comm, GradientQuantizationHook* hook, std::vector<ExchangeLayer> layers,
                   ExchangeOptions options = {});

  // grad: this rank's flat gradient (the layers' concatenation, n coordinates), replaced by the
  // mean over the ranks, divided by `contributors`. Identical on every rank afterwards.
  void average(float* grad, int64_t n, int contributors);

  ExchangeAlgorithm algorithm() const { return algorithm_; }  // resolved (never automatic)
  int64_t quantized_coordinates() const { return quantized_; }
  int64_t fp32_coordinates() const { return total_ - quantized_; }
  int64_t last_bytes_sent() const { return last_bytes_; }  // by this rank, in the last average()
  Communicator& communicator() { return comm_; }

 private:
  double exchange_allgather(uint64_t step, int64_t* bits);
  double exchange_scatter_reduce(uint64_t step, int64_t* bits);
  Payload encode(const float* x, int64_t n, int64_t first, uint64_t seed, uint64_t step, double* variance) const;
  void decode_into(const Payload& p, float* out);

  Communicator& comm_;
  GradientQuantizationHook* hook_;
  std::vector<ExchangeLayer> layers_;
  std::vector<bool> quantize_layer_;
  ExchangeOptions options_;
  ExchangeAlgorithm algorithm_;
  int64_t total_ = 0, quantized_ = 0;
  std::vector<float> q_, f_, sum_, decoded_;  // quantized part, fp32 part, buffers reused per step
  int64_t last_bytes_ = 0;
};

}  // namespace qnn
