"""Dequantises raw GGML blocks with the `gguf` package (llama.cpp's Python reference), for
flagscale's K-quant test.

    python gguf_dequant.py TYPE_NAME IN_BYTES OUT_F32

TYPE_NAME is a GGMLQuantizationType name (Q4_K, ...); IN_BYTES holds whole blocks; OUT_F32
receives the values as little-endian f32.
"""
import sys

import numpy as np
from gguf.quants import dequantize
from gguf import GGMLQuantizationType

qtype = GGMLQuantizationType[sys.argv[1]]
raw = np.fromfile(sys.argv[2], dtype=np.uint8)
dequantize(raw, qtype).astype("<f4").tofile(sys.argv[3])
