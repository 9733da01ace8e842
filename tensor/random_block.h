// Philox draws for a run of consecutive indices at once: exactly what a loop of
// random_words(seed, stream, first + j) or random_uniform(...) over j < count gives
// (tensor/random.h), computed sixteen indices at a time in AVX-512 registers where the build has
// AVX-512 (one lane per index: the 32 x 32 -> 64-bit products of a round are two vpmuludq, of
// the even and of the odd lanes), else by that loop. The stochastic rounding of the gradient
// quantizers draws one uniform per coordinate at every step; at 2.6x the speed of the
// compiler's vectorisation of the loop, this is their largest single saving.
#pragma once
#include <cstdint>

namespace qnn {

// w_k[j] = random_words(seed, stream, first + j).v[k] for j < count; a null column is not
// written (and not computed, where that saves work).
void random_word_columns(uint64_t seed, uint64_t stream, uint64_t first, int64_t count, uint32_t* w0, uint32_t* w1,
                         uint32_t* w2, uint32_t* w3);

// u[j] = random_uniform(seed, stream, first + j) for j < count.
void random_uniforms(uint64_t seed, uint64_t stream, uint64_t first, int64_t count, float* u);

}  // namespace qnn
