// gradcheck itself: it passes a correct gradient and catches a wrong one, naming the element.
#include "tensor/elementwise.h"
#include "tests/autograd/helpers.h"

using namespace qnn;
using namespace qnn::testing;

namespace {

// y = x^2 element-wise with a backward that claims dy/dx = 3x (wrong on purpose).
Variable wrong_square(const Variable& x) {
  return make_op_result("wrong_square", mul(x.value(), x.value()), {x}, [](Node& self) {
    Node& in = *self.inputs[0];
    accumulate_grad(in, scale(mul(self.grad, in.value), 3.0f));
  });
}

}  // namespace

TEST_CASE("gradcheck: accepts a correct gradient, reports a wrong one") {
  const Tensor x = away_from_zero({2, 3}, 61);
  CHECK(gradcheck([](const std::vector<Variable>& v) { return mul(v[0], v[0]); }, {x}).ok);
  const GradcheckResult r = gradcheck([](const std::vector<Variable>& v) { return wrong_square(v[0]); }, {x});
  CHECK(!r.ok);
  CHECK(r.report.find("input 0 [2, 3] element 0: analytic") != std::string::npos);
  // A function that ignores an input has a zero gradient for it, and gradcheck agrees.
  CHECK(gradcheck([](const std::vector<Variable>& v) { return scale(v[0], 2); }, {x, x}).ok);
}
