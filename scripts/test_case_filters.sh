# Sourced by scripts/run_tests.sh and scripts/gpu_check.sh. test_case_filters BINARY [ARGS...]
# prints, one per line and in the binary's order, a doctest filter (-tc=) for each test case that
# passes ARGS' filters, matching that case alone: commas escaped, doctest's wildcards (* and ?)
# matched by a one-character wildcard.
test_case_filters() {
  "$@" -r=xml --list-test-cases 2>/dev/null |
    sed -n 's/.*<TestCase name="\([^"]*\)".*/\1/p' |
    sed 's/&lt;/</g; s/&gt;/>/g; s/&quot;/"/g; s/&apos;/'"'"'/g; s/&amp;/\&/g; s/,/\\,/g; s/[*?]/?/g'
}
