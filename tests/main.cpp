// The test runner: doctest's main. Tests mirror the source tree (tests/tensor, tests/autograd...).
// Tests that need data or a GPU print why they skip and pass: see tests/README.md.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest.h>
