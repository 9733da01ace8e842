// Philox draws for runs of consecutive indices (see tensor/random_block.h).
#include "tensor/random_block.h"

#include "tensor/avx512.h"
#include "tensor/random.h"

namespace qnn {

namespace {

#if defined(__AVX512F__)

// The high and low 32 bits of a[i] * m for each 32-bit lane i.
inline void multiply_wide(__m512i a, __m512i m, __m512i& high, __m512i& low) {
  const __m512i even = _mm512_mul_epu32(a, m);                        // lanes 0, 2, ...: 64-bit products
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);  // lanes 1, 3, ...
  high = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  low = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

// philox4x32 of tensor/random.h for the sixteen counters (base + lane, stream): c0..c3 out.
inline void philox16(uint64_t seed, uint64_t stream, uint64_t base, __m512i c[4]) {
  const __m512i M0 = _mm512_set1_epi32(int(0xD2511F53u)), M1 = _mm512_set1_epi32(int(0xCD9E8D57u));
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // The 64-bit index base + lane as its low and high words: a lane whose low word wrapped
  // carries one into the high word.
  const __m512i base_low = _mm512_set1_epi32(int(uint32_t(base))), base_high = _mm512_set1_epi32(int(base >> 32));
  __m512i c0 = _mm512_add_epi32(base_low, lanes);
  __m512i c1 = _mm512_mask_add_epi32(base_high, _mm512_cmplt_epu32_mask(c0, base_low), base_high, _mm512_set1_epi32(1));
  __m512i c2 = _mm512_set1_epi32(int(uint32_t(stream))), c3 = _mm512_set1_epi32(int(stream >> 32));
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    __m512i high0, low0, high1, low1;
    multiply_wide(c0, M0, high0, low0);
    multiply_wide(c2, M1, high1, low1);
    c0 = _mm512_ternarylogic_epi32(high1, c1, _mm512_set1_epi32(int(k0)), 0x96);  // three-way xor
    c1 = low1;
    c2 = _mm512_ternarylogic_epi32(high0, c3, _mm512_set1_epi32(int(k1)), 0x96);
    c3 = low0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  c[0] = c0, c[1] = c1, c[2] = c2, c[3] = c3;
}

#endif

}  // namespace

void random_word_columns(uint64_t seed, uint64_t stream, uint64_t first, int64_t count, uint32_t* w0, uint32_t* w1,
                         uint32_t* w2, uint32_t* w3) {
  uint32_t* columns[4] = {w0, w1, w2, w3};
  int64_t j = 0;
#if defined(__AVX512F__)
  for (; j + 16 <= count; j += 16) {
    __m512i c[4];
    philox16(seed, stream, first + uint64_t(j), c);
    for (int k = 0; k < 4; ++k)
      if (columns[k]) _mm512_storeu_si512(columns[k] + j, c[k]);
  }
#endif
  for (; j < count; ++j) {
    const Philox4 w = random_words(seed, stream, first + uint64_t(j));
    for (int k = 0; k < 4; ++k)
      if (columns[k]) columns[k][j] = w.v[k];
  }
}

void random_uniforms(uint64_t seed, uint64_t stream, uint64_t first, int64_t count, float* u) {
  int64_t j = 0;
#if defined(__AVX512F__)
  for (; j + 16 <= count; j += 16) {
    __m512i c[4];
    philox16(seed, stream, first + uint64_t(j), c);
    // uniform_from_word: the top 24 bits, exactly a float, times 2^-24 (exact too).
    const __m512 top = _mm512_cvtepi32_ps(_mm512_srli_epi32(c[0], 8));
    _mm512_storeu_ps(u + j, _mm512_mul_ps(top, _mm512_set1_ps(1.0f / 16777216.0f)));
  }
#endif
  for (; j < count; ++j) u[j] = random_uniform(seed, stream, first + uint64_t(j));
}

}  // namespace qnn
