#!/usr/bin/env python3
"""tests/fuzz/seeds.py: writes the starting corpus of every fuzz target from the fixtures.

Usage: seeds.py FIXTURES OUT_DIR. Makes OUT_DIR/<target>/ for each target: a small
tokenizer.json cut out of the Llama-3 one (and its gzip), a tiny synthetic model config,
small safetensors and GGUF files with every dtype and value type, prompts and documents.
The .rotor seeds are written afterwards by `rotor convert` (see tests/fuzz.mk), because
only the converter knows how to lay one out.
"""
import gzip
import json
import os
import struct
import sys

fix, out = sys.argv[1], sys.argv[2]


def put(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- a small tokenizer.json: the byte tokens and the first merges of Llama-3 ----
big = json.load(open(os.path.join(fix, "tiny-bitnet", "tokenizer.json"), encoding="utf-8"))
N_KEEP = 700
vocab = {t: i for t, i in big["model"]["vocab"].items() if i < N_KEEP}
merges = []
for m in big["model"]["merges"]:
    a, b = m.split(" ") if isinstance(m, str) else m
    if a in vocab and b in vocab and a + b in vocab:
        merges.append(a + " " + b)
specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|eot_id|>"]
added = [{"id": N_KEEP + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
          "normalized": False, "special": True} for i, s in enumerate(specials)]
added.append({"id": N_KEEP + len(specials), "content": "<user_word>", "single_word": False,
              "lstrip": False, "rstrip": False, "normalized": False, "special": False})
small = dict(big)
small["added_tokens"] = added
small["model"] = dict(big["model"])
small["model"]["vocab"] = vocab
small["model"]["merges"] = merges
small["post_processor"] = None
tok_small = json.dumps(small, ensure_ascii=False)
put("fuzz_tokenizer_json", "small.json", tok_small)
# the same with merges as pairs, and a Qwen2-style pre-tokenizer with NFC
alt = json.loads(tok_small)
alt["model"]["merges"] = [m.split(" ") for m in merges[:200]]
alt["normalizer"] = {"type": "NFC"}
alt["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
put("fuzz_tokenizer_json", "pairs-qwen2.json", json.dumps(alt, ensure_ascii=False))
nomerge = json.loads(tok_small)
nomerge["model"]["merges"] = []
put("fuzz_tokenizer_json", "no-merges.json", json.dumps(nomerge))

# a tiny model: the converter turns these into .rotor seeds
os.makedirs(os.path.join(out, "_model"), exist_ok=True)
with open(os.path.join(out, "_model", "tokenizer.json"), "w", encoding="utf-8") as f:
    f.write(tok_small)
cfg = json.load(open(os.path.join(fix, "tiny-bitnet", "config.json")))
cfg.update({"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
            "num_key_value_heads": 1, "num_hidden_layers": 1, "vocab_size": N_KEEP + 8,
            "max_position_embeddings": 64, "bos_token_id": N_KEEP, "eos_token_id": N_KEEP + 1})
with open(os.path.join(out, "_model", "config.json"), "w") as f:
    json.dump(cfg, f)

# ---- json ----
put("fuzz_json", "config.json", json.dumps(cfg))
put("fuzz_json", "tokenizer_config.json",
    open(os.path.join(fix, "tiny-bitnet", "tokenizer_config.json"), encoding="utf-8").read())
put("fuzz_json", "escapes.json", '{"a":"\\u00e9\\ud83d\\ude00\\n\\t\\"\\\\\\/","b":[1,-2.5e-3,0,1E+2,true,false,null],"c":{"":{}}}')
put("fuzz_json", "deep.json", "[" * 100 + "]" * 100)
put("fuzz_json", "numbers.json", "[0,-0,1.5,9007199254740993,-9223372036854775808,1e308,1e-320,123456789012345678901234567890]")
put("fuzz_json", "tokenizer-head.json", tok_small[:3000])

# ---- gzip ----
put("fuzz_inflate", "tokenizer.json.gz", gzip.compress(tok_small[:20000].encode(), 9))
put("fuzz_inflate", "stored.gz", gzip.compress(b"stored block " * 10, 0))
put("fuzz_inflate", "two-members.gz", gzip.compress(b"first member\n") + gzip.compress(b"second\n" * 50))
put("fuzz_inflate", "empty.gz", gzip.compress(b""))

# ---- safetensors ----
def safetensors(tensors, meta=None):
    hdr, data = {}, b""
    if meta is not None:
        hdr["__metadata__"] = meta
    for name, dtype, shape, raw in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

st = [("w.f32", "F32", [2, 3], struct.pack("<6f", 1, -2, 3.5, 0, 1e-3, -1e9)),
      ("w.f16", "F16", [4], struct.pack("<4H", 0x3c00, 0xbc00, 0x7c00, 0x0001)),
      ("w.bf16", "BF16", [2, 2], struct.pack("<4H", 0x3f80, 0xbf80, 0x7f80, 0x0001)),
      ("w.f64", "F64", [2], struct.pack("<2d", 1.25, -7)),
      ("w.i8", "I8", [3], b"\x01\xff\x00"), ("w.u8", "U8", [1, 1, 2], b"\x07\x08"),
      ("w.i32", "I32", [2], struct.pack("<2i", 5, -5)), ("w.i64", "I64", [1], struct.pack("<q", 3)),
      ("w.bool", "BOOL", [2], b"\x00\x01"), ("scalar", "F32", [], struct.pack("<f", 2.0)),
      ("empty", "F32", [0, 4], b""), ("w.f8", "F8_E4M3", [2], b"\x38\xb8")]
put("fuzz_safetensors", "all-dtypes.safetensors", safetensors(st, {"format": "pt"}))
put("fuzz_safetensors", "one.safetensors", safetensors(st[:1]))
put("fuzz_safetensors", "empty.safetensors", safetensors([]))

# ---- gguf ----
def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b

def gguf(kvs, tensors, version=3, align=32):
    b = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for key, typ, payload in kvs:
        b += gstr(key) + struct.pack("<I", typ) + payload
    off = 0
    blobs = []
    for name, gtype, ne, raw in tensors:
        b += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        b += struct.pack("<IQ", gtype, off)
        blobs.append((off, raw))
        off += len(raw) + (-len(raw) % align)
    b += b"\0" * (-len(b) % align)
    data = b""
    for o, raw in blobs:
        data += b"\0" * (o - len(data)) + raw
    return b + data

arr_str = lambda xs: struct.pack("<IQ", 8, len(xs)) + b"".join(gstr(x) for x in xs)
arr_i32 = lambda xs: struct.pack("<IQ", 5, len(xs)) + b"".join(struct.pack("<i", x) for x in xs)
toks = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])][:300]
kvs = [("general.architecture", 8, gstr("bitnet-b1.58")), ("general.name", 8, gstr("seed")),
       ("general.alignment", 4, struct.pack("<I", 32)),
       ("bitnet-b1.58.context_length", 4, struct.pack("<I", 64)),
       ("bitnet-b1.58.embedding_length", 4, struct.pack("<I", 64)),
       ("bitnet-b1.58.block_count", 4, struct.pack("<I", 1)),
       ("bitnet-b1.58.rope.freq_base", 6, struct.pack("<f", 500000.0)),
       ("x.u8", 0, b"\x05"), ("x.i8", 1, b"\xfb"), ("x.u16", 2, struct.pack("<H", 7)),
       ("x.i16", 3, struct.pack("<h", -7)), ("x.i32", 5, struct.pack("<i", -70000)),
       ("x.bool", 7, b"\x01"), ("x.u64", 10, struct.pack("<Q", 1 << 40)),
       ("x.i64", 11, struct.pack("<q", -(1 << 40))), ("x.f64", 12, struct.pack("<d", 0.25)),
       ("x.nested", 9, struct.pack("<IQ", 9, 1) + arr_i32([1, 2])),
       ("tokenizer.ggml.model", 8, gstr("gpt2")), ("tokenizer.ggml.pre", 8, gstr("llama-bpe")),
       ("tokenizer.ggml.tokens", 9, arr_str(toks)),
       ("tokenizer.ggml.token_type", 9, arr_i32([1] * len(toks))),
       ("tokenizer.ggml.merges", 9, arr_str(merges[:40])),
       ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", 1))]
gt = [("token_embd.weight", 1, [64, 4], struct.pack("<256H", *([0x3c00] * 256))),
      ("output_norm.weight", 0, [64], struct.pack("<64f", *([1.0] * 64))),
      ("blk.0.attn_q.weight", 36, [128, 2], b"\x55" * 64 + struct.pack("<f", 0.5) + b"\0" * 28),
      ("blk.0.ffn_up.weight", 35, [256, 1], b"\x55" * 64 + struct.pack("<H", 0x3c00)),
      ("blk.0.ffn_down.weight", 34, [256, 1], b"\x11" * 52 + struct.pack("<H", 0x3c00)),
      ("q8", 8, [32, 1], struct.pack("<H", 0x3c00) + bytes(range(32)))]
put("fuzz_gguf", "bitnet-like.gguf", gguf(kvs, gt))
# a complete tiny BitNet model, so that the converter behind the reader gets far
E, H, HD, KVH, F = 64, 2, 32, 1, 128
vt = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])] + specials
V = len(vt)
def i2s(rows, cols, code=0x99):
    # I2_S: rows*cols 2-bit codes (a mix of -1, 0, +1), then the f32 scale padded to 32 bytes
    return bytes([code]) * (rows * cols // 4) + struct.pack("<f", 0.75) + b"\0" * 28
def f32s(n, v=1.0):
    return struct.pack("<%df" % n, *([v] * n))
mk = [("general.architecture", 8, gstr("bitnet-b1.58")),
      ("bitnet-b1.58.context_length", 4, struct.pack("<I", 64)),
      ("bitnet-b1.58.embedding_length", 4, struct.pack("<I", E)),
      ("bitnet-b1.58.block_count", 4, struct.pack("<I", 1)),
      ("bitnet-b1.58.feed_forward_length", 4, struct.pack("<I", F)),
      ("bitnet-b1.58.attention.head_count", 4, struct.pack("<I", H)),
      ("bitnet-b1.58.attention.head_count_kv", 4, struct.pack("<I", KVH)),
      ("bitnet-b1.58.rope.freq_base", 6, struct.pack("<f", 500000.0)),
      ("bitnet-b1.58.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5)),
      ("tokenizer.ggml.model", 8, gstr("gpt2")), ("tokenizer.ggml.pre", 8, gstr("llama-bpe")),
      ("tokenizer.ggml.tokens", 9, arr_str(vt)),
      ("tokenizer.ggml.token_type", 9, arr_i32([1] * (V - len(specials)) + [3] * len(specials))),
      ("tokenizer.ggml.merges", 9, arr_str(merges)),
      ("tokenizer.ggml.bos_token_id", 4, struct.pack("<I", V - len(specials))),
      ("tokenizer.ggml.eos_token_id", 4, struct.pack("<I", V - len(specials) + 1)),
      ("tokenizer.chat_template", 8, gstr("{{ '<|start_header_id|>' + message['role'] }}"))]
mt = [("token_embd.weight", 1, [E, V], struct.pack("<%dH" % (E * V), *([0x3c00, 0xbc00] * (E * V // 2)))),
      ("output_norm.weight", 0, [E], f32s(E)),
      ("blk.0.attn_norm.weight", 0, [E], f32s(E)), ("blk.0.ffn_norm.weight", 0, [E], f32s(E)),
      ("blk.0.attn_sub_norm.weight", 0, [E], f32s(E)), ("blk.0.ffn_sub_norm.weight", 0, [F], f32s(F)),
      ("blk.0.attn_q.weight", 36, [E, H * HD], i2s(H * HD, E)),
      ("blk.0.attn_k.weight", 36, [E, KVH * HD], i2s(KVH * HD, E)),
      ("blk.0.attn_v.weight", 35, [E, KVH * HD], (b"\x55" * 64 + struct.pack("<H", 0x3c00)) * (E * KVH * HD // 256)),
      ("blk.0.attn_output.weight", 34, [H * HD, E], (b"\x11" * 52 + struct.pack("<H", 0x3c00)) * (H * HD * E // 256)),
      ("blk.0.ffn_gate.weight", 36, [E, F], i2s(F, E, 0x66)),
      ("blk.0.ffn_up.weight", 36, [E, F], i2s(F, E)),
      ("blk.0.ffn_down.weight", 36, [F, E], i2s(E, F, 0x24))]
put("fuzz_gguf", "tiny-model.gguf", gguf(mk, mt))

put("fuzz_gguf", "v2.gguf", gguf(kvs[:8], gt[:2], version=2))
put("fuzz_gguf", "empty.gguf", gguf([], []))

# ---- tokenizer inputs: the fixture's test vectors ----
n = 0
for line in open(os.path.join(fix, "llama3-tokenizer", "vectors.jsonl"), encoding="utf-8"):
    try:
        v = json.loads(line)
    except ValueError:
        continue
    text = v.get("text") if isinstance(v, dict) else None
    if not isinstance(text, str) or len(text.encode()) > 2000:
        continue
    put("fuzz_tokenize", "vec%03d" % n, text)
    n += 1
    if n >= 120:
        break
put("fuzz_tokenize", "special", "<|begin_of_text|>hi<|eot_id|><|start_header_id|>user")
put("fuzz_tokenize", "bad-utf8", b"abc\xff\xfe\xc3(\xe2\x82 \xf0\x9f\x98")

# ---- chat: byte 0 picks the template and flags, then role\0content\0 pairs ----
def chat(fmt, msgs):
    return bytes([fmt]) + b"".join(r.encode() + b"\0" + c.encode() + b"\0" for r, c in msgs)

convo = [("system", "You are terse."), ("user", "  Hello there!  "), ("assistant", "Hi."),
         ("user", "What is 2+2? <|eot_id|>")]
for fmt in range(4):
    put("fuzz_chat", "convo%d" % fmt, chat(fmt | 0x10, convo))
put("fuzz_chat", "long-role", chat(1, [("r" * 400, "x")]))
put("fuzz_chat", "empty", b"\x00")

# ---- chunker: byte 0 kind, bytes 1-2 tokens per chunk, byte 3 overlap, then the document ----
docs = [open(os.path.join(fix, "tiny-bitnet", "README.md"), encoding="utf-8").read()[:6000],
        "<html><head><style>p{}</style><script>var a='<p>';</script></head><body><h1>T&amp;itle</h1>"
        "<p>First para. Second sentence!</p><!-- c --><ul><li>one</li><li>two &#x41;&#65;&nbsp;</li>"
        "</ul><pre>code\n  here</pre></body></html>",
        "中文句子。第二句！第三句？\n\nEnd.",
        "no breaks at all " * 200,
        "x" * 3000]
for i, d in enumerate(docs):
    kind = 3 if d.startswith("<html") else i % 3
    put("fuzz_chunk", "doc%d" % i, bytes([kind, 40, 0, 10]) + d.encode())
