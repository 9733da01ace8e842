// The reductions in the kernels give bit-identical results for any number of threads, and the
// whole-tensor sum is accurate on long inputs.
#include <doctest.h>
#include <omp.h>

#include "tensor/batchnorm.h"
#include "tensor/elementwise.h"

using namespace qnn;

namespace {

// Runs f with 1 thread and with 2, returning both results.
template <class F>
auto with_threads(F f) {
  const int previous = omp_get_max_threads();
  omp_set_num_threads(1);
  auto one = f();
  omp_set_num_threads(2);
  auto two = f();
  omp_set_num_threads(previous);
  return std::make_pair(one, two);
}

}  // namespace

TEST_CASE("kernels: sum_all is exact enough and thread-count independent") {
  Tensor x = Tensor::uniform({1 << 20}, 0.0f, 1.0f, 3);
  auto [one, two] = with_threads([&] { return sum_all(x); });
  CHECK(one == two);
  double reference = 0;
  for (int64_t i = 0; i < x.numel(); ++i) reference += x.data()[i];
  CHECK(one == doctest::Approx(reference).epsilon(1e-12));
  CHECK(sum_all(Tensor::full({100001}, 0.1f)) == doctest::Approx(100001 * 0.1).epsilon(1e-6));
}

TEST_CASE("kernels: batch norm forward and backward are thread-count independent") {
  const Tensor x = Tensor::normal({8, 5, 6, 6}, 1.0f, 2.0f, 4);
  const Tensor dy = Tensor::normal({8, 5, 6, 6}, 0.0f, 1.0f, 5);
  const Tensor gamma = Tensor::full({5}, 1.5f), beta = Tensor::full({5}, -0.5f);
  auto run = [&] {
    Tensor rm = Tensor::zeros({5}), rv = Tensor::full({5}, 1.0f), mean, invstd;
    Tensor y = batch_norm_forward_training(x, gamma, beta, rm, rv, 0.1f, 1e-5f, mean, invstd);
    BatchNormGrads g = batch_norm_backward(dy, x, gamma, mean, invstd, true, true);
    std::vector<float> all = y.to_vector();
    for (const Tensor* t : {&rm, &rv, &g.dx, &g.dgamma, &g.dbeta})
      for (float v : t->to_vector()) all.push_back(v);
    return all;
  };
  auto [one, two] = with_threads(run);
  CHECK(one == two);
}
