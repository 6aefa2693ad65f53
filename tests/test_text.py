"""memlib.text: the pydoc corpus, the character vocabulary and the positional split."""
import string

import pytest
import torch

from memlib import text


def test_corpus_is_fixed_non_empty_and_in_charset():
    corpus = text.pydoc_corpus()
    assert len(corpus) > 100_000
    assert corpus == text.pydoc_corpus()
    allowed = set(string.printable) - set("\t\r\x0b\x0c")  # printable ASCII and newline
    assert set(corpus) <= allowed
    assert text.CHARSET == "\n" + "".join(sorted(set(string.printable) - set(string.whitespace) | {" "}))
    assert text.pydoc_corpus(max_chars=500) == corpus[:500]


def test_corpus_follows_sorted_topics():
    from pydoc_data.topics import topics

    keys = sorted(topics)
    corpus = text.pydoc_corpus()
    first = topics[keys[0]]
    assert all(ord(c) < 128 for c in first[:200])
    assert corpus.startswith(first[:200])
    # typographic quotes become ASCII; nothing outside the character set survives
    assert text.normalize("a\u2019b \u201cq\u201d \u2014 x\u2026\r\ny\u00e9") == "a'b \"q\" - x...\ny"


def test_vocab_round_trip_and_sorted():
    corpus = text.pydoc_corpus()
    vocab = text.pydoc_vocab()
    assert list(vocab.chars) == sorted(set(corpus))
    ids = vocab.encode(corpus)
    assert ids.dtype == torch.int64 and ids.shape == (len(corpus),)
    assert int(ids.min()) >= 0 and int(ids.max()) == len(vocab) - 1
    assert vocab.decode(ids) == corpus
    # the id of a character is its rank among the sorted characters
    small = text.CharVocab.from_text("cab\n")
    assert small.chars == ("\n", "a", "b", "c")
    assert small.encode("abc\nb").tolist() == [1, 2, 3, 0, 2]
    assert small.decode([3, 1, 0]) == "ca\n"
    assert small.decode(torch.tensor([], dtype=torch.int64)) == ""


def test_unknown_character_and_bad_ids_are_named():
    vocab = text.CharVocab.from_text("abc")
    with pytest.raises(ValueError, match=r"'z'.*position 2"):
        vocab.encode("abz")
    with pytest.raises(ValueError, match=r"'\\u2019'|'’'"):
        text.pydoc_vocab().encode("it\u2019s")
    with pytest.raises(ValueError, match="id 3"):
        vocab.decode([0, 3])
    with pytest.raises(ValueError, match="max_chars=0"):
        text.pydoc_corpus(max_chars=0)


def test_train_valid_split_sizes_and_positions():
    ids = torch.arange(1000)
    train, valid = text.train_valid_split(ids, 0.1)
    assert len(train) == 900 and len(valid) == 100
    assert torch.equal(torch.cat([train, valid]), ids) and int(valid[0]) == 900
    train, valid = text.train_valid_split(torch.arange(7), 0.25)
    assert (len(train), len(valid)) == (5, 2)
    for bad in (0.0, 1.0, -0.1, True):
        with pytest.raises(ValueError, match="valid_fraction="):
            text.train_valid_split(ids, bad)
    with pytest.raises(ValueError, match="non-empty"):
        text.train_valid_split(torch.arange(3), 0.1)
