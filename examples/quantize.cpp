// quantize: compress a gradient buffer with one of qnn's quantization schemes (quant/quantizer.h)
// and print what would travel between data-parallel workers.
//
//   quantize SCHEME [COORDINATES] [BUCKET_SIZE] [LEVELS]
//
// SCHEME is any name make_quantizer() accepts (standard, exponential, hadamard, smart, qsgd,
// qinf, nuq, trn, alq, amq, ...; an unknown name lists them). The buffer is COORDINATES (269,722
// by default: ResNet-20's gradient) normal values of standard deviation 1e-3, as a gradient might
// hold. The output: the payload's size in bytes and bits per coordinate (counted from the packed
// payload: scales, level tables and bit-packed indices), the compression against 32-bit floats,
// and the error decode(encode(g)) adds: measured, and the scheme's exact variance.
// Build against an installed qnn: c++ -std=c++17 quantize.cpp $(pkg-config --cflags --libs qnn)
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "quant/quantizer.h"
#include "tensor/tensor.h"

using namespace qnn;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: quantize SCHEME [COORDINATES] [BUCKET_SIZE] [LEVELS]\n");
    return 2;
  }
  try {
    const int64_t n = argc > 2 ? std::atoll(argv[2]) : 269722;
    QNN_CHECK(n >= 1, "COORDINATES must be >= 1, got '", argc > 2 ? argv[2] : "", "'");
    QuantizerOptions options;
    if (argc > 3) options.bucket_size = std::atoll(argv[3]);
    if (argc > 4) options.levels = checked_int_option("LEVELS", std::atoll(argv[4]), 2, kMaxLevels);
    const std::unique_ptr<GradientQuantizer> quantizer = make_quantizer(argv[1], options);
    QNN_CHECK(quantizer, "scheme 'none' does not quantize; choose another");

    const std::vector<float> gradient = Tensor::normal({n}, 0.0f, 1e-3f, /*seed*/ 1).to_vector();
    const uint64_t seed = 7, step = 0;  // the shared randomness of stochastic rounding
    const Payload payload = quantizer->encode(gradient.data(), n, seed, step);
    std::vector<float> decoded(n);
    quantizer->decode(payload, decoded.data());

    double error = 0, norm = 0;
    for (int64_t i = 0; i < n; ++i) {
      error += (double(decoded[i]) - gradient[i]) * (double(decoded[i]) - gradient[i]);
      norm += double(gradient[i]) * gradient[i];
    }
    const double bytes = double(payload.bits()) / 8;
    std::printf("scheme %s: %lld coordinates, bucket %lld, %d-bit indices\n", quantizer->name().c_str(),
                (long long)n, (long long)options.bucket_size, payload.index_bits);
    std::printf("payload: %.0f bytes (%.3f bits per coordinate), %.1fx smaller than %lld bytes of float32\n", bytes,
                payload.bits_per_coordinate(), 4.0 * double(n) / bytes, (long long)(4 * n));
    std::printf("squared error: measured %.4g, the scheme's variance %.4g (relative to |g|^2: %.4g)\n", error,
                quantizer->variance(gradient.data(), n, seed, step), error / norm);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quantize: %s\n", e.what());
    return 1;
  }
  return 0;
}
