"""The default attend tagger written in PyTorch, trained and run on the
batches `attend bench tagger --export DIR` wrote, for a side-by-side speed
measurement (scripts/bench-torch.sh runs both). Not needed by the tests or CI.

Same architecture as attend's default tagger (crates/attend/src/models/tagger):
word embedding 128 + character CNN (48-dim characters, width-3 convolution
with 192 filters, ReLU, max over each word's characters), dropout 0.2, a
linear projection to d_model 256, two pre-LN encoder layers (8 heads, rotary
positions on queries and keys, attention dropout 0.1, feed-forward 512 with
exact GELU, residual dropout 0.2), a final layer norm and one linear head per
column (UPOS, XPOS, FEATS), trained on the sum of the columns' mean
cross-entropies with AdamW (decay on matrices only) clipped to a global
gradient norm, at the learning rate attend uses at each step. Written as a
PyTorch user would: eager mode, nn modules, F.scaled_dot_product_attention.

    python torch_twin.py DIR/batches.json [--threads N] [--json]
"""

import argparse
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class CharEncoder(nn.Module):
    def __init__(self, chars, dim, filters, kernel):
        super().__init__()
        self.embedding = nn.Embedding(chars, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.conv = nn.Conv1d(dim, filters, kernel, padding=kernel // 2)
        bound = math.sqrt(6.0 / (kernel * dim + filters))
        nn.init.uniform_(self.conv.weight, -bound, bound)
        nn.init.zeros_(self.conv.bias)

    def forward(self, spellings, inside, empty):
        x = self.embedding(spellings) * inside.unsqueeze(-1)  # [S, L, c], zero past each end
        h = F.relu(self.conv(x.transpose(1, 2)))  # [S, F, L]
        h = h.masked_fill(~inside.unsqueeze(1), float("-inf")).amax(dim=2)
        return h.masked_fill(empty.unsqueeze(1), 0.0)  # [S, F]


def linear(i, o):
    layer = nn.Linear(i, o)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Layer(nn.Module):
    def __init__(self, d, heads, ff, dropout, attention_dropout):
        super().__init__()
        self.heads, self.dropout, self.attention_dropout = heads, dropout, attention_dropout
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = linear(d, 3 * d), linear(d, d)
        self.ff1, self.ff2 = linear(d, ff), linear(ff, d)

    def forward(self, x, mask, cos, sin):
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = rotate(qkv[0], cos, sin), rotate(qkv[1], cos, sin), qkv[2]
        p = self.attention_dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        a = self.out(a.transpose(1, 2).reshape(b, t, d))
        h = x + F.dropout(a, self.dropout, self.training)
        f = F.dropout(F.gelu(self.ff1(self.norm2(h))), self.dropout, self.training)
        return h + F.dropout(self.ff2(f), self.dropout, self.training)


class Tagger(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.words = nn.Embedding(c["words"], c["word_dim"])
        nn.init.normal_(self.words.weight, std=0.1)
        self.chars = CharEncoder(c["chars"], c["char_dim"], c["char_filters"], c["char_kernel"])
        d = c["d_model"]
        self.dropout, self.heads, self.head_dim = c["dropout"], c["heads"], d // c["heads"]
        self.input = linear(c["word_dim"] + c["char_filters"], d)
        self.layers = nn.ModuleList(Layer(d, c["heads"], c["ff_dim"], c["dropout"], c["attention_dropout"]) for _ in range(c["layers"]))
        self.norm = nn.LayerNorm(d)
        sizes = [c["tags"]] + [n for n in (c["xpos_tags"], c["feats_tags"]) if n > 0]
        self.out = nn.ModuleList(linear(d, n) for n in sizes)

    def rotary(self, t):
        half = self.head_dim // 2
        inv = 10000.0 ** (-2.0 * torch.arange(half, dtype=torch.float64) / self.head_dim)
        angle = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]
        return angle.cos().float(), angle.sin().float()

    def forward(self, batch):
        b, t = batch["word_ids"].shape
        chars = self.chars(batch["spellings"], batch["inside"], batch["empty"])
        x = torch.cat([self.words(batch["word_ids"]), chars[batch["spelling_of"]]], dim=-1)
        x = F.dropout(x, self.dropout, self.training)
        x = F.dropout(self.input(x), self.dropout, self.training)
        cos, sin = self.rotary(t)
        for layer in self.layers:
            x = layer(x, batch["mask"], cos, sin)
        h = self.norm(x)
        return [head(h) for head in self.out]


def tensors(b):
    """One exported batch as tensors (made before timing, as attend's are)."""
    s, t, m = b["batch"], b["seq"], b["max_chars"]
    lengths = torch.tensor(b["lengths"])
    spelling_lengths = torch.tensor(b["spelling_lengths"])
    return {
        "word_ids": torch.tensor(b["word_ids"]).view(s, t),
        "spellings": torch.tensor(b["spellings"]).view(-1, m),
        "inside": torch.arange(m)[None, :] < spelling_lengths[:, None],
        "empty": spelling_lengths == 0,
        "spelling_of": torch.tensor(b["spelling_of"]).view(s, t),
        "mask": (torch.arange(t)[None, :] < lengths[:, None]).view(s, 1, 1, t),
        "labels": [torch.tensor(c).view(-1) for c in b["labels"]],
        "lengths": b["lengths"],
        "tokens": sum(b["lengths"]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("batches")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    doc = json.load(open(args.batches))
    cfg, train = doc["model"], doc["train"]
    model = Tagger(cfg)
    params = list(model.named_parameters())
    decay = [p for n, p in params if p.dim() >= 2]
    rest = [p for n, p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": train["weight_decay"]}, {"params": rest, "weight_decay": 0.0}],
        lr=train["lr"][0], betas=(train["beta1"], train["beta2"]), eps=1e-8)
    batches = [tensors(b) for b in doc["train_batches"]]
    tag_batches = [tensors(b) for b in doc["tag_batches"]]
    tag_runs = doc["tag_runs"]
    del doc

    def step(i):
        b = batches[i]
        for g in opt.param_groups:
            g["lr"] = train["lr"][i]
        logits = model(b)
        loss = sum(F.cross_entropy(l.view(-1, l.shape[-1]), y, ignore_index=-1, label_smoothing=train["label_smoothing"])
                   for l, y in zip(logits, b["labels"]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train["clip"])
        opt.step()
        return loss.item(), b["tokens"]

    model.train()
    warmup = train["warmup_steps"]
    for i in range(warmup):
        step(i)
    words, losses = 0, []
    start = time.perf_counter()
    for i in range(warmup, len(batches)):
        loss, n = step(i)
        losses.append(loss)
        words += n
    train_seconds = time.perf_counter() - start

    model.eval()
    tag_words = sum(b["tokens"] for b in tag_batches)
    times = []
    with torch.inference_mode():
        for _ in range(max(1, tag_runs)):
            start = time.perf_counter()
            for b in tag_batches:
                best = [l.argmax(-1).tolist() for l in model(b)]
                [[col[r][: n] for col in best] for r, n in enumerate(b["lengths"])]
            times.append(time.perf_counter() - start)
    tag_seconds = statistics.median(times)
    result = {
        "parameters": sum(p.numel() for _, p in params),
        "train_steps": len(batches) - warmup,
        "train_words": words,
        "train_seconds": train_seconds,
        "train_words_per_second": words / train_seconds,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "tag_words": tag_words,
        "tag_seconds": tag_seconds,
        "tag_words_per_second": tag_words / tag_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }
    if args.json:
        print(json.dumps({"bench": "tagger", "implementation": f"pytorch {torch.__version__}", "threads": args.threads, "result": result}, indent=2))
    else:
        r = result
        print(f"parameters      {r['parameters']}")
        print(f"train           {r['train_words_per_second']:.0f} words/s ({words} words in {train_seconds:.2f} s; loss {r['first_loss']:.3f} -> {r['last_loss']:.3f})")
        print(f"tag             {r['tag_words_per_second']:.0f} words/s ({tag_words} words in {tag_seconds:.3f} s, median)")
        print(f"peak RSS        {r['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
