#!/usr/bin/env python3
"""classify.py: label images with a trained qnn model from Python, through the C API (qnn.h)
and ctypes alone: the standard library, no numpy, no ML package.

    python3 classify.py CHECKPOINT IMAGE.ppm...            top 3 classes of each image
    python3 classify.py CHECKPOINT test_batch.bin [LIMIT]  a CIFAR-10 batch file and its accuracy

The shared library is found in $QNN_LIB (a path to libqnn.so), else in the libdir pkg-config
gives for qnn, else by the system's library search. The same inputs as examples/classify.c
(which explains the PPM and CIFAR-10 formats) give the same output.
"""
import ctypes
import ctypes.util
import os
import subprocess
import sys

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def load_library():
    path = os.environ.get("QNN_LIB")
    if not path:
        try:
            libdir = subprocess.run(["pkg-config", "--variable=libdir", "qnn"], capture_output=True, text=True,
                                    check=True).stdout.strip()
            path = os.path.join(libdir, "libqnn.so")
        except (OSError, subprocess.CalledProcessError):
            path = ctypes.util.find_library("qnn")
    if not path:
        sys.exit("classify.py: libqnn.so not found; set QNN_LIB or PKG_CONFIG_PATH (docs/embedding.md)")
    lib = ctypes.CDLL(path)
    model_p = ctypes.c_void_p
    u8_p, i32_p, f32_p = ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_float)
    lib.qnn_version.restype = ctypes.c_char_p
    lib.qnn_last_error.restype = ctypes.c_char_p
    lib.qnn_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(model_p)]
    lib.qnn_model_free.argtypes = [model_p]
    lib.qnn_model_arch.argtypes = [model_p]
    lib.qnn_model_arch.restype = ctypes.c_char_p
    for name in ("qnn_model_num_classes", "qnn_model_image_size"):
        getattr(lib, name).argtypes = [model_p]
    lib.qnn_model_num_parameters.argtypes = [model_p]
    lib.qnn_model_num_parameters.restype = ctypes.c_int64
    lib.qnn_classify_u8.argtypes = [model_p, u8_p, ctypes.c_int64, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                    i32_p, f32_p]
    return lib


class Model:
    """A qnn model handle; classify() returns, per image, the k best (class, probability) pairs."""

    def __init__(self, lib, path):
        self.lib, self.handle = lib, ctypes.c_void_p()
        if lib.qnn_model_load(path.encode(), ctypes.byref(self.handle)) != 0:
            raise RuntimeError(lib.qnn_last_error().decode())
        self.classes = lib.qnn_model_num_classes(self.handle)
        self.size = lib.qnn_model_image_size(self.handle)

    def classify(self, rgb, n, k):
        """rgb: n images of size x size x 3 bytes (HWC RGB)."""
        pixels = (ctypes.c_uint8 * len(rgb)).from_buffer_copy(rgb)
        classes, probabilities = (ctypes.c_int32 * (n * k))(), (ctypes.c_float * (n * k))()
        if self.lib.qnn_classify_u8(self.handle, pixels, n, self.size, self.size, k, classes, probabilities) != 0:
            raise RuntimeError(self.lib.qnn_last_error().decode())
        return [[(classes[i * k + j], probabilities[i * k + j]) for j in range(k)] for i in range(n)]

    def close(self):
        self.lib.qnn_model_free(self.handle)
        self.handle = ctypes.c_void_p()


def read_ppm(path, size):
    """The RGB bytes of a binary PPM (P6, 8-bit) of size x size pixels."""
    data = open(path, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        start = pos
        while pos < len(data) and not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(data[start:pos])
    if fields[0] != b"P6" or fields[3] != b"255":
        raise ValueError(f"{path}: expected a binary PPM (P6) with 8-bit samples")
    width, height = int(fields[1]), int(fields[2])
    if (width, height) != (size, size):
        raise ValueError(f"{path} is {width} x {height}; the model takes {size} x {size} images")
    pixels = data[pos + 1:pos + 1 + size * size * 3]
    if len(pixels) != size * size * 3:
        raise ValueError(f"{path}: truncated pixel data")
    return pixels


def main(argv):
    if len(argv) < 3:
        sys.exit("usage: classify.py CHECKPOINT IMAGE.ppm...\n       classify.py CHECKPOINT test_batch.bin [LIMIT]")
    lib = load_library()
    try:
        model = Model(lib, argv[1])
    except RuntimeError as e:
        sys.exit(f"classify.py: {e}")
    print(f"model: {lib.qnn_model_arch(model.handle).decode()}, {model.classes} classes, "
          f"{lib.qnn_model_num_parameters(model.handle)} parameters (qnn {lib.qnn_version().decode()})")
    names = CIFAR10_CLASSES if model.classes == 10 else [""] * model.classes
    status = 0
    if argv[2].endswith(".bin"):
        data = open(argv[2], "rb").read()
        limit = int(argv[3]) if len(argv) > 3 and int(argv[3]) > 0 else len(data) // 3073
        records = [data[i * 3073:(i + 1) * 3073] for i in range(min(limit, len(data) // 3073))]
        correct = 0
        for first in range(0, len(records), 100):
            batch = records[first:first + 100]
            # planar R, G, B planes -> interleaved RGB: byte (p, c) of the image is plane c's pixel p
            rgb = bytearray(len(batch) * 3072)
            for i, r in enumerate(batch):
                for c in range(3):
                    rgb[i * 3072 + c:(i + 1) * 3072:3] = r[1 + c * 1024:1 + (c + 1) * 1024]
            for r, top in zip(batch, model.classify(bytes(rgb), len(batch), 1)):
                correct += top[0][0] == r[0]
        seen = len(records)
        print(f"{argv[2]}: {seen} images, {correct} correct, accuracy {100.0 * correct / max(seen, 1):.2f}%")
        status = 0 if seen else 1
    else:
        k = 1 if model.classes < 3 else 3
        for path in argv[2:]:
            try:
                top = model.classify(read_ppm(path, model.size), 1, k)[0]
            except (OSError, ValueError, RuntimeError) as e:
                print(f"classify.py: {e}", file=sys.stderr)
                status = 1
                continue
            print(f"{path}: " + ", ".join(f"{c} {names[c]} {p:.3f}" for c, p in top))
    model.close()
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
