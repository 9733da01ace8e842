// ./apps/cifar as a user meets it: --help, bad flags and values (usage, exit 2), missing data
// (exit 1, the folder named, `make cifar10` suggested). Run from the repository root (make test).
#include <doctest.h>

#include "tests/apps/run_command.h"

TEST_CASE("cifar cli: --help lists every flag with its default") {
  CommandResult r = run_command("./apps/cifar --help");
  CHECK(r.exit_code == 0);
  for (const char* flag : {"--arch", "--epochs", "--batch-size", "--lr", "--momentum", "--wd", "--nesterov",
                           "--schedule", "--milestones", "--seed", "--data", "--device", "--workers",
                           "--checkpoint", "--resume", "--evaluate", "--log", "--limit-train", "--limit-test",
                           "--quant", "--bucket-size", "--quant-levels", "--quant-bits", "--quant-sample",
                           "--variance-steps", "--variance-schemes"})
    CHECK_MESSAGE(r.output.find(flag) != std::string::npos, flag);
  CHECK(r.output.find("(default: resnet20)") != std::string::npos);
}

TEST_CASE("cifar cli: bad flags and values exit 2 with the usage line") {
  struct Case {
    const char* args;
    const char* message;
  };
  for (Case c : {Case{"--frobnicate", "unknown flag '--frobnicate'"},
                 Case{"--epochs ten", "bad value 'ten' for --epochs"},
                 Case{"--epochs", "--epochs needs a value"},
                 Case{"--quant zipml", "valid: none, standard, exponential"},
                 Case{"--quant standard --quant-levels 1", "--quant-levels must be between 2 and 65536, got 1"},
                 Case{"--quant standard --bucket-size 0", "--bucket-size must be between 1 and"},
                 Case{"--quant qsgd --quant-bits 2 --quant-levels 8", "does not fit in --quant-bits 2"},
                 Case{"--variance-steps 5 --variance-schemes standard,bogus", "unknown quantizer 'bogus'"},
                 Case{"--arch resnet18", "valid: resnet20, resnet32"},
                 Case{"--schedule linear", "valid: multistep, cosine, onecycle"},
                 Case{"--device tpu", "valid: auto, cpu, cuda"},
                 Case{"--milestones 5,x", "bad --milestones"},
                 Case{"--batch-size 0", "--batch-size must be between 1 and 65536, got 0"}}) {
    CommandResult r = run_command(std::string("./apps/cifar ") + c.args);
    CHECK_MESSAGE(r.exit_code == 2, c.args);
    CHECK_MESSAGE(r.output.find(c.message) != std::string::npos, c.args << " -> " << r.output);
    CHECK(r.output.find("usage: cifar") != std::string::npos);
  }
}

TEST_CASE("cifar cli: missing data names the folder and the fix") {
  CommandResult r = run_command("./apps/cifar --data /nonexistent/cifar --epochs 1");
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("/nonexistent/cifar") != std::string::npos);
  CHECK(r.output.find("make cifar10") != std::string::npos);
}
