"""``deepnum caption`` (deepnum/apps/captioning.py) and BLEU (deepnum/apps/text_metrics.py).

BLEU is checked on hand-worked cases (Papineni et al.'s "the the the ..." example, a brevity penalty, a
three-sentence corpus worked out in the comments) and, where NLTK is installed, against its
``corpus_bleu``. The grammar and vocabulary round-trip; the Show-and-Tell model's teacher-forcing
loss falls on a small batch; beam search with width 1 equals greedy decoding, and a beam wide enough
to hold every sentence finds the exhaustive search's most probable sentence. The command runs end to
end on tiny data; the slow test runs the documented command and checks its targets."""
import itertools
import json
import math

import numpy as np
import pytest

import deepnum as dn
from deepnum.apps._captioning_data import Vocabulary, caption, encode_captions
from deepnum.apps._captioning_model import Captioner, beam_search, greedy_decode
from deepnum.apps.captioning import pretrain_encoder, train_captioner
from deepnum.apps.text_metrics import bleu_statistics, corpus_bleu, exact_match
from deepnum.cli import main


def words(text):
    return text.split()


# ----------------------------------------------------------------------------- BLEU
def test_bleu_papineni_unigram_example_and_perfect_match():
    refs = [[words("the cat is on the mat"), words("there is a cat on the mat")]]
    cand = [words("the the the the the the the")]
    # "the" occurs at most twice in one reference: clipped count 2 of 7; c = 7 = the closest r, so BP = 1
    assert corpus_bleu(refs, cand, max_n=1) == pytest.approx(2 / 7)
    assert corpus_bleu(refs, cand) == 0.0   # no matching bigram: BLEU-4 is 0 without smoothing
    assert corpus_bleu([[words("a 3 left of a 7")]], [words("a 3 left of a 7")]) == 1.0


def test_bleu_brevity_penalty():
    # every n-gram of the 5-word candidate matches, but it is shorter than the 6-word reference
    score = corpus_bleu([[words("a 3 left of a 7")]], [words("a 3 left of a")])
    assert score == pytest.approx(math.exp(1 - 6 / 5))


def test_bleu_corpus_level_worked_example():
    refs = [[["a"], list("bbecc"), list("ebcadfb")], [list("befac")], [list("cdaaed"), list("ccadafdd")]]
    cands = [list("ac"), list("befacff"), list("faaabfb")]
    # unigrams: "ac" 2/2; "befacff" 5/7 (f clipped to 1); "faaabfb" 3/7 (f 1, a clipped to 2, b 0) -> 10/16
    # bigrams 0/1 + 4/6 + 1/6 ("a a") = 5/13; trigrams 0/0 + 3/5 + 0/5 = 3/10; 4-grams 0 + 2/4 + 0 = 2/8
    # c = 16; closest reference lengths 1, 5, 6 (7 is 1 from both 6 and 8: the shorter) -> r = 12 < c, BP = 1
    assert bleu_statistics(refs, cands) == ([10, 5, 3, 2], [16, 13, 10, 8], 16, 12)
    expected = (10 / 16 * 5 / 13 * 3 / 10 * 2 / 8) ** 0.25
    assert corpus_bleu(refs, cands) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.366431, abs=1e-6)


@pytest.mark.filterwarnings("ignore:\\s*The hypothesis contains 0 counts")  # NLTK's note for zero overlaps
def test_bleu_matches_nltk_on_random_corpora():
    from nltk.translate import bleu_score as nltk_bleu  # nltk is in the dev extra: the reference BLEU

    rng = np.random.default_rng(0)
    words = list("abcdef")
    for _ in range(40):
        n = int(rng.integers(1, 6))
        refs = [[list(rng.choice(words, int(rng.integers(1, 13)))) for _ in range(int(rng.integers(1, 4)))]
                for _ in range(n)]
        # NLTK counts one phantom n-gram for candidates shorter than n (its denominator is max(1, count)),
        # the paper none; with candidates of >= 4 words the two definitions agree
        cands = [list(r[0][:int(rng.integers(1, len(r[0]) + 1))]) + list(rng.choice(words, 4)) for r in refs]
        assert corpus_bleu(refs, cands) == pytest.approx(nltk_bleu.corpus_bleu(refs, cands), abs=1e-12)


def test_bleu_and_exact_match_errors():
    with pytest.raises(ValueError, match="2 candidates but 1 reference"):
        corpus_bleu([[["a"]]], [["a"], ["b"]])
    with pytest.raises(TypeError, match="token list"):
        corpus_bleu([["a b"]], [["a", "b"]])
    assert exact_match([["a", "3"], ["a", "7"]], [["a", "3"], ["a", "1"]]) == 0.5


