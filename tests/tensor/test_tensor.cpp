// Tensor basics: shapes, views sharing storage, copies, seeded creation.
#include <doctest.h>

#include "tensor/allocator.h"
#include "tensor/random.h"
#include "tensor/random_block.h"
#include "tensor/tensor.h"

using namespace qnn;

TEST_CASE("tensor: shape, views and clones") {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(t.numel() == 6);
  CHECK(t.size(-1) == 3);
  Tensor v = t.view({3, 2});
  v.data()[0] = 10;
  CHECK(t.data()[0] == 10);  // views share storage
  Tensor c = t.clone();
  c.data()[1] = 20;
  CHECK(t.data()[1] == 2);  // clones do not
  Tensor row = t.narrow(1, 2);
  CHECK(row.to_vector() == std::vector<float>{4, 5, 6});
  CHECK_THROWS_WITH_AS(t.view({4, 2}), "[view] cannot view [2, 3] as [4, 2]", Error);
}

TEST_CASE("random: Philox is deterministic, counter-addressed and uniform") {
  // Known-answer from the Philox4x32-10 paper's test vectors (counter 0, key 0).
  Philox4 z = philox4x32(0, 0, 0, 0, 0, 0);
  CHECK(z.v[0] == 0x6627e8d5u);
  CHECK(z.v[1] == 0xe169c58du);
  CHECK(z.v[2] == 0xbc57ac4cu);
  CHECK(z.v[3] == 0x9b00dbd8u);
  Tensor a = Tensor::uniform({10000}, 0, 1, 42);
  Tensor b = Tensor::uniform({10000}, 0, 1, 42);
  CHECK(a.to_vector() == b.to_vector());
  double mean = 0;
  for (float x : a.to_vector()) mean += x;
  mean /= a.numel();
  CHECK(mean == doctest::Approx(0.5).epsilon(0.02));
  CHECK(random_uniform(42, 0, 17) == a.data()[17]);
  Tensor n = Tensor::normal({20000}, 0, 1, 7);
  double m = 0, s = 0;
  for (float x : n.to_vector()) m += x, s += double(x) * x;
  m /= n.numel();
  s = s / n.numel() - m * m;
  CHECK(std::abs(m) < 0.03);
  CHECK(s == doctest::Approx(1.0).epsilon(0.03));
}

TEST_CASE("random: draws for a run of indices equal the draws one index at a time") {
  // Runs of every length up to 70 (whole groups of sixteen and the rest), starting where the
  // index's low word wraps into its high word, and keys and streams with both words set.
  const uint64_t seeds[] = {0, 42, 0x0123456789abcdefull};
  const uint64_t streams[] = {0, 7, 0xfedcba9876543210ull};
  const uint64_t firsts[] = {0, 5, 0xffffffe9ull, 0x1fffffffaull, ~uint64_t(0) - 20};
  int64_t checked = 0;
  for (uint64_t seed : seeds)
    for (uint64_t stream : streams)
      for (uint64_t first : firsts)
        for (int64_t count : {0, 1, 15, 16, 17, 33, 70}) {
          std::vector<uint32_t> w[4];
          for (auto& column : w) column.assign(size_t(count) + 1, 0xdeadbeefu);
          std::vector<float> u(size_t(count) + 1, -1.0f);
          random_word_columns(seed, stream, first, count, w[0].data(), w[1].data(), nullptr, w[3].data());
          random_word_columns(seed, stream, first, count, nullptr, nullptr, w[2].data(), nullptr);
          random_uniforms(seed, stream, first, count, u.data());
          for (int64_t j = 0; j < count; ++j) {
            const Philox4 expected = random_words(seed, stream, first + uint64_t(j));
            for (int k = 0; k < 4; ++k) checked += w[k][size_t(j)] == expected.v[k];
            checked += u[size_t(j)] == random_uniform(seed, stream, first + uint64_t(j));
          }
          for (int k = 0; k < 4; ++k) CHECK(w[k][size_t(count)] == 0xdeadbeefu);  // nothing past the run
          CHECK(u[size_t(count)] == -1.0f);
        }
  CHECK(checked == 3 * 3 * 5 * (0 + 1 + 15 + 16 + 17 + 33 + 70) * 5);
}

TEST_CASE("allocator: freed blocks are reused by the next request of that size") {
  const AllocatorStats before = cpu_allocator_stats();
  const float* first = nullptr;
  {
    Tensor t({1000, 1000});
    first = t.data();
    CHECK(reinterpret_cast<uintptr_t>(first) % 64 == 0);
  }
  Tensor again({1000, 1000});
  CHECK(again.data() == first);  // the same block, no system allocation
  const AllocatorStats after = cpu_allocator_stats();
  CHECK(after.reused >= before.reused + 1);
  CHECK(after.live_bytes >= before.live_bytes + int64_t(sizeof(float)) * 1000 * 1000);
}
