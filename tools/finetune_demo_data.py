#!/usr/bin/env python3
"""Data for tools/finetune_demo.sh (docs/finetuning.md, "Results"): python3 standard library only.

The demo's task is string reversal in ChatML ("Reverse: abcde" -> "edcba", 3..8 distinct lowercase
letters; tune/synthetic_tasks.hpp's reversal_task allows repeated letters). The base model gets the skill and the chat format
separately, so that SFT only has to connect them:
  corpus.txt    pretraining documents (blank-line blocks) mixing
                - reversals in a chat-like layout under another role ("backwards"), and
                - ChatML conversations of *other* tasks on the same strings (copy, first letter,
                  last letter, length), so <|im_start|>, <|im_end|> and the roles are trained;
                the instruction "Reverse:" never appears, so the base answers it with something
                else (exact match near 0).
  sft_train.jsonl  chat records {"messages": [user "Reverse: w", assistant reverse(w)]}
  sft_val.jsonl    the same on held-out strings: in neither the corpus nor sft_train.
  base_probe.jsonl the held-out strings in the corpus's own reversal layout ({prompt, reference}
                   for `liandan eval --task generate`): how well the base reverses before any SFT.

  tools/finetune_demo_data.py OUT_DIR [--seed 1] [--corpus-examples 60000] [--train 2000] [--val 200]
"""
import argparse
import json
import os
import random

LETTERS = "abcdefghijklmnopqrstuvwxyz"

CHAT_TASKS = {  # instruction -> answer, the base model's chat skills
    "Copy": lambda w: w,
    "First letter of": lambda w: w[0],
    "Last letter of": lambda w: w[-1],
    "Length of": lambda w: str(len(w)),
}


def random_word(rng):
    # Distinct letters: a small model then reverses by finding the letter it just wrote in the input
    # and taking the one before it (a 2-layer induction circuit), with no position counting.
    return "".join(rng.sample(LETTERS, rng.randint(3, 8)))


def chatml(user, assistant):
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}<|im_end|>\n"


def plain_reversal(word):
    # The reversal skill, laid out as a chat turn with the role "backwards" (as long as "assistant"):
    # the output starts the same distance after the input's last letter as an assistant reply does,
    # so the base's position-offset reversal circuit (RoPE) serves the chat reply. A plain
    # "reverse abc = cba" layout taught a circuit that did not transfer to the chat layout.
    return f"reverse {word}<|im_end|>\n<|im_start|>backwards\n{word[::-1]}<|im_end|>\n"


def corpus_item(rng, held_out):
    word = random_word(rng)
    while word in held_out:
        word = random_word(rng)
    if rng.random() < 0.5:
        return plain_reversal(word)
    name = rng.choice(sorted(CHAT_TASKS))
    return chatml(f"{name}: {word}", CHAT_TASKS[name](word))


def write_corpus(path, rng, count, held_out, per_document=4):
    with open(path, "w", encoding="utf-8") as f:
        for first in range(0, count, per_document):
            items = [corpus_item(rng, held_out) for _ in range(min(per_document, count - first))]
            f.write("".join(items) + "\n")  # the blank line ends the document


def write_chat(path, words):
    with open(path, "w", encoding="utf-8") as f:
        for w in words:
            messages = [{"role": "user", "content": f"Reverse: {w}"}, {"role": "assistant", "content": w[::-1]}]
            f.write(json.dumps({"messages": messages}) + "\n")


def write_base_probe(path, words):
    with open(path, "w", encoding="utf-8") as f:
        for w in words:
            prompt = plain_reversal(w)[: -len(w[::-1] + "<|im_end|>\n")]
            f.write(json.dumps({"prompt": prompt, "reference": w[::-1]}) + "\n")


def distinct_words(rng, count, exclude):
    out = []
    seen = set(exclude)
    while len(out) < count:
        w = random_word(rng)
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--corpus-examples", type=int, default=60000)
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--val", type=int, default=200)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    val = distinct_words(rng, a.val, set())
    train = distinct_words(rng, a.train, set(val))
    write_chat(os.path.join(a.out, "sft_val.jsonl"), val)
    write_chat(os.path.join(a.out, "sft_train.jsonl"), train)
    write_base_probe(os.path.join(a.out, "base_probe.jsonl"), val)
    write_corpus(os.path.join(a.out, "corpus.txt"), rng, a.corpus_examples, set(val))
    print(f"{a.out}: corpus.txt ({a.corpus_examples} examples), sft_train.jsonl ({a.train}), sft_val.jsonl and base_probe.jsonl ({a.val})")


if __name__ == "__main__":
    main()
