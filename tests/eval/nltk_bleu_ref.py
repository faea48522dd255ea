"""Reference BLEU for tests/eval/bleu_test.cpp: NLTK's corpus_bleu (Debian's python3-nltk).

Usage: nltk_bleu_ref.py DATA.json OUT.txt
DATA.json holds {"hyps": [[token, ...], ...], "refs": [[[token, ...], ...], ...]} (refs[i] are the
references of segment i). OUT.txt gets two lines: corpus_bleu with the default weights (0.25 x 4) and
no smoothing, then with SmoothingFunction().method3 (NIST geometric smoothing, sacreBLEU's "exp").
"""
import json
import sys
import warnings

from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu


def main():
    warnings.filterwarnings("ignore")  # NLTK warns when plain BLEU is 0; the test expects that
    with open(sys.argv[1], encoding="utf-8") as f:
        data = json.load(f)
    hyps, refs = data["hyps"], data["refs"]
    plain = corpus_bleu(refs, hyps)
    smoothed = corpus_bleu(refs, hyps, smoothing_function=SmoothingFunction().method3)
    with open(sys.argv[2], "w") as f:
        f.write(repr(float(plain)) + "\n" + repr(float(smoothed)) + "\n")


if __name__ == "__main__":
    main()
