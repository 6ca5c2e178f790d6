"""Prepares the CUDA check of `bge encode` (run.sh beside this file) in OUT_DIR: a small
random-weight BERT saved by transformers (hidden 128, 2 layers, MiniLM's tokenizer and
vocabulary, so it travels to a GPU machine in a few MiB), 3,999 disfl_qa texts (questions
with every fourth paragraph, up to 512 tokens) and transformers' f64 CLS embeddings of them,
L2-normalised (what `bge encode` returns for a folder without modules.json).

usage: python3 prepare.py MINILM_DIR DISFL_QA_TASK_JSON OUT_DIR
"""
import json
import shutil
import sys

import tokenizers
import torch
import transformers

minilm, task, out = sys.argv[1:4]
torch.manual_seed(0)
cfg = transformers.BertConfig(
    vocab_size=30522,
    hidden_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=256,
    max_position_embeddings=512,
)
model = transformers.BertModel(cfg, add_pooling_layer=False)
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0, 0.05)
model.save_pretrained(f"{out}/tinybert", safe_serialization=True)
shutil.copy(f"{minilm}/tokenizer.json", f"{out}/tinybert/")

lines = []
for e in json.load(open(task))["examples"][:3000]:
    q, p = e["input"].split("\ncontext: ")
    lines.append(q.strip().replace("\n", " "))
    if len(lines) % 4 == 0:
        lines.append(p.strip().replace("\n", " "))
lines = lines[:4096]
open(f"{out}/texts.txt", "w").write("\n".join(lines) + "\n")

tok = tokenizers.Tokenizer.from_file(f"{out}/tinybert/tokenizer.json")
tok.enable_truncation(512)
tok.no_padding()
model = model.double().eval()
with torch.no_grad():
    ref = []
    for line in lines:
        h = model(input_ids=torch.tensor([tok.encode(line).ids])).last_hidden_state[0, 0]
        ref.append(h / h.norm())
torch.save(torch.stack(ref), f"{out}/ref.pt")
print(f"{len(lines)} texts in {out}")
