"""Reference models for flagscale's parity tests, made by Hugging Face `transformers`.

    python hf_reference.py make OUT_DIR
        Writes two small LlamaForCausalLM checkpoints with seeded random weights (GQA with an
        untied head; MHA with a tied head) to OUT_DIR/<name>/ (config.json, model.safetensors)
        and, for fixed token ids, their fp32 logits to OUT_DIR/<name>/reference.safetensors.
    python hf_reference.py check MODEL_DIR
        Loads MODEL_DIR (a checkpoint flagscale saved) as LlamaForCausalLM and prints the max
        absolute difference between its logits and MODEL_DIR/reference.safetensors.
    python hf_reference.py chat MODEL_DIR MESSAGES_JSON
        Prints, as JSON, the prompt `transformers` renders from MODEL_DIR's chat template for the
        messages (generation prompt added) and its token ids.

Needs transformers, torch and safetensors (`cargo xtask test` provides them).
"""
import os, sys, warnings

warnings.filterwarnings("ignore")
import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

MODELS = {
    "gqa-untied": dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=97, rms_norm_eps=1e-5, rope_theta=10000.0,
                       max_position_embeddings=64, tie_word_embeddings=False),
    "mha-tied": dict(hidden_size=48, intermediate_size=128, num_hidden_layers=3, num_attention_heads=3,
                     num_key_value_heads=3, vocab_size=101, rms_norm_eps=1e-6, rope_theta=100000.0,
                     max_position_embeddings=64, tie_word_embeddings=True),
}


def ids():
    g = torch.Generator().manual_seed(7)
    return torch.randint(0, 97, (2, 13), generator=g)


def logits(model, x):
    with torch.no_grad():
        return model(input_ids=x).logits.float().contiguous()


def make(out):
    for name, kw in MODELS.items():
        torch.manual_seed(1234)
        cfg = LlamaConfig(**kw)
        model = LlamaForCausalLM(cfg).float().eval()
        # Non-trivial norms, so a missing weight multiply would show.
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n.endswith("norm.weight"):
                    p.uniform_(0.5, 1.5)
        d = os.path.join(out, name)
        model.save_pretrained(d, safe_serialization=True)
        x = ids()
        save_file({"ids": x, "logits": logits(model, x)}, os.path.join(d, "reference.safetensors"))
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters")


def check(d):
    model = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
    ref = load_file(os.path.join(d, "reference.safetensors"))
    diff = (logits(model, ref["ids"]) - ref["logits"]).abs().max().item()
    print(f"max_abs_diff {diff:.3e}")


def chat(d, messages):
    import json
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(d)
    text = tok.apply_chat_template(json.loads(messages), tokenize=False, add_generation_prompt=True)
    print(json.dumps({"prompt": text, "ids": tok(text, add_special_tokens=False)["input_ids"]}))


if __name__ == "__main__":
    {"make": make, "check": check, "chat": chat}[sys.argv[1]](*sys.argv[2:])
