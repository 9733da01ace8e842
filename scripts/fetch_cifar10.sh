#!/bin/sh
# Downloads the official CIFAR-10 binary archive into DIR, checks its md5, and unpacks
# it to DIR/cifar-10-batches-bin/ (what `make cifar10` runs, with DIR = data).
# The download goes to a temporary file that is renamed only once complete and verified, so an
# interrupted or corrupted transfer never looks like a good archive. Does nothing when the six
# batch files are already there with the right sizes.
#   sh scripts/fetch_cifar10.sh DIR
set -eu

url=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
md5_expected=c32a1d4ab5d03f1284b67883e8d87530
batch_bytes=30730000
files="data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin"

fail() { echo "fetch_cifar10.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || fail "usage: sh scripts/fetch_cifar10.sh DIR"
dir=$1
out=$dir/cifar-10-batches-bin
archive=$dir/cifar-10-binary.tar.gz

complete() {
  for f in $files; do
    [ -f "$out/$f" ] && [ "$(wc -c < "$out/$f")" -eq $batch_bytes ] || return 1
  done
}
if complete; then echo "fetch_cifar10.sh: $out already holds CIFAR-10"; exit 0; fi

md5_of() {
  if command -v md5sum > /dev/null; then md5sum "$1" | cut -d' ' -f1; else md5 -q "$1"; fi
}

mkdir -p "$dir"
if [ ! -f "$archive" ]; then
  command -v curl > /dev/null || fail "curl not found: install it, or download $url into $dir by hand"
  partial=$archive.part
  trap 'rm -f "$partial"; exit 1' INT TERM HUP
  echo "fetch_cifar10.sh: downloading $url (170 MB) into $dir"
  if ! curl --fail --location --connect-timeout 10 --retry 2 --retry-delay 2 \
       --output "$partial" "$url"; then
    rm -f "$partial"
    fail "download of $url failed (no internet connection?). Download it by hand into $dir" \
         "and run this again, or point --data / CIFAR10_DIR at an unpacked cifar-10-batches-bin."
  fi
  md5_found=$(md5_of "$partial")
  if [ "$md5_found" != $md5_expected ]; then
    size_found=$(wc -c < "$partial" | tr -d ' ')
    rm -f "$partial"
    fail "$url: md5 expected $md5_expected, found $md5_found ($size_found bytes:" \
         "truncated or corrupted download?); run again"
  fi
  mv "$partial" "$archive"
else
  md5_found=$(md5_of "$archive")
  [ "$md5_found" = $md5_expected ] ||
    fail "$archive: md5 expected $md5_expected, found $md5_found; delete it and run again"
fi

tar -xzf "$archive" -C "$dir" || fail "could not unpack $archive"
complete || fail "$archive unpacked, but $out does not hold the six batch files of $batch_bytes bytes"
echo "fetch_cifar10.sh: CIFAR-10 ready in $out"