# ----------------------------------------------------------------------------- sentences
def test_grammar_and_vocabulary():
    assert caption([3]) == ["a", "3"]
    assert " ".join(caption([3, 8])) == "a 3 left of an 8"
    assert " ".join(caption([3, 1, 7])) == "a 3 , a 1 and a 7 from left to right"
    with pytest.raises(ValueError, match="1 to 3 digits"):
        caption([1, 2, 3, 4])
    vocab = Vocabulary()
    assert (vocab.pad, vocab.bos, vocab.eos) == (0, 1, 2) and len(vocab) == 22
    sentence = caption([8, 0, 9])
    inputs, targets = encode_captions([sentence, ["a", "5"]], vocab, 13)
    ids = vocab.encode(sentence)
    assert inputs[0].tolist() == [vocab.bos, *ids] and targets[0].tolist() == [*ids, vocab.eos]
    assert inputs[1].tolist() == [vocab.bos, *vocab.encode(["a", "5"])] + [vocab.pad] * 10
    assert vocab.decode(targets[0]) == sentence
    with pytest.raises(ValueError, match="holds at most 11"):
        encode_captions([sentence], vocab, 12)


# ----------------------------------------------------------------------------- model and decoding
def _model(vocab_size=22, seed=0):
    dn.manual_seed(seed)
    return Captioner(vocab_size, 0, size=32, channels=(4, 8, 8, 8), embed_dim=8, hidden_size=16,
                     attention_dim=8).eval()


def test_teacher_forcing_loss_falls_and_shapes():
    vocab = Vocabulary()
    rng = np.random.default_rng(0)
    images = rng.random((16, 1, 32, 32)).astype(np.float32)
    sentences = [caption(list(rng.integers(0, 10, int(rng.integers(1, 4))))) for _ in range(16)]
    model = _model()
    inputs, _ = encode_captions(sentences, vocab, 13)
    assert model(dn.tensor(images[:2]), dn.tensor(inputs[:2])).shape == (2, 13, 22)
    with pytest.raises(ValueError, match=r"Captioner: expected images \(N, 1, 32, 32\), got \(2, 1, 28, 28\)"):
        model(dn.zeros(2, 1, 28, 28), dn.tensor(inputs[:2]))
    losses = train_captioner(model, images, sentences, vocab, epochs=30, batch_size=8, lr=1e-2)
    assert losses[-1] < 0.5 * losses[0]


def _sentence_logprob(model, image, ids, bos):
    with dn.no_grad():
        state = model.start(dn.tensor(image[None]))
        token, total = bos, 0.0
        for i in ids:
            logp, state = model.step(dn.tensor([token]), state)
            total += float(logp.numpy()[0, i])
            token = i
    return total


def test_beam_search_width_one_is_greedy_and_wide_beam_is_exhaustive():
    vocab_size, eos, bos, max_len = 4, 2, 1, 3
    model = _model(vocab_size, seed=3)
    images = dn.tensor(np.random.default_rng(1).random((3, 1, 32, 32)).astype(np.float32))
    greedy = greedy_decode(model, images, bos, eos, max_len)
    np.testing.assert_array_equal(beam_search(model, images, bos, eos, 1, max_len)[:, :greedy.shape[1]], greedy)
    wide = beam_search(model, images, bos, eos, vocab_size ** max_len, max_len)
    for n in range(3):
        image = images.numpy()[n]
        sentences = [s for m in range(1, max_len + 1) for s in itertools.product(range(vocab_size), repeat=m)
                     if (s[-1] == eos or m == max_len) and eos not in s[:-1]]
        best = max(sentences, key=lambda s: _sentence_logprob(model, image, s, bos))
        row = list(wide[n])
        found = row[:row.index(eos) + 1] if eos in row else row
        assert tuple(found) == best


def test_pretraining_learns_digits_anywhere_in_the_field():
    from deepnum.data.datasets.mnist import mnist_arrays

    images, labels = mnist_arrays("train")
    images = np.asarray(images[:512], np.float32).reshape(-1, 1, 28, 28)
    model = _model()
    before = [p.detach().numpy().copy() for p in model.features.parameters()]
    acc = pretrain_encoder(model, images, np.asarray(labels[:512]), epochs=3, field=32)
    assert acc > 0.5   # chance: 0.1
    after = [p.detach().numpy() for p in model.features.parameters()]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


def test_command_runs_on_tiny_data(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["caption", "--train-canvases", "48", "--test-canvases", "8", "--epochs", "1", "--size", "40",
                 "--hidden", "32", "--pretrain-epochs", "0", "--output", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m) >= {"greedy", "beam3", "train_loss"} and 0 <= m["greedy"]["bleu4"] <= 1
    assert set(m["greedy_exact_match_by_digits"]) == {"1", "2", "3"} and len(m["held_out_exact_match_per_epoch"]) == 1
    assert (out / "captions.png").stat().st_size > 0 and (out / "model.safetensors").stat().st_size > 0
    assert "exact match" in capsys.readouterr().out
    assert main(["caption", "--size", "60", "--output", str(out)]) == 2
    assert "--size must be a multiple of 8" in capsys.readouterr().err


@pytest.mark.slow
def test_default_command_reaches_target(tmp_path):
    """The documented run: exact match >= 0.80 and BLEU-4 >= 0.90 on 500 held-out canvases (test digits)."""
    assert main(["caption", "--output", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    for name in ("greedy", "beam3"):
        assert m[name]["exact_match"] >= 0.80 and m[name]["bleu4"] >= 0.90
