"""Writes the first 60 training images of each Fashion-MNIST class as 28×28 grey PNGs under
DIR/<class>/, from the Debian package's IDX files (dataset-fashion-mnist)."""
import gzip, os, struct, sys, zlib

root = "/usr/share/datasets/fashion-mnist"
pixels = gzip.open(f"{root}/train-images-idx3-ubyte.gz").read()[16:]
labels = gzip.open(f"{root}/train-labels-idx1-ubyte.gz").read()[8:]
names = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(path, image):
    rows = b"".join(b"\x00" + image[r * 28:(r + 1) * 28] for r in range(28))
    header = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)  # 8-bit greyscale
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


count = dict.fromkeys(names, 0)
for index, label in enumerate(labels):
    name = names[label]
    if count[name] == 60:
        continue
    os.makedirs(f"{sys.argv[1]}/{name}", exist_ok=True)
    png(f"{sys.argv[1]}/{name}/{count[name]:03}.png", pixels[index * 784:(index + 1) * 784])
    count[name] += 1
