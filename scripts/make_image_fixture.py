"""Writes tests/fixtures/images/: small images in the formats an image folder holds, what PIL's
convert("RGB") makes of each, and torchvision 0.14's resize / crop outputs on a fixed picture,
for tests/data/test_image_decode.cpp and tests/data/test_image_transforms.cpp.

Run with Debian's Python, which has torch 1.13, torchvision 0.14 and PIL 9.4:
    /usr/bin/python3 scripts/make_image_fixture.py
restart.jpg, a JPEG with a restart marker after every MCU (as cameras write them), comes from
libjpeg-turbo's cjpeg (Debian: libjpeg-turbo-progs), since PIL 9.4 cannot write restart markers;
without cjpeg it is left as it is.
Every expected image is a lossless PNG, read back by qnn's own decoder. cases.txt lists the
transform cases, one a line: "<expected file> <operation> <integers...>" (lines starting with #
are comments).

With HYMENOPTERA_DIR set (the ants/bees image folder), it also writes hymenoptera_hashes.txt:
for every image of its train/ and val/ folders, as torchvision's ImageFolder lists them, the
64-bit FNV-1a hashes of the HWC bytes of two transforms of the RGB image: Resize(256) +
CenterCrop(224), and resized_crop(top H // 7, left W // 5, height H // 2, width W // 3, 224x224)
(RandomResizedCrop's resize on a fixed box), one line
"<path under HYMENOPTERA_DIR> TAB <label> TAB <eval hash> TAB <crop hash>", hashes in hex.
"""
import math
import os
import random
import shutil
import struct
import subprocess
import tempfile
import zlib

from PIL import Image
import torchvision.transforms.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "images")


def picture(width, height, seed):
    """A smooth colour field with edges and noise: enough structure to show resampling errors."""
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height))
    px = img.load()
    for y in range(height):
        for x in range(width):
            r = int(127 + 120 * math.sin(x / 5.0) * math.cos(y / 7.0))
            g = 255 if (x // 6 + y // 6) % 2 else 0
            b = min(255, max(0, (x * 255) // max(1, width - 1) + rng.randint(-30, 30)))
            px[x, y] = (r, g, b)
    return img


def png_16bit_rgb(path, width, height):
    """A 16-bit RGB PNG, written by hand (PIL cannot write one)."""
    rows = b""
    for y in range(height):
        rows += b"\x00"
        for x in range(width):
            for c in range(3):
                rows += struct.pack(">H", (x * 4099 + y * 7919 + c * 21011) % 65536)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(rows)))
        f.write(chunk(b"IEND", b""))


def save_expected(img, name):
    img.convert("RGB").save(os.path.join(OUT, name))


def main():
    os.makedirs(OUT, exist_ok=True)
    base = picture(40, 30, 1)
    # Decoding: each source and PIL's convert("RGB") of it.
    base.convert("L").save(os.path.join(OUT, "gray.png"))
    rgba = base.copy()
    rgba.putalpha(Image.linear_gradient("L").resize((40, 30)))
    rgba.save(os.path.join(OUT, "rgba.png"))
    rgba.convert("LA").save(os.path.join(OUT, "gray_alpha.png"))
    base.save(os.path.join(OUT, "progressive.jpg"), quality=90, progressive=True)
    base.save(os.path.join(OUT, "baseline.jpg"), quality=90)
    base.convert("L").save(os.path.join(OUT, "gray.jpg"), quality=90)
    base.convert("CMYK").save(os.path.join(OUT, "cmyk.jpg"), quality=90)
    png_16bit_rgb(os.path.join(OUT, "rgb16.png"), 9, 7)
    names = ["gray.png", "rgba.png", "gray_alpha.png", "progressive.jpg", "baseline.jpg",
             "gray.jpg", "cmyk.jpg", "rgb16.png"]
    if shutil.which("cjpeg"):
        with tempfile.TemporaryDirectory() as scratch:
            ppm = os.path.join(scratch, "restart.ppm")
            picture(64, 48, 3).save(ppm)
            with open(os.path.join(OUT, "restart.jpg"), "wb") as f:
                subprocess.run(["cjpeg", "-quality", "90", "-restart", "1B", ppm], stdout=f, check=True)
        names.append("restart.jpg")
    else:
        print("cjpeg not found (Debian: libjpeg-turbo-progs): restart.jpg left as it is")
    for name in names:
        save_expected(Image.open(os.path.join(OUT, name)), name + ".rgb.png")
    with open(os.path.join(OUT, "not_an_image.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff this is not a JPEG")

    # Transforms on a 61x47 picture.
    src = picture(61, 47, 2)
    src.save(os.path.join(OUT, "source.png"))
    cases = []

    def case(name, img, op, *args):
        save_expected(img, name)
        cases.append(" ".join([name, op] + [str(a) for a in args]))

    bilinear = F.InterpolationMode.BILINEAR
    for n, (i, j, h, w, size) in enumerate([(5, 7, 30, 40, 24), (0, 0, 47, 61, 24), (10, 3, 9, 12, 24),
                                            (2, 1, 40, 20, 24), (0, 13, 47, 47, 17), (20, 30, 24, 24, 24)]):
        case(f"resized_crop{n}.png", F.resized_crop(src, i, j, h, w, [size, size], bilinear),
             "resized_crop", i, j, h, w, size)
    for n in [20, 100, 47]:
        case(f"resize{n}.png", F.resize(src, n, bilinear), "resize", n)
    case("resize32_crop28.png", F.center_crop(F.resize(src, 32, bilinear), 28), "resize_center_crop", 32, 28)
    case("center_crop30.png", F.center_crop(src, 30), "center_crop", 30)
    tall = picture(23, 50, 3)
    tall.save(os.path.join(OUT, "tall.png"))
    case("tall_resize16_crop15.png", F.center_crop(F.resize(tall, 16, bilinear), 15), "tall_resize_center_crop", 16, 15)
    with open(os.path.join(OUT, "cases.txt"), "w") as f:
        f.write("# torchvision 0.14 transforms of source.png and tall.png (scripts/make_image_fixture.py):\n"
                "# <expected PNG> <operation> <integers...>\n")
        f.write("\n".join(cases) + "\n")
    if os.environ.get("HYMENOPTERA_DIR"):
        hymenoptera_hashes(os.environ["HYMENOPTERA_DIR"])


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def hymenoptera_hashes(root):
    from torchvision.datasets import ImageFolder
    bilinear = F.InterpolationMode.BILINEAR
    lines = []
    for split in ["train", "val"]:
        for path, label in ImageFolder(os.path.join(root, split)).samples:
            with Image.open(path) as img:
                rgb = img.convert("RGB")
            evaluated = F.center_crop(F.resize(rgb, 256, bilinear), 224)
            w, h = rgb.size
            cropped = F.resized_crop(rgb, h // 7, w // 5, h // 2, w // 3, [224, 224], bilinear)
            lines.append(f"{os.path.relpath(path, root)}\t{label}\t{fnv1a64(evaluated.tobytes()):016x}"
                         f"\t{fnv1a64(cropped.tobytes()):016x}")
    with open(os.path.join(OUT, "hymenoptera_hashes.txt"), "w") as f:
        f.write("# FNV-1a 64 hashes of torchvision 0.14 crops of the ants/bees photos "
                "(scripts/make_image_fixture.py):\n# path, label, Resize(256) + CenterCrop(224), "
                "resized_crop(H // 7, W // 5, H // 2, W // 3, 224)\n")
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
