// A stand-in for OpenMP's <omp.h> in builds without OpenMP (`make OPENMP=0`): the few runtime
// calls the library makes, answered for a single thread, so the parallel loops run serially
// without libgomp. The Makefile puts this folder on the include path only in such builds;
// the `#pragma omp parallel` lines are then ignored by the compiler.
#pragma once

inline int omp_get_thread_num() { return 0; }
inline int omp_get_num_threads() { return 1; }
inline int omp_get_max_threads() { return 1; }
inline int omp_in_parallel() { return 0; }
inline void omp_set_num_threads(int) {}
