// The apps' flag parser (train/flags.h): every value is checked whole, ranges are enforced,
// non-finite numbers and malformed switches are errors, and was_set() tells given flags apart.
#include <doctest.h>

#include "train/flags.h"

using namespace qnn;

namespace {

struct Parsed {
  Flags flags{"t", "test"};
  int64_t& epochs = flags.add_int("--epochs", 200, "epochs", 1, 1000000);
  int64_t& seed = flags.add_int("--seed", 0, "seed");
  double& lr = flags.add_float("--lr", 0.1, "lr", 0, 1e6);
  bool& nesterov = flags.add_bool("--nesterov", "nesterov");
  std::string& name = flags.add_string("--name", "x", "name");
};

std::string error_of(const std::vector<std::string>& args) {
  Parsed p;
  try {
    p.flags.parse_args(args);
  } catch (const FlagError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("flags: values in both spellings, defaults kept, was_set") {
  Parsed p;
  CHECK(p.flags.parse_args({"--epochs", "30", "--lr=0.05", "--nesterov", "--name", "-x"}));
  CHECK(p.epochs == 30);
  CHECK(p.lr == doctest::Approx(0.05));
  CHECK(p.nesterov);
  CHECK(p.name == "-x");
  CHECK(p.seed == 0);
  CHECK(p.flags.was_set("--epochs"));
  CHECK(p.flags.was_set("--lr"));
  CHECK_FALSE(p.flags.was_set("--seed"));
  Parsed h;
  CHECK_FALSE(h.flags.parse_args({"--epochs", "3", "--help"}));
}

TEST_CASE("flags: switches take yes/no spellings and nothing else") {
  for (const char* on : {"--nesterov", "--nesterov=yes", "--nesterov=true", "--nesterov=1", "--nesterov=on"}) {
    Parsed p;
    p.flags.parse_args({on});
    CHECK_MESSAGE(p.nesterov, on);
  }
  for (const char* off : {"--nesterov=no", "--nesterov=false", "--nesterov=0", "--nesterov=off"}) {
    Parsed p;
    p.flags.parse_args({"--nesterov", off});
    CHECK_MESSAGE(!p.nesterov, off);
  }
  CHECK(error_of({"--nesterov=maybe"}).find("bad value 'maybe' for --nesterov") != std::string::npos);
}

TEST_CASE("flags: integers are whole, within int64 and within the flag's range") {
  CHECK(error_of({"--epochs", "ten"}).find("bad value 'ten' for --epochs") != std::string::npos);
  CHECK(error_of({"--epochs", "1e3"}).find("bad value '1e3'") != std::string::npos);
  CHECK(error_of({"--epochs", " 5"}).find("bad value") != std::string::npos);
  CHECK(error_of({"--epochs", ""}).find("bad value") != std::string::npos);
  CHECK(error_of({"--epochs", "99999999999999999999"}).find("bad value") != std::string::npos);
  CHECK(error_of({"--seed", "-99999999999999999999"}).find("bad value") != std::string::npos);
  CHECK(error_of({"--epochs", "0"}) == "--epochs must be between 1 and 1000000, got 0");
  CHECK(error_of({"--epochs", "4294967312"}).find("must be between 1 and 1000000") != std::string::npos);
  CHECK(error_of({"--seed", "-5"}).empty());
}

TEST_CASE("flags: floats must be finite and in range") {
  for (const char* bad : {"inf", "-inf", "nan", "NaN", "1e400", "0x", "0.1.2", "1e", ""})
    CHECK_MESSAGE(error_of({"--lr", bad}).find("expected a finite number") != std::string::npos, bad);
  CHECK(error_of({"--lr", "-0.1"}) == "--lr must be between 0 and 1e+06, got -0.1");
  CHECK(error_of({"--lr", "1e-400"}).empty());  // underflows to 0, a valid learning rate
  // Subnormal values are finite numbers too (strtod flags them ERANGE, as it does overflow).
  for (const char* tiny : {"1e-310", "4.9e-324", "2.2250738585072009e-308"}) {
    Parsed p;
    CHECK_MESSAGE(p.flags.parse_args({"--lr", tiny}), tiny);
    CHECK_MESSAGE(p.lr == std::strtod(tiny, nullptr), tiny);
    CHECK(p.lr > 0);
  }
}

TEST_CASE("flags: unknown flags and missing values") {
  CHECK(error_of({"--frobnicate"}) == "unknown flag '--frobnicate'");
  CHECK(error_of({"--epochs"}) == "--epochs needs a value (N)");
  CHECK(error_of({"positional"}) == "unknown flag 'positional'");
}

TEST_CASE("flags: withheld flags keep their defaults, leave the usage line and are refused with the reason") {
  Parsed p;
  p.flags.withhold({"--lr", "--nesterov"}, "this app has no use for it");
  CHECK(p.flags.usage() == "usage: t [--epochs N] [--seed N] [--name STR]");
  auto refusal = [&](const std::vector<std::string>& args) {
    try {
      p.flags.parse_args(args);
    } catch (const FlagError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(refusal({"--lr", "0.5"}) == "--lr: this app has no use for it");
  CHECK(refusal({"--nesterov=yes"}) == "--nesterov: this app has no use for it");
  CHECK(p.lr == 0.1);
  CHECK_FALSE(p.nesterov);
  CHECK(refusal({"--epochs", "3"}).empty());  // the others parse as before
  CHECK(p.epochs == 3);
  p.flags.set_value("--lr", "0.25");  // a checkpoint's recorded value still reads back
  CHECK(p.flags.value_text("--lr") == "0.25");
  CHECK_THROWS_AS(p.flags.withhold({"--nothing"}, "why"), FlagError);
}

TEST_CASE("flags: value_text reads back exactly through set_value, which checks like the command line") {
  Parsed a;
  a.flags.parse_args({"--epochs", "30", "--lr", "0.1", "--nesterov", "--name", "run 1"});
  Parsed b;
  for (const char* name : {"--epochs", "--seed", "--lr", "--nesterov", "--name"})
    b.flags.set_value(name, a.flags.value_text(name));
  CHECK(b.epochs == 30);
  CHECK(b.lr == a.lr);  // bit for bit
  CHECK(a.flags.value_text("--lr") == "0.1");
  b.flags.set_value("--lr", "0.30000000000000004");
  CHECK(b.flags.value_text("--lr") == "0.30000000000000004");
  CHECK(b.nesterov);
  CHECK(b.name == "run 1");
  CHECK_FALSE(b.flags.was_set("--epochs"));
  CHECK(a.flags.value_text("--nesterov") == "yes");
  CHECK_THROWS_WITH_AS(b.flags.set_value("--epochs", "-1"), "--epochs must be between 1 and 1000000, got -1", FlagError);
  CHECK_THROWS_AS(b.flags.set_value("--nope", "1"), FlagError);
}
