// The orthonormal fast Walsh-Hadamard transform: see quant/walsh_hadamard.h.
//
// Stage h (h = 1, 2, 4, ..., n/2) replaces each pair (x[k], x[k + h]) with k's bit h clear by
// (x[k] + x[k + h], x[k] - x[k + h]). Every output of a stage is one rounded addition or
// subtraction of two outputs of the stage before, so any order of the butterflies that keeps
// the stages in sequence gives the same bits: the AVX-512 path below equals the plain loop (and
// the GPU's, quant/device_quantizer.cu) bit for bit. It does the first six stages inside 64
// floats held in four registers (stages 1 to 8 by swapping lanes, 16 and 32 across registers),
// then the rest two stages per pass over memory, so a 65,536-point transform reads and writes
// its 256 KiB 6 times instead of 17.
#include "quant/walsh_hadamard.h"

#include <cmath>

#include "tensor/avx512.h"
#include "tensor/check.h"

namespace qnn {

namespace {

// The plain transform without the scaling: stage after stage over the whole vector.
void butterflies_plain(float* x, int64_t n) {
  for (int64_t half = 1; half < n; half *= 2)
    for (int64_t block = 0; block < n; block += 2 * half)
      for (int64_t k = block; k < block + half; ++k) {
        const float a = x[k], b = x[k + half];
        x[k] = a + b;
        x[k + half] = a - b;
      }
}

#if defined(__AVX512F__)

// Stage h < 16 inside one register: lane k pairs with lane k ^ h (`swap`); the lanes with bit h
// clear take the sum, the others (lane k + h, whose partner k is the first of the pair) the
// difference.
template <int kHalf>
inline __m512 stage_in_register(__m512 v) {
  __m512 other;
  if constexpr (kHalf == 1) other = _mm512_permute_ps(v, 0xB1);  // within each 4 floats: 1 0 3 2
  else if constexpr (kHalf == 2) other = _mm512_permute_ps(v, 0x4E);  // 2 3 0 1
  else if constexpr (kHalf == 4) other = _mm512_shuffle_f32x4(v, v, 0xB1);  // groups of 4: 1 0 3 2
  else other = _mm512_shuffle_f32x4(v, v, 0x4E);  // halves swapped
  constexpr __mmask16 kUpper = kHalf == 1 ? 0xAAAA : kHalf == 2 ? 0xCCCC : kHalf == 4 ? 0xF0F0 : 0xFF00;
  return _mm512_mask_sub_ps(_mm512_add_ps(v, other), kUpper, other, v);  // upper lanes: x[k - h] - x[k]
}

inline __m512 stages_1_to_8(__m512 v) {
  return stage_in_register<8>(stage_in_register<4>(stage_in_register<2>(stage_in_register<1>(v))));
}

inline void butterfly(__m512& a, __m512& b) {
  const __m512 sum = _mm512_add_ps(a, b);
  b = _mm512_sub_ps(a, b);
  a = sum;
}

// The transform without the scaling, n a power of two >= 64.
void butterflies_avx512(float* x, int64_t n) {
  for (int64_t k = 0; k < n; k += 64) {  // stages 1 to 32
    __m512 v0 = stages_1_to_8(_mm512_loadu_ps(x + k)), v1 = stages_1_to_8(_mm512_loadu_ps(x + k + 16));
    __m512 v2 = stages_1_to_8(_mm512_loadu_ps(x + k + 32)), v3 = stages_1_to_8(_mm512_loadu_ps(x + k + 48));
    butterfly(v0, v1), butterfly(v2, v3);  // stage 16
    butterfly(v0, v2), butterfly(v1, v3);  // stage 32
    _mm512_storeu_ps(x + k, v0), _mm512_storeu_ps(x + k + 16, v1);
    _mm512_storeu_ps(x + k + 32, v2), _mm512_storeu_ps(x + k + 48, v3);
  }
  int64_t half = 64;
  for (; 4 * half <= n; half *= 4)  // stages half and 2 half in one pass: groups of four quarters
    for (int64_t block = 0; block < n; block += 4 * half)
      for (int64_t k = block; k < block + half; k += 16) {
        __m512 v0 = _mm512_loadu_ps(x + k), v1 = _mm512_loadu_ps(x + k + half);
        __m512 v2 = _mm512_loadu_ps(x + k + 2 * half), v3 = _mm512_loadu_ps(x + k + 3 * half);
        butterfly(v0, v1), butterfly(v2, v3);  // stage half
        butterfly(v0, v2), butterfly(v1, v3);  // stage 2 half
        _mm512_storeu_ps(x + k, v0), _mm512_storeu_ps(x + k + half, v1);
        _mm512_storeu_ps(x + k + 2 * half, v2), _mm512_storeu_ps(x + k + 3 * half, v3);
      }
  if (half < n)  // one stage left: half = n / 2
    for (int64_t k = 0; k < half; k += 16) {
      __m512 a = _mm512_loadu_ps(x + k), b = _mm512_loadu_ps(x + k + half);
      butterfly(a, b);
      _mm512_storeu_ps(x + k, a), _mm512_storeu_ps(x + k + half, b);
    }
}

#endif

}  // namespace

int64_t next_power_of_two(int64_t n) {
  QNN_CHECK(n >= 1 && n <= (int64_t(1) << 62), "needs 1 <= n <= 2^62, got ", n);
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}

void walsh_hadamard(float* x, int64_t n) {
  QNN_CHECK(n >= 1 && (n & (n - 1)) == 0, "length must be a power of two, got ", n);
#if defined(__AVX512F__)
  if (n >= 64) butterflies_avx512(x, n);
  else butterflies_plain(x, n);
#else
  butterflies_plain(x, n);
#endif
  const float scale = float(1.0 / std::sqrt(double(n)));
  for (int64_t k = 0; k < n; ++k) x[k] *= scale;
}

}  // namespace qnn
