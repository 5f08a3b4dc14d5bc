#!/usr/bin/env python3
"""Counts the most frequent token and sentence errors of a system CoNLL-U
file against the gold one (same text, as `attend eval --system --gold`
requires). Tokens and sentences are spans of the text with spaces removed,
as the CoNLL 2018 metrics see them.

    python3 scripts/segmentation_errors.py GOLD.conllu SYSTEM.conllu [N]
"""
import collections
import sys


def spans(path):
    tokens, sentences, index, start, text = [], [], 0, None, []
    with open(path, encoding="utf-8") as f:
        words_left = 0
        for line in f:
            line = line.rstrip("\n")
            if not line:
                if start is not None:
                    sentences.append((start, index))
                start = None
                continue
            if line.startswith("#"):
                continue
            cols = line.split("\t")
            if "." in cols[0]:
                continue
            if words_left > 0:
                words_left -= 1
                continue
            if "-" in cols[0]:
                a, b = map(int, cols[0].split("-"))
                words_left = b - a + 1
            form = "".join(c for c in cols[1] if not c.isspace())
            if start is None:
                start = index
            tokens.append((index, index + len(form)))
            text.append(form)
            index += len(form)
    return tokens, sentences, "".join(text)


def main():
    gold, system = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    gt, gs, text = spans(gold)
    st, ss, _ = spans(system)
    missed = collections.Counter(text[a:b] for a, b in set(gt) - set(st))
    extra = collections.Counter(text[a:b] for a, b in set(st) - set(gt))
    print(f"tokens: {len(set(gt) - set(st))} gold tokens missed, {len(set(st) - set(gt))} system tokens wrong")
    print("  most frequent gold tokens the system did not find:", missed.most_common(n))
    print("  most frequent wrong system tokens:", extra.most_common(n))
    gold_ends = {b for _, b in gs}
    sys_ends = {b for _, b in ss}
    def context(end):
        return text[max(0, end - 12):end] + " | " + text[end:end + 12]
    def last_token(end):
        for a, b in gt:
            if b == end:
                return text[a:b]
        return "?"
    missed_ends = [e for e in gold_ends - sys_ends]
    extra_ends = [e for e in sys_ends - gold_ends]
    print(f"sentence ends: {len(missed_ends)} missed, {len(extra_ends)} extra (of {len(gold_ends)} gold)")
    print("  gold sentence ends missed, by the token before:", collections.Counter(last_token(e) for e in missed_ends).most_common(n))
    print("  extra sentence ends, by the token before:", collections.Counter(last_token(e) for e in extra_ends).most_common(n))


if __name__ == "__main__":
    main()
