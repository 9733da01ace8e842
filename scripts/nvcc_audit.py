#!/usr/bin/env python3
"""What nvcc makes of the CUDA kernels that the CUDA emulator cannot show (docs/cuda-emulator.md).
Needs nvcc, not a GPU. Two reports:

1. Multiply-adds that nvcc fuses on its own. The emulator compiles the kernels with g++
   -ffp-contract=off; nvcc (--fmad=true, its default) turns a * b + c into one fused multiply-add
   wherever it likes, which rounds once instead of twice. Code whose results must equal the CPU's
   bit for bit writes its fused steps as fma_rn() and the rest as mul_rn()/add_rn()
   (tensor/exact_math.h), which nvcc leaves alone; a fusion listed here in such code is a
   difference a GPU will show and the emulator will not, unless the product is exact (a float
   times a float in double, a product by a power of two), where fused or not gives the same bits.
   Each .cu file is compiled to PTX twice, with --fmad=true and --fmad=false, and the lines are
   those whose fma instructions appear only in the first, plus the products that the PTX leaves
   to ptxas to fuse (a mul and an add without a rounding mode, the one feeding the other).

2. Each kernel's registers, spills and static shared memory, and the largest block they allow:
   a launch of more threads than a multiprocessor's 65,536 registers hold fails on a GPU (too
   many resources requested), which the emulator, which has no registers, cannot see.

Usage: scripts/nvcc_audit.py [--arch 90] [FILE.cu ...]    (default: every .cu file of the library)
"""
import argparse
import collections
import concurrent.futures
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY_DIRS = ["tensor", "autograd", "nn", "optim", "data", "quant", "qat", "qinfer"]
REGISTERS_PER_SM = 65536
REGISTER_ALLOCATION_UNIT = 256  # registers are given to a warp in multiples of 256


def nvcc_command(nvcc, cudnn_include, source, *extra):
    return [nvcc, "-std=c++17", "-O3", "-DQNN_CUDA", "-I.", "-isystem", cudnn_include, "--expt-relaxed-constexpr",
            *extra, source]


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.splitlines()
    return dict(zip(names, out)) if len(out) == len(names) else {n: n for n in names}


def short(name):
    """A demangled kernel name without its parameter list and namespaces."""
    name = name.replace("(anonymous namespace)::", "")
    depth, cut = 0, len(name)
    for i, ch in enumerate(name):
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "(" and depth == 0:
            cut = i
            break
    name = name[:cut]
    return re.sub(r"\bqnn::(cuda::)?", "", name).replace("void ", "")


FMA = re.compile(r"\bfma\.rn(?:\.ftz)?(?:\.sat)?\.f(?:32|64)\b")
PLAIN_MUL = re.compile(r"\bmul(?:\.ftz)?\.f(?:32|64)\s+(%fd?\d+)")
PLAIN_ADD = re.compile(r"\b(?:add|sub)(?:\.ftz)?\.f(?:32|64)\s+%fd?\d+,\s*(%fd?\d+),\s*(%fd?\d+)")


def fusion_sites(ptx):
    """{kernel: Counter of (file, line)} for the fma instructions of each kernel, and for each
    product that ptxas may fuse (keyed ("ptxas", file, line))."""
    files = dict(re.findall(r'\.file\s+(\d+)\s+"([^"]+)"', ptx))
    sites = {}
    for entry in re.finditer(r"\.entry (\S+)\((.*?)\n\}", ptx, re.S):
        where, products, found = None, {}, collections.Counter()
        for line in entry.group(2).splitlines():
            loc = re.match(r"\s*\.loc\s+(\d+)\s+(\d+)", line)
            if loc:
                where = (files.get(loc.group(1), "?"), int(loc.group(2)))
                continue
            if FMA.search(line):
                found[where] += 1
            mul = PLAIN_MUL.search(line)
            if mul:
                products[mul.group(1)] = where
            add = PLAIN_ADD.search(line)
            if add and (add.group(1) in products or add.group(2) in products):
                found[("ptxas",) + (products.get(add.group(1)) or products.get(add.group(2)))] += 1
        sites[entry.group(1)] = found
    return sites


def resources(ptxas_output):
    """[(kernel, registers, static shared bytes, spilled bytes)] from ptxas -v."""
    kernels, kernel, spill = [], None, 0
    for line in ptxas_output.splitlines():
        m = re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            kernel, spill = m.group(1), 0
            continue
        m = re.search(r"(\d+) bytes spill stores", line)
        if m and kernel:
            spill = int(m.group(1))
        m = re.search(r"Used (\d+) registers", line)
        if m and kernel:
            shared = re.search(r"(\d+) bytes smem", line)
            kernels.append((kernel, int(m.group(1)), int(shared.group(1)) if shared else 0, spill))
            kernel = None
    return kernels


