"""Reference stems for tests/eval/rouge_test.cpp: NLTK's PorterStemmer() in its default mode
(NLTK_EXTENSIONS), the stemmer Google's rouge-score uses.

Usage: nltk_porter_ref.py WORDS.txt OUT.txt   (one word per line in, its stem per line out)
"""
import sys

from nltk.stem import porter


def main():
    stemmer = porter.PorterStemmer()
    with open(sys.argv[1], encoding="utf-8") as f:
        words = [line.rstrip("\n") for line in f]
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        for w in words:
            f.write(stemmer.stem(w) + "\n")


if __name__ == "__main__":
    main()
