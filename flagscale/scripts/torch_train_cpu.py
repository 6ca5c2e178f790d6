"""PyTorch eager reference for `flagscale bench`: the same LLaMA-architecture model, batch,
sequence and optimizer as flagscale's trainer (RMSNorm, rotary halves, GQA attention through
scaled_dot_product_attention, SwiGLU, untied head; AdamW 0.9/0.95, weight decay 0.1 off norms,
gradient clipping at 1.0), trained on random tokens on the CPU. Prints the mean step time.

    python torch_train_cpu.py VOCAB HIDDEN LAYERS HEADS KV_HEADS FFN SEQ BATCH STEPS
"""
import sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(s, d, h, kv, ff):
        super().__init__()
        s.h, s.kv, s.hd = h, kv, d // h
        s.n1, s.n2 = nn.Parameter(torch.ones(d)), nn.Parameter(torch.ones(d))
        s.q = nn.Linear(d, d, bias=False); s.k = nn.Linear(d, kv * s.hd, bias=False)
        s.v = nn.Linear(d, kv * s.hd, bias=False); s.o = nn.Linear(d, d, bias=False)
        s.g = nn.Linear(d, ff, bias=False); s.u = nn.Linear(d, ff, bias=False); s.dn = nn.Linear(ff, d, bias=False)

    def forward(s, x, cos, sin):
        B, T, D = x.shape
        y = F.rms_norm(x, (D,), s.n1, 1e-6)
        q = s.q(y).view(B, T, s.h, s.hd).transpose(1, 2)
        k = s.k(y).view(B, T, s.kv, s.hd).transpose(1, 2)
        v = s.v(y).view(B, T, s.kv, s.hd).transpose(1, 2)
        rot = lambda t: torch.cat((-t[..., s.hd // 2:], t[..., : s.hd // 2]), -1)
        q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=s.h != s.kv)
        x = x + s.o(a.transpose(1, 2).reshape(B, T, D))
        y = F.rms_norm(x, (D,), s.n2, 1e-6)
        return x + s.dn(F.silu(s.g(y)) * s.u(y))


class LM(nn.Module):
    def __init__(s, V, d, L, h, kv, ff, T):
        super().__init__()
        s.emb = nn.Embedding(V, d)
        s.blocks = nn.ModuleList([Block(d, h, kv, ff) for _ in range(L)])
        s.norm = nn.Parameter(torch.ones(d)); s.head = nn.Linear(d, V, bias=False)
        hd = d // h
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        f = torch.outer(torch.arange(T).float(), inv)
        f = torch.cat((f, f), -1)
        s.register_buffer("cos", f.cos()); s.register_buffer("sin", f.sin())

    def forward(s, idx, tgt):
        x = s.emb(idx)
        for b in s.blocks:
            x = b(x, s.cos, s.sin)
        logits = s.head(F.rms_norm(x, (x.shape[-1],), s.norm, 1e-6))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.reshape(-1))


def main():
    V, d, L, h, kv, ff, T, B, steps = map(int, sys.argv[1:10])
    torch.manual_seed(0)
    m = LM(V, d, L, h, kv, ff, T)
    decay = [p for p in m.parameters() if p.dim() > 1]
    no_decay = [p for p in m.parameters() if p.dim() <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    idx = torch.randint(0, V, (B, T + 1))

    def one():
        loss = m(idx[:, :-1], idx[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        one()
    t = time.perf_counter()
    for _ in range(steps):
        one()
    dt = (time.perf_counter() - t) / steps
    print(f"step_ms {dt * 1e3:.2f} threads {torch.get_num_threads()} params {sum(p.numel() for p in m.parameters())}")


if __name__ == "__main__":
    main()