def largest_block(registers):
    per_warp = -(-registers * 32 // REGISTER_ALLOCATION_UNIT) * REGISTER_ALLOCATION_UNIT
    return min(1024, 32 * (REGISTERS_PER_SM // max(per_warp, 1)))


def audit(source, nvcc, cudnn_include, arch, work):
    stem = os.path.join(work, source.replace("/", "_"))
    ptx = {}
    for fmad in ("true", "false"):
        out = f"{stem}.{fmad}.ptx"
        subprocess.run(nvcc_command(nvcc, cudnn_include, source, f"-arch=compute_{arch}", f"-fmad={fmad}",
                                    "-lineinfo", "-ptx", "-o", out), check=True, cwd=ROOT)
        ptx[fmad] = open(out).read()
    built = subprocess.run(nvcc_command(nvcc, cudnn_include, source, f"-arch=sm_{arch}", "-Xptxas", "-v",
                                        "-cubin", "-o", f"{stem}.cubin"),
                           check=True, cwd=ROOT, capture_output=True, text=True)
    fused, exact = fusion_sites(ptx["true"]), fusion_sites(ptx["false"])
    found = {}
    for kernel, sites in fused.items():
        extra = sites - exact.get(kernel, collections.Counter())
        if extra:
            found[kernel] = extra
    return found, resources(built.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="90", help="compute capability without the dot (default 90)")
    parser.add_argument("files", nargs="*", help=".cu files (default: every one of the library)")
    args = parser.parse_args()
    cuda_home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    nvcc = shutil.which("nvcc") or os.path.join(cuda_home, "bin", "nvcc")
    if not os.access(nvcc, os.X_OK):
        sys.exit("nvcc_audit: nvcc not found on PATH or in $CUDA_HOME/bin")
    cudnn_include = os.environ.get("CUDNN_INCLUDE", os.path.join(cuda_home, "include"))
    files = args.files or sorted(f for d in LIBRARY_DIRS for f in glob.glob(os.path.join(d, "*.cu"), root_dir=ROOT))
    with tempfile.TemporaryDirectory() as work, concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        results = dict(zip(files, pool.map(lambda f: audit(f, nvcc, cudnn_include, args.arch, work), files)))

    kernels = [k for found, _ in results.values() for k in found] + \
              [r[0] for _, res in results.values() for r in res]
    names = demangle(sorted(set(kernels)))
    source_lines = {}

    def text_of(path, line):
        if path not in source_lines:
            try:
                source_lines[path] = open(path).read().splitlines()
            except OSError:
                source_lines[path] = []
        lines = source_lines[path]
        return lines[line - 1].strip() if 0 < line <= len(lines) else ""

    print(f"1. Multiply-adds nvcc fuses on its own (sm_{args.arch}), by source line; the kernels that hold them")
    for source, (found, _) in results.items():
        by_line = collections.defaultdict(set)
        for kernel, sites in found.items():
            for site in sites:
                by_ptxas = site[0] == "ptxas"
                path, line = site[1:] if by_ptxas else site
                by_line[(os.path.relpath(path, ROOT), line, by_ptxas)].add(short(names[kernel]))
        for (path, line, by_ptxas), owners in sorted(by_line.items()):
            how = "ptxas may fuse" if by_ptxas else "fused"
            print(f"  {path}:{line}: {how}: {text_of(os.path.join(ROOT, path), line)}")
            print(f"      in {', '.join(sorted(owners)[:4])}{' and %d more' % (len(owners) - 4) if len(owners) > 4 else ''}")

    print(f"\n2. Kernels whose registers allow fewer than 1024 threads per block, or that spill (sm_{args.arch})")
    listed = 0
    for source, (_, res) in results.items():
        for kernel, registers, shared, spill in res:
            block = largest_block(registers)
            if block < 1024 or spill:
                listed += 1
                print(f"  {source}: {short(names[kernel])}: {registers} registers, {shared} bytes of static shared "
                      f"memory, {spill} bytes spilled: at most {block} threads per block")
    total = sum(len(res) for _, res in results.values())
    print(f"  ({listed} of {total} kernels; check each one's launches against its limit)")


if __name__ == "__main__":
    main()
