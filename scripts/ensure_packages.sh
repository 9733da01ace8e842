#!/bin/sh
# Checks that the headers the build needs are there and, when they are missing from Debian's
# folders, installs their Debian packages (as root, or through `sudo -n` when that needs no
# password) or stops with the one command to run. The Makefile calls it before compiling.
#
#   sh scripts/ensure_packages.sh GROUP...            install what GROUP needs, or say how
#   sh scripts/ensure_packages.sh --missing GROUP...  print the groups with a missing header
#
# Groups, with the make variable that names each header folder (the environment passes it):
#   build  libstb-dev   STB_INCLUDE (default /usr/include/stb): stb_image.h, stb_image_write.h,
#                       stb_easy_font.h (train/plot.h writes PNGs, the tests read them back)
#   test   doctest-dev  DOCTEST_INCLUDE (default /usr/include/doctest): doctest.h
# libturbojpeg0-dev (turbojpeg.h) is optional and not checked here: without it the Makefile
# decodes JPEGs with stb_image alone.
# A folder given by the user (not Debian's) that lacks a header is an error naming the variable:
# installing the package would not put the header there.
set -eu

me="qnn build"
fail() { echo "$me: $*" >&2; exit 1; }

stb_default=/usr/include/stb
doctest_default=/usr/include/doctest

# Prints "PACKAGE VARIABLE FOLDER DEFAULT HEADER..." for a group; callers split it into words
# (folders with spaces are not supported, as in the Makefile's -isystem flags).
group_spec() {
  case $1 in
    build) echo "libstb-dev STB_INCLUDE ${STB_INCLUDE:-$stb_default} $stb_default" \
                "stb_image.h stb_image_write.h stb_easy_font.h" ;;
    test) echo "doctest-dev DOCTEST_INCLUDE ${DOCTEST_INCLUDE:-$doctest_default} $doctest_default" \
               "doctest.h" ;;
    *) fail "scripts/ensure_packages.sh: unknown group '$1' (expected build or test)" ;;
  esac
}

# The first header of the group missing from its folder, or nothing.
first_missing() {
  # shellcheck disable=SC2046
  set -- $(group_spec "$1")
  folder=$3
  shift 4
  for header in "$@"; do
    [ -f "$folder/$header" ] || { echo "$folder/$header"; return; }
  done
}

missing_only=0
if [ "${1:-}" = --missing ]; then missing_only=1; shift; fi
[ $# -gt 0 ] || fail "usage: sh scripts/ensure_packages.sh [--missing] GROUP... (build, test)"
for group in "$@"; do group_spec "$group" > /dev/null; done

if [ $missing_only = 1 ]; then
  out=
  for group in "$@"; do
    [ -z "$(first_missing "$group")" ] || out="$out $group"
  done
  echo "${out# }"
  exit 0
fi

# The package that provides a group's missing header; an error when the header's folder is the
# user's own (installing would not put the header there).
package_for() {
  header=$(first_missing "$1")
  [ -n "$header" ] || return 0
  # shellcheck disable=SC2046
  set -- $(group_spec "$1")
  if [ "$3" != "$4" ]; then
    fail "$2=$3 but $header is not there; point $2 at the folder holding it," \
         "or leave $2 unset to use Debian's $1 in $4"
  fi
  echo "$1"
}

groups="$*"
packages=
reasons=
for group in $groups; do
  package=$(package_for "$group") || exit 1
  [ -n "$package" ] || continue
  packages="$packages $package"
  reasons="$reasons, $(first_missing "$group") not found"
done
packages=${packages# }
reasons=${reasons#, }
[ -n "$packages" ] || exit 0

# Runs a command as root: directly when we are root, else through sudo without a password.
if [ "$(id -u)" = 0 ]; then
  sudo=
  as_root() { "$@"; }
elif command -v sudo > /dev/null 2>&1 && sudo -n true > /dev/null 2>&1; then
  sudo="sudo -n "
  as_root() { sudo -n env DEBIAN_FRONTEND=noninteractive "$@"; }
else
  fail "missing Debian packages: $packages ($reasons). Install them with
  sudo apt-get install -y $packages
and run make again (or point STB_INCLUDE / DOCTEST_INCLUDE at folders holding the headers)."
fi
command -v apt-get > /dev/null 2>&1 ||
  fail "missing $packages and apt-get not found (not Debian?): install the headers" \
       "and point STB_INCLUDE / DOCTEST_INCLUDE at their folders"

echo "$me: installing missing Debian packages: $packages (${sudo}apt-get install -y $packages)"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq ||
  fail "apt-get update failed; run: ${sudo}apt-get update && ${sudo}apt-get install -y $packages"
# $packages is a space-separated list of package names: split on purpose. dpkg's progress goes
# to /dev/null; errors still show.
# shellcheck disable=SC2086
as_root apt-get install -y -qq $packages > /dev/null ||
  fail "apt-get install failed; run: ${sudo}apt-get install -y $packages"

for group in $groups; do
  header=$(first_missing "$group")
  [ -z "$header" ] || fail "$packages installed, but $header is still missing"
done
