// ./apps/quant end to end: E2's numbers (docs/quantizer-tests.md), a bucket size far beyond the data, and bad
// input (message, exit 2).
#include <doctest.h>

#include <cmath>
#include <cstdlib>

#include "tests/apps/run_command.h"

namespace {
// The number after "key: " in the output (the first one on that line).
double value_of(const std::string& output, const std::string& key) {
  const size_t at = output.find(key + ":");
  REQUIRE_MESSAGE(at != std::string::npos, key << " missing in: " << output);
  return std::strtod(output.c_str() + at + key.size() + 1, nullptr);
}
}  // namespace

TEST_CASE("quant cli: E2, standard with 3 levels on [0, .25, .5, 1]") {
  CommandResult r = run_command("./apps/quant --scheme standard --bucket-size 4 --levels 3 --samples 40000 0 0.25 0.5 1");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  CHECK(r.output.find("levels: 0 0.5 1\n") != std::string::npos);
  CHECK(value_of(r.output, "variance") == doctest::Approx(0.0625));
  CHECK(value_of(r.output, "bits") == 18.0);  // (2 scales * 32 + 4 * 2) / 4
  // 0.25 -> 0 or 0.5 w.p. 1/2: ||Q(x) - x||^2 is 0.0625 at every draw
  CHECK(value_of(r.output, "sample_variance") == doctest::Approx(0.0625));
  const size_t output_at = r.output.find("output: 0 ");
  CHECK(output_at != std::string::npos);
  const size_t mean_at = r.output.find("mean: ");
  REQUIRE(mean_at != std::string::npos);
  char* p = const_cast<char*>(r.output.c_str()) + mean_at + 6;
  double mean[4];
  for (double& m : mean) m = std::strtod(p, &p);
  CHECK(mean[0] == 0.0);
  CHECK(std::abs(mean[1] - 0.25) <= 4 * std::sqrt(0.0625 / 40000));
  CHECK(mean[2] == 0.5);
  CHECK(mean[3] == 1.0);
}

TEST_CASE("quant cli: values from stdin, two buckets, negative numbers") {
  CommandResult r = run_command("echo '-1 1 0 2 4' | ./apps/quant --scheme standard --bucket-size 3 --levels 3 -");
  REQUIRE_MESSAGE(r.exit_code == 0, r.output);
  CHECK(r.output.find("levels: -1 0 1 | 2 3 4\n") != std::string::npos);
}

TEST_CASE("quant cli: bad input exits 2 with a message") {
  struct Case {
    const char* args;
    const char* message;
  };
  for (Case c : {Case{"--scheme standard", "no values"}, Case{"--levels 3 0 x 1", "'x' is not a number"},
                 Case{"--scheme zipml 1 2", "valid: none, standard"}, Case{"--levels 1 1 2", "--levels must be in 2..65536, got 1"},
                 Case{"--scheme exponential --levels 5 1 2", "even level count"},
                 Case{"--scheme smart 1 nan 2", "quant: value 'nan' is not a finite number"},
                 Case{"1 -inf", "quant: value '-inf' is not a finite number"},
                 Case{"1 1e39", "quant: value '1e39' is out of float range"},
                 Case{"--samples -1 1 2", "--samples must be in 0..100000000, got -1"},
                 Case{"--samples 100000001 1 2", "--samples must be in 0..100000000"},
                 Case{"--bucket-size 0 1 2", "bucket_size must be >= 1 and <= 2^62"},
                 Case{"--bucket-size -4 1 2", "got -4"},
                 Case{"--bucket-size 9223372036854775807 1 2", "bucket_size must be >= 1 and <= 2^62"},
                 Case{"--scheme smart --bucket-size 4000000000 1 2", "bucket_size must be < 2^31"},
                 Case{"--levels 4294967312 1 2", "--levels must be in 2..65536, got 4294967312"}}) {
    CommandResult r = run_command(std::string("./apps/quant ") + c.args + " < /dev/null");
    CHECK_MESSAGE(r.exit_code == 2, c.args);
    CHECK_MESSAGE(r.output.find(c.message) != std::string::npos, c.args << " -> " << r.output);
  }
}

TEST_CASE("quant cli: a bucket size far beyond the data is one bucket of the data") {
  // hadamard pads a bucket to the power of two of the values it holds: 4, not 2^32.
  CommandResult huge = run_command("./apps/quant --scheme hadamard --bucket-size 4000000000 1 2 3 4");
  CommandResult four = run_command("./apps/quant --scheme hadamard --bucket-size 4 1 2 3 4");
  REQUIRE_MESSAGE(huge.exit_code == 0, huge.output);
  REQUIRE_MESSAGE(four.exit_code == 0, four.output);
  CHECK(huge.output == four.output);
}
