// apps/quant_values.h: the values ./apps/quant quantizes are finite floats; anything else is a
// qnn::Error whose message names the word.
#include <doctest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "apps/quant_values.h"

using namespace qnn;

TEST_CASE("quant values: finite floats in every spelling strtof reads") {
  const std::vector<float> v =
      parse_quant_values({"0", "-1.5", "1e-3", "0x1p-4", "+2", "3.40282347e38", "-3.40282347e38", "1e-40", "1e-50", "-0"});
  REQUIRE(v.size() == 10);
  CHECK(v[0] == 0.0f);
  CHECK(v[1] == -1.5f);
  CHECK(v[2] == 1e-3f);
  CHECK(v[3] == 0.0625f);
  CHECK(v[4] == 2.0f);
  CHECK(v[5] == FLT_MAX);
  CHECK(v[6] == -FLT_MAX);
  CHECK(v[7] == 1e-40f);  // a denormal
  CHECK(v[8] == 0.0f);    // below the smallest float: rounds to 0, as a float literal does
  CHECK((v[9] == 0.0f && std::signbit(v[9])));
  CHECK(parse_quant_values({}).empty());
}

TEST_CASE("quant values: NaN, infinities, out-of-range and malformed words are errors naming the word") {
  struct Case {
    std::string word;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"nan", "value 'nan' is not a finite number"},
      {"NaN", "value 'NaN' is not a finite number"},
      {"-nan", "value '-nan' is not a finite number"},
      {"nan(123)", "value 'nan(123)' is not a finite number"},
      {"inf", "value 'inf' is not a finite number"},
      {"-Infinity", "value '-Infinity' is not a finite number"},
      {"1e39", "value '1e39' is out of float range"},
      {"-1e39", "value '-1e39' is out of float range"},
      {"3.5e38", "value '3.5e38' is out of float range"},
      {"0x1p200", "value '0x1p200' is out of float range"},
      {"1e400", "value '1e400' is out of float range"},
      {"", "value '' is not a number"},
      {"x", "value 'x' is not a number"},
      {"1.5x", "value '1.5x' is not a number"},
      {" 1", "value ' 1' is not a number"},
      {"1 ", "value '1 ' is not a number"},
      {std::string("1\0" "2", 3), "value '1\\x002' is not a number"},
      {"\xff", "value '\\xff' is not a number"},
      {"--", "value '--' is not a number"},
  };
  for (const Case& c : cases) {
    INFO("word '", c.word, "'");
    CHECK_THROWS_WITH_AS(parse_quant_value(c.word), doctest::Contains(c.message.c_str()), Error);
    CHECK_THROWS_WITH_AS(parse_quant_values({"1", c.word, "2"}), doctest::Contains(c.message.c_str()), Error);
  }
}
