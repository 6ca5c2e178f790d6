"""Reference logits for a GGUF model from Hugging Face `transformers` (which dequantises the
GGUF through the `gguf` package and un-permutes llama.cpp's query/key rows):

    python gguf_reference.py MODEL.gguf OUT.safetensors "prompt one" "prompt two" ...

Writes, per prompt i, `ids_i` (its tokenizer's ids, no special tokens), `logits_i` (fp32) and
`greedy_i` (the 12 tokens greedy decoding appends).
"""
import os, sys, warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402


def main():
    path, out, prompts = sys.argv[1], sys.argv[2], sys.argv[3:]
    d, f = os.path.dirname(os.path.abspath(path)), os.path.basename(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32).eval()
    tensors = {}
    for i, p in enumerate(prompts):
        ids = torch.tensor([tok.encode(p, add_special_tokens=False)])
        with torch.no_grad():
            tensors[f"logits_{i}"] = model(input_ids=ids).logits[0].float().contiguous()
            gen = model.generate(input_ids=ids, max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
        tensors[f"ids_{i}"] = ids[0].contiguous()
        tensors[f"greedy_{i}"] = gen[0, ids.shape[1]:].contiguous()
    save_file(tensors, out)
    print(f"{len(prompts)} prompts")


if __name__ == "__main__":
    main()
