// The AVX-512 intrinsics, for the files whose loops use them where the build has AVX-512
// (`#if defined(__AVX512F__)` around each such loop, with the plain loop beside it).
//
// GCC 12 reports the deliberately undefined pass-through operands inside its own AVX-512
// intrinsics (shuffles, permutes, shifts) as (maybe-)uninitialized; the warning is about the
// header, not the code that includes this one, so it is silenced for the rest of that file.
#pragma once
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif
