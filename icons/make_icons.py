#!/usr/bin/env python3
"""Draws the app icon (three linked nodes, the cluster, on a deep teal tile) as RGBA PNGs in
every size Tauri and the .deb need. Pure Python: `python3 icons/make_icons.py`."""
import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
TILE = (11, 79, 92)        # deep teal
TILE_EDGE = (6, 52, 61)
LINK = (134, 220, 214)     # pale aqua
NODE = (255, 255, 255)
CORE = (65, 178, 170)      # teal, IPFS-like


def png(path, size, pixels):
    raw = b"".join(b"\x00" + bytes(pixels[y * size * 4:(y + 1) * size * 4]) for y in range(size))
    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        f.write(chunk(b"IEND", b""))


def seg_dist(px, py, ax, ay, bx, by):
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


def draw(size):
    ss = 4  # supersampling per axis
    out = bytearray(size * size * 4)
    r_tile = 0.22          # corner radius, fraction of size
    nodes = [(0.5, 0.26), (0.26, 0.68), (0.74, 0.68)]
    node_r, core_r, link_w = 0.12, 0.055, 0.045
    for y in range(size):
        for x in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(ss):
                for sx in range(ss):
                    u = (x + (sx + 0.5) / ss) / size
                    v = (y + (sy + 0.5) / ss) / size
                    # rounded square tile
                    cx = min(max(u, r_tile), 1 - r_tile)
                    cy = min(max(v, r_tile), 1 - r_tile)
                    d = math.hypot(u - cx, v - cy)
                    if d > r_tile:
                        continue
                    col = TILE if d < r_tile - 0.02 else TILE_EDGE
                    for (ax, ay), (bx, by) in [(nodes[0], nodes[1]), (nodes[1], nodes[2]), (nodes[2], nodes[0])]:
                        if seg_dist(u, v, ax, ay, bx, by) < link_w / 2:
                            col = LINK
                    for nx, ny in nodes:
                        dn = math.hypot(u - nx, v - ny)
                        if dn < node_r:
                            col = CORE if dn < core_r else NODE
                    acc[0] += col[0]; acc[1] += col[1]; acc[2] += col[2]; acc[3] += 255
            n = ss * ss
            a = acc[3] / n
            i = (y * size + x) * 4
            if a > 0:
                k = acc[3] / 255
                out[i:i + 4] = bytes([round(acc[0] / k), round(acc[1] / k), round(acc[2] / k), round(a)])
    return out


# Every size of the freedesktop icon theme's usual set (the .deb and .rpm install each under
# /usr/share/icons/hicolor/<size>/apps), and the ones Tauri's own config names.
SIZES = [("16x16.png", 16), ("24x24.png", 24), ("32x32.png", 32), ("48x48.png", 48),
         ("64x64.png", 64), ("128x128.png", 128), ("128x128@2x.png", 256), ("256x256.png", 256),
         ("icon.png", 512)]
for name, size in SIZES:
    png(os.path.join(HERE, name), size, draw(size))
    print("wrote", name)
