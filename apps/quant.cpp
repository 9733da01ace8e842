// ./apps/quant: look at one gradient quantizer on a handful of numbers.
//
//   ./apps/quant --scheme standard --bucket-size 4 --levels 3 0 0.25 0.5 1
//   echo 0 0.25 0.5 1 | ./apps/quant --scheme standard --bucket-size 4 --levels 3 --samples 100000 -
//
// Prints one `key: value` line each: the levels of every bucket in input units (buckets
// separated by " | "), one quantized draw (step 0), the exact variance, the payload's bits per
// coordinate, and with --samples M the per-coordinate mean over M draws (steps 0..M-1) and the
// mean of ||Q(x) - x||^2 over them. Bad input (a value that is not a finite float, see
// apps/quant_values.h; an option out of range) prints a message and exits with status 2.
#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "train/flags.h"
#include "apps/quant_values.h"
#include "quant/quantizer.h"
#include "tensor/check.h"

using namespace qnn;

namespace {

constexpr int64_t kMaxSamples = 100000000;  // draws for --samples: 1e8 already takes minutes

void print_values(const char* key, const std::vector<float>& values) {
  std::printf("%s:", key);
  for (float v : values) std::printf(" %.9g", v);
  std::printf("\n");
}

// The levels, one draw, the variance and the bits of x; with samples > 0 the means over draws.
void report(const GradientQuantizer& q, const std::vector<float>& x, uint64_t s, int64_t samples) {
  const int64_t n = int64_t(x.size());
  std::printf("levels:");
  const auto bucket_levels = q.bucket_levels(x.data(), n, s, 0);
  for (size_t b = 0; b < bucket_levels.size(); ++b) {
    if (b) std::printf(" |");
    for (float v : bucket_levels[b]) std::printf(" %.9g", v);
  }
  std::printf("\n");
  std::vector<float> y = x;
  const double bits = q.quantize(y.data(), n, s, 0);
  print_values("output", y);
  std::printf("variance: %.9g\n", q.variance(x.data(), n, s, 0));
  std::printf("bits: %.9g\n", bits);
  if (samples > 0) {
    std::vector<double> sum(n, 0.0);
    double error = 0;
    for (int64_t t = 0; t < samples; ++t) {
      y = x;
      q.quantize(y.data(), n, s, uint64_t(t));
      for (int64_t i = 0; i < n; ++i) sum[i] += y[i], error += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
    }
    std::printf("mean:");
    for (double v : sum) std::printf(" %.9g", v / double(samples));
    std::printf("\nsample_variance: %.9g\n", error / double(samples));
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string names;
  for (const std::string& n : quantizer_names()) names += (names.empty() ? "" : ", ") + n;
  Flags flags("quant", "Quantize VALUES (or whitespace-separated numbers from stdin with '-') with one scheme.");
  auto& scheme = flags.add_string("--scheme", "standard", "quantizer: " + names);
  auto& bucket_size = flags.add_int("--bucket-size", 512, "coordinates per bucket");
  auto& levels = flags.add_int("--levels", 16, "levels per bucket");
  auto& seed = flags.add_int("--seed", 0, "seed of the stochastic rounding");
  auto& samples = flags.add_int("--samples", 0, "draws for the empirical mean and variance (0: none; at most 1e8)");

  // Flags are "--name value" or "--name=value"; everything else (negative numbers included) is a value.
  std::vector<char*> flag_args = {argv[0]};
  std::vector<std::string> words;
  bool from_stdin = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) == 0 || arg == "-h") {
      flag_args.push_back(argv[i]);
      if (arg.find('=') == std::string::npos && arg != "--help" && arg != "-h" && i + 1 < argc)
        flag_args.push_back(argv[++i]);
    } else if (arg == "-") {
      from_stdin = true;
    } else {
      words.push_back(arg);
    }
  }
  flags.parse(int(flag_args.size()), flag_args.data());
  if (from_stdin)
    for (std::string w; std::cin >> w;) words.push_back(w);
  std::vector<float> x;
  try {
    x = parse_quant_values(words);
  } catch (const Error& e) {
    flags.fail(e.what());
  }
  if (x.empty()) flags.fail("no values to quantize (give them as arguments, or '-' to read stdin)");
  if (samples < 0 || samples > kMaxSamples)
    flags.fail("--samples must be in 0.." + std::to_string(kMaxSamples) + ", got " + std::to_string(samples));

  QuantizerOptions options;
  options.bucket_size = bucket_size;
  std::unique_ptr<GradientQuantizer> q;
  try {
    options.levels = checked_int_option("--levels", levels, 2, kMaxLevels);
    q = make_quantizer(scheme, options);  // checks --bucket-size: 1..2^62
  } catch (const Error& e) {
    flags.fail(e.what());
  }
  if (!q) flags.fail("scheme 'none' does not quantize; pick one of: " + names);

  try {
    report(*q, x, uint64_t(seed), samples);
  } catch (const std::exception& e) {  // nothing the library should throw on checked input
    std::fprintf(stderr, "quant: %s\n", e.what());
    return 1;
  }
  return 0;
}
