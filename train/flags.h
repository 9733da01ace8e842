// A small command-line parser for the apps: declare flags with defaults, ranges and help, parse,
// done.
//
//   Flags f("cifar", "Train a ResNet on CIFAR-10.");
//   auto& epochs = f.add_int("--epochs", 200, "number of epochs", 1, 1000000);
//   f.parse(argc, argv);   // --help prints every flag with its default and exits 0;
//                          // an unknown flag or a bad value prints the usage line and exits 2
//
// Values are written "--name value" or "--name=value". Every value is checked whole, so a typo
// never becomes a default in disguise:
//   integers   decimal, within int64 and the flag's [min, max]  ("--epochs 1e3", "--epochs 99999999999999999999" are errors)
//   floats     finite, within the flag's [min, max]             ("--lr inf", "--wd 1e400", "--lr nan" are errors)
//   booleans   "--flag" alone is on; "--flag=yes|true|on|1" and "--flag=no|false|off|0" set it;
//              any other "=value" is an error
// parse_args() throws FlagError instead of exiting, for callers (and fuzz targets) that want the
// message; parse() prints it with the usage line and exits 2. was_set() says whether the command
// line gave a flag, and value_text() / set_value() write and read back any flag's value, so that
// an app can record its settings in a checkpoint and take those not given again from it.
// withhold() takes flags that shared code declares off an app that has no use for them: they keep
// their defaults, leave the usage line and --help, and the command line may not give them.
#pragma once
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <functional>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace qnn {

// A flag value such as "81,122,164" split at its commas ("" gives none; empty items are kept,
// so that the caller can reject them).
inline std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (!text.empty()) {
    const size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// A bad command line: the message names the flag, what was expected and what was found.
struct FlagError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses a whole decimal integer; false on anything else (empty, trailing text, outside int64).
inline bool parse_int64(const std::string& text, int64_t& value) {
  if (text.empty() || text.size() > 64) return false;
  char* end = nullptr;
  errno = 0;
  const long long parsed = std::strtoll(text.c_str(), &end, 10);
  if (*end != '\0' || errno == ERANGE || std::isspace(static_cast<unsigned char>(text[0]))) return false;
  value = parsed;
  return true;
}

// Parses a whole finite number (decimal or scientific); false on anything else, inf and nan
// included, and on values that overflow a double.
inline bool parse_finite_double(const std::string& text, double& value) {
  if (text.empty() || text.size() > 64 || std::isspace(static_cast<unsigned char>(text[0]))) return false;
  char* end = nullptr;
  const double parsed = std::strtod(text.c_str(), &end);
  // Overflow gives +-HUGE_VAL, which is not finite; underflow gives 0 or a subnormal number,
  // both finite and kept (strtod's ERANGE does not tell the two apart).
  if (*end != '\0' || !std::isfinite(parsed)) return false;
  value = parsed;
  return true;
}

class Flags {
 public:
  Flags(std::string program, std::string description)
      : program_(std::move(program)), description_(std::move(description)) {}

  std::string& add_string(const std::string& name, std::string value, const std::string& help) {
    strings_.push_back(std::move(value));
    std::string* target = &strings_.back();
    add(name, "STR", *target, help, [target](const std::string& v) { *target = v; }, [target] { return *target; });
    return *target;
  }

  int64_t& add_int(const std::string& name, int64_t value, const std::string& help,
                   int64_t min = std::numeric_limits<int64_t>::min(), int64_t max = std::numeric_limits<int64_t>::max()) {
    ints_.push_back(value);
    int64_t* target = &ints_.back();
    add(name, "N", std::to_string(value), help, [=](const std::string& v) {
      int64_t parsed = 0;
      if (!parse_int64(v, parsed)) throw FlagError("bad value '" + v + "' for " + name + " (expected a whole number)");
      if (parsed < min || parsed > max)
        throw FlagError(name + " must be " + range_text(std::to_string(min), std::to_string(max)) + ", got " + v);
      *target = parsed;
    }, [target] { return std::to_string(*target); });
    return *target;
  }

  double& add_float(const std::string& name, double value, const std::string& help,
                    double min = -std::numeric_limits<double>::max(), double max = std::numeric_limits<double>::max()) {
    floats_.push_back(value);
    double* target = &floats_.back();
    add(name, "X", number_text(value), help, [=](const std::string& v) {
      double parsed = 0;
      if (!parse_finite_double(v, parsed))
        throw FlagError("bad value '" + v + "' for " + name + " (expected a finite number)");
      if (parsed < min || parsed > max)
        throw FlagError(name + " must be " + range_text(number_text(min), number_text(max)) + ", got " + v);
      *target = parsed;
    }, [target] { return round_trip_text(*target); });
    return *target;
  }

  bool& add_bool(const std::string& name, const std::string& help) {
    bools_.push_back(false);
    bool* target = &bools_.back();
    add(name, "", "off", help, [=](const std::string& v) {
      if (v == "" || v == "yes" || v == "true" || v == "on" || v == "1") *target = true;
      else if (v == "no" || v == "false" || v == "off" || v == "0") *target = false;
      else throw FlagError("bad value '" + v + "' for " + name + " (a switch: " + name + ", or " + name + "=yes|no)");
    }, [target] { return std::string(*target ? "yes" : "no"); });
    flags_.back().takes_value = false;
    return *target;
  }

  // Parses the arguments (without the program name), throwing FlagError on the first bad one.
  // Returns false when --help or -h was given (nothing else is parsed then).
  bool parse_args(const std::vector<std::string>& args) {
    for (size_t i = 0; i < args.size(); ++i) {
      std::string arg = args[i], value;
      if (arg == "--help" || arg == "-h") return false;
      const size_t eq = arg.find('=');
      const bool inline_value = eq != std::string::npos;
      if (inline_value) value = arg.substr(eq + 1), arg = arg.substr(0, eq);
      Flag* flag = find(arg);
      if (!flag) throw FlagError("unknown flag '" + arg + "'");
      if (!flag->withheld.empty()) throw FlagError(arg + ": " + flag->withheld);
      if (flag->takes_value && !inline_value) {
        if (i + 1 >= args.size()) throw FlagError(arg + " needs a value (" + flag->metavar + ")");
        value = args[++i];
      }
      flag->set(value);
      given_.insert(arg);
    }
    return true;
  }

  // Parses argv; prints help and exits 0 for --help, prints the error and exits 2 on bad input.
  void parse(int argc, char** argv) {
    bool run = false;
    try {
      run = parse_args(std::vector<std::string>(argv + 1, argv + argc));
    } catch (const FlagError& e) {
      fail(e.what());
    }
    if (!run) {
      print_help();
      std::exit(0);
    }
  }

  // Withholds the flags `names` from the command line; giving one is an error that says `why`.
  void withhold(const std::vector<std::string>& names, const std::string& why) {
    for (const std::string& name : names) {
      Flag* flag = find(name);
      if (!flag) throw FlagError("no flag named '" + name + "'");
      flag->withheld = why;
    }
  }

  // Whether the command line gave this flag.
  bool was_set(const std::string& name) const { return given_.count(name) > 0; }

  // The flag's current value as text that set_value() reads back exactly ("yes"/"no" for
  // switches, floats with the fewest digits that read back exactly).
  std::string value_text(const std::string& name) const { return get_flag(name).get(); }

  // Sets a flag from text as the command line would, with the same checks (throws FlagError);
  // was_set() stays false: the value did not come from the command line.
  void set_value(const std::string& name, const std::string& text) { get_flag(name).set(text); }

  // Prints "program: message", the usage line and a pointer to --help, then exits with 2.
  [[noreturn]] void fail(const std::string& message) const {
    std::fprintf(stderr, "%s: %s\n%s\nRun '%s --help' for every flag.\n", program_.c_str(), message.c_str(),
                 usage().c_str(), program_.c_str());
    std::exit(2);
  }

  std::string usage() const {
    std::string u = "usage: " + program_;
    for (const Flag& f : flags_)
      if (f.withheld.empty()) u += " [" + f.name + (f.takes_value ? " " + f.metavar : "") + "]";
    return u;
  }

  void print_help() const {
    std::printf("%s\n\n%s\n\nflags:\n", usage().c_str(), description_.c_str());
    for (const Flag& f : flags_) {
      if (!f.withheld.empty()) continue;
      std::string left = "  " + f.name + (f.takes_value ? " " + f.metavar : "");
      std::printf("%-28s %s (default: %s)\n", left.c_str(), f.help.c_str(), f.default_text.empty() ? "\"\"" : f.default_text.c_str());
    }
  }

 private:
  struct Flag {
    std::string name, metavar, default_text, help;
    std::function<void(const std::string&)> set;  // throws FlagError on a bad value
    std::function<std::string()> get;
    bool takes_value = true;
    std::string withheld;  // why the command line may not give it, or empty
  };
  void add(const std::string& name, const std::string& metavar, const std::string& default_text,
           const std::string& help, std::function<void(const std::string&)> set, std::function<std::string()> get) {
    flags_.push_back({name, metavar, default_text, help, std::move(set), std::move(get), true, {}});
  }
  const Flag& get_flag(const std::string& name) const {
    for (const Flag& f : flags_)
      if (f.name == name) return f;
    throw FlagError("no flag named '" + name + "'");
  }
  Flag* find(const std::string& name) {
    for (Flag& f : flags_)
      if (f.name == name) return &f;
    return nullptr;
  }
  // The shortest %g text (15 to 17 digits) that reads back as exactly `v`: 0.1, not 0.10000000000000001.
  static std::string round_trip_text(double v) {
    char text[32];
    for (int digits = 15; digits <= 17; ++digits) {
      std::snprintf(text, sizeof text, "%.*g", digits, v);
      if (std::strtod(text, nullptr) == v) break;
    }
    return text;
  }
  static std::string number_text(double v) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", v);
    return text;
  }
  // "between 1 and 1000", ">= 0", "<= 5" or "a number", leaving out the type's own limits.
  static std::string range_text(const std::string& min, const std::string& max) {
    const bool no_min = min == std::to_string(std::numeric_limits<int64_t>::min()) || min == number_text(-std::numeric_limits<double>::max());
    const bool no_max = max == std::to_string(std::numeric_limits<int64_t>::max()) || max == number_text(std::numeric_limits<double>::max());
    if (no_min && no_max) return "a number";
    if (no_min) return "<= " + max;
    if (no_max) return ">= " + min;
    return "between " + min + " and " + max;
  }

  std::string program_, description_;
  std::vector<Flag> flags_;
  std::set<std::string> given_;
  std::deque<std::string> strings_;  // deques keep the returned references valid
  std::deque<int64_t> ints_;
  std::deque<double> floats_;
  std::deque<bool> bools_;
};

}  // namespace qnn
