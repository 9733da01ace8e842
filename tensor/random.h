// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
// as 1, 2, 3", SC 2011). A random value is a pure function of (key, counter), so element i of
// stream s under seed k can be computed anywhere, in any order, by any thread or GPU thread, and
// is the same everywhere. qnn keys it by the run's seed and puts (stream, step, index) in the
// counter: stochastic rounding, augmentation and initialisation are reproducible and the CPU
// and CUDA paths draw identical numbers.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define QNN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define QNN_HOST_DEVICE inline
#endif

namespace qnn {

struct Philox4 {
  uint32_t v[4];
};

QNN_HOST_DEVICE uint32_t mulhi32(uint32_t a, uint32_t b) {
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
}

// Ten rounds of Philox4x32 on counter (c0..c3) with key (k0, k1).
QNN_HOST_DEVICE Philox4 philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                                   uint32_t k1) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = mulhi32(M0, c0), lo0 = M0 * c0;
    const uint32_t hi1 = mulhi32(M1, c2), lo1 = M1 * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += W0;
    k1 += W1;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Four 32-bit random words for (seed, stream, index): the counter is (index, stream).
QNN_HOST_DEVICE Philox4 random_words(uint64_t seed, uint64_t stream, uint64_t index) {
  return philox4x32(static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32),
                    static_cast<uint32_t>(stream), static_cast<uint32_t>(stream >> 32),
                    static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// A 32-bit word to a float uniform in [0, 1): the top 24 bits, exactly representable.
QNN_HOST_DEVICE float uniform_from_word(uint32_t word) {
  return static_cast<float>(word >> 8) * (1.0f / 16777216.0f);
}

// One uniform float in [0, 1) for (seed, stream, index): the first word of the block.
QNN_HOST_DEVICE float random_uniform(uint64_t seed, uint64_t stream, uint64_t index) {
  return uniform_from_word(random_words(seed, stream, index).v[0]);
}

// One standard normal for (seed, stream, index), by Box-Muller on the first two words.
QNN_HOST_DEVICE float random_normal(uint64_t seed, uint64_t stream, uint64_t index) {
  const Philox4 w = random_words(seed, stream, index);
  const float u1 = (static_cast<float>(w.v[0] >> 8) + 1.0f) * (1.0f / 16777216.0f);  // (0, 1]
  const float u2 = uniform_from_word(w.v[1]);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

}  // namespace qnn
