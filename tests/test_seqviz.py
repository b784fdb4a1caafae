"""``deepnum.seqviz``: gradient norms through time equal the closed-form product of Jacobians of a
one-unit RNN and decay geometrically for tiny weights; an LSTM measurably keeps more gradient than a
tanh RNN at PyTorch's default init; clipping bounds exploding gradients; embedding neighbours and
PCA equal hand computations; captured attention rows sum to 1 and causal maps vanish above the
diagonal; the plots write PNGs of the documented size; the ``viz`` sub-commands work on a run
directory in the ``deepnum lm`` format and refuse other files with exit code 2."""
import json

import numpy as np
import pytest
from PIL import Image

import deepnum as dn
import deepnum.models.language  # noqa: F401  (registers char_lstm/char_gpt)
from deepnum import nn, seqviz
from deepnum.cli import main
from deepnum.models import create_model
from deepnum.seqviz_attention import attention_tile, char_label, stack_attention
from deepnum.viz import TITLE_PX


def png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


# ----------------------------------------------------------------------------- gradient through time
def one_unit_rnn(w_ih, w_hh, b_ih, b_hh):
    rnn = nn.RNN(1, 1, batch_first=True).double()
    rnn.load_state_dict({"weight_ih_l0": dn.tensor([[w_ih]], dtype="float64"),
                         "weight_hh_l0": dn.tensor([[w_hh]], dtype="float64"),
                         "bias_ih_l0": dn.tensor([b_ih], dtype="float64"),
                         "bias_hh_l0": dn.tensor([b_hh], dtype="float64")})
    return rnn


def closed_form_norms(x, u, w_ih, w_hh, b):
    """|∂(u·h_T)/∂x_t| = |u · w_ih (1−h_t²) Π_{s>t} w_hh (1−h_s²)| for h_t = tanh(w_ih x_t + w_hh h_{t−1} + b)."""
    n, t_len = x.shape
    h = np.zeros((n, t_len))
    prev = np.zeros(n)
    for t in range(t_len):
        prev = h[:, t] = np.tanh(w_ih * x[:, t] + w_hh * prev + b)
    local = 1 - h ** 2                                              # tanh'(a_t)
    # Π_{s=t+1..T} w_hh (1−h_s²): reversed cumulative product, 1 for t = T
    carry = np.concatenate([np.cumprod((w_hh * local)[:, :0:-1], axis=1)[:, ::-1], np.ones((n, 1))], axis=1)
    grads = u[:, None] * w_ih * local * carry
    return np.abs(grads).mean(axis=0)[::-1]


@pytest.mark.parametrize("w_hh", [0.05, -0.3, 0.9])
def test_one_unit_rnn_equals_the_product_of_jacobians(w_hh):
    rng = np.random.default_rng(0)
    x, u = rng.standard_normal((5, 30, 1)), rng.standard_normal((5, 1))
    norms = seqviz.gradient_through_time(one_unit_rnn(0.7, w_hh, 0.1, -0.05), inputs=x, readout=u)
    assert norms.shape == (30,) and norms.dtype == np.float64
    np.testing.assert_allclose(norms, closed_form_norms(x[..., 0], u[:, 0], 0.7, w_hh, 0.05), rtol=1e-10)


def test_tiny_weights_decay_geometrically():
    rng = np.random.default_rng(1)
    x, u = 0.01 * rng.standard_normal((4, 25, 1)), rng.standard_normal((4, 1))
    norms = seqviz.gradient_through_time(one_unit_rnn(0.01, 0.2, 0.0, 0.0), inputs=x, readout=u)
    # tanh' ≈ 1 at these activations, so every step back multiplies by |w_hh| = 0.2
    np.testing.assert_allclose(norms[1:] / norms[:-1], 0.2, rtol=1e-3)
    np.testing.assert_allclose(norms[0], 0.01 * np.abs(u).mean(), rtol=1e-3)


def test_lstm_keeps_more_gradient_than_a_tanh_rnn_at_default_init():
    kw = {"seq_len": 60, "batch_size": 8, "hidden_size": 32, "seed": 0}
    rnn = seqviz.gradient_through_time("rnn", **kw)
    lstm = seqviz.gradient_through_time("lstm", **kw)
    forget1 = seqviz.gradient_through_time(seqviz.make_recurrent("lstm", 8, 32, seed=0, forget_bias=1.0), **{
        k: v for k, v in kw.items() if k != "hidden_size"})
    ratio = {name: norms[50] / norms[1] for name, norms in (("rnn", rnn), ("lstm", lstm), ("forget1", forget1))}
    assert ratio["rnn"] < 1e-6 and ratio["lstm"] < 1e-3        # both vanish at PyTorch's default init ...
    assert ratio["lstm"] > 30 * ratio["rnn"]                  # ... the LSTM measurably less
    assert ratio["forget1"] > 1e3 * ratio["lstm"]             # forget gates near 1 keep the cell's gradient


def test_gradient_through_time_checks_its_arguments():
    with pytest.raises(ValueError, match="kind must be one of rnn, lstm, gru"):
        seqviz.gradient_through_time("transformer")
    with pytest.raises(TypeError, match="Linear is not a recurrent layer"):
        seqviz.gradient_through_time(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"inputs must be \(N, T, 8\)"):
        seqviz.gradient_through_time("gru", inputs=np.zeros((2, 5, 3)), hidden_size=4)
    with pytest.raises(ValueError, match="bidirectional"):
        seqviz.gradient_through_time(nn.GRU(2, 3, bidirectional=True), seq_len=4)
    with pytest.raises(ValueError, match="forget_bias is for an LSTM"):
        seqviz.make_recurrent("rnn", forget_bias=1.0)


def test_not_batch_first_layers_give_the_same_norms():
    dn.manual_seed(3)
    gru = nn.GRU(3, 5)
    x = np.random.default_rng(2).standard_normal((4, 9, 3)).astype(np.float32)
    a = seqviz.gradient_through_time(gru, inputs=x, seed=1)
    gru.batch_first = True
    b = seqviz.gradient_through_time(gru, inputs=x, seed=1)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert all(p.grad is None for p in gru.parameters())                   # only ∂L/∂x was computed


def test_exploding_gradients_are_clipped():
    rows = seqviz.exploding_gradient_table((1.0, 4.0), seq_len=40, batch_size=4, hidden_size=16, max_norm=1.0, lr=0.1)
    assert [r["scale"] for r in rows] == [1.0, 4.0]
    assert rows[1]["grad_norm"] > 1e3 * rows[0]["grad_norm"]               # scaled-up W_hh: the gradient explodes
    for r in rows:
        assert r["clipped_norm"] == pytest.approx(min(r["grad_norm"], 1.0), rel=1e-4)
        assert r["clipped_step"] == pytest.approx(0.1 * r["clipped_norm"]) and r["step"] == pytest.approx(
            0.1 * r["grad_norm"], rel=1e-4)


# ----------------------------------------------------------------------------- embeddings
VOCAB = "aeAbE.,"
WEIGHT = np.array([[1.0, 0.0, 0.0],      # a
                   [0.9, 0.1, 0.0],      # e: near a
                   [0.8, 0.0, 0.3],      # A
                   [0.0, 1.0, 0.0],      # b
                   [0.7, 0.1, 0.4],      # E
                   [0.0, 0.0, -1.0],     # .
                   [0.0, 0.1, -2.0]],    # ,: same direction as '.', twice as long
                  dtype=np.float32)


def test_embedding_neighbours_by_cosine_and_distance():
    cos = seqviz.embedding_neighbours(WEIGHT, VOCAB, "a.b", k=2)
    unit = WEIGHT / np.linalg.norm(WEIGHT, axis=1, keepdims=True)
    assert [c for c, _ in cos["a"]] == ["e", "A"] and cos["a"][0][1] == pytest.approx(unit[0] @ unit[1])
    # a, e and b are all at cosine 0 from '.': ties keep the vocabulary order
    assert [c for c, _ in cos["."]] == [",", "a"] and cos["."][0][1] == pytest.approx(unit[5] @ unit[6])
    assert [c for c, _ in cos["b"]] == ["E", "e"]                  # 0.1/0.812 > 0.1/0.906
    euclid = seqviz.embedding_neighbours(dn.tensor(WEIGHT), list(VOCAB), ".", k=3, metric="euclidean")
    dist = np.linalg.norm(WEIGHT - WEIGHT[5], axis=1)
    order = [VOCAB[i] for i in np.argsort(dist) if i != 5][:3]
    assert [c for c, _ in euclid["."]] == order
    np.testing.assert_allclose([s for _, s in euclid["."]], np.sort(dist)[1:4], rtol=1e-6)
    emb = nn.Embedding(7, 3)
    emb.weight.data[...] = WEIGHT
    everything = seqviz.embedding_neighbours(emb, VOCAB, "a", k=100)["a"]             # k capped at V − 1
    assert [c for c, _ in everything] == ["e", "A", "E", "b", ".", ","]


def test_embedding_neighbours_errors():
    with pytest.raises(ValueError, match="'z', '3' not in the vocabulary of 7 entries"):
        seqviz.embedding_neighbours(WEIGHT, VOCAB, "az3")
    with pytest.raises(ValueError, match="the vocabulary has 6 entries but the weight has 7 rows"):
        seqviz.embedding_neighbours(WEIGHT, VOCAB[:-1], "a")
    with pytest.raises(ValueError, match="k must be a positive integer"):
        seqviz.embedding_neighbours(WEIGHT, VOCAB, "a", k=0)
    with pytest.raises(ValueError, match="metric must be"):
        seqviz.embedding_neighbours(WEIGHT, VOCAB, "a", metric="dot")


def test_embedding_pca_matches_the_covariance_eigenvectors():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((40, 6)) * np.array([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    coords, explained = seqviz.embedding_pca(w, 2)
    values, vectors = np.linalg.eigh(np.cov(w, rowvar=False))
    top = vectors[:, ::-1][:, :2]
    centred = w - w.mean(0)
    expected = centred @ top
    expected *= np.sign(expected[np.abs(expected).argmax(0), [0, 1]])
    np.testing.assert_allclose(coords, expected, atol=1e-10)
    np.testing.assert_allclose(explained, values[::-1][:2] / values.sum(), rtol=1e-10)


def test_char_classes_and_labels():
    assert [seqviz.char_class(c) for c in "aBy Z3.\n"] == [
        "lower vowel", "upper consonant", "lower vowel", "whitespace", "upper consonant", "digit", "punctuation",
        "whitespace"]
    assert [char_label(c) for c in " \n\tx\x01"] == ["␣", "↵", "⇥", "x", "\\x01"]


# ----------------------------------------------------------------------------- attention
def test_captured_encoder_attention_is_row_stochastic_causal_and_leaves_the_model_alone():
    dn.manual_seed(0)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 4, 32, batch_first=True), 2,
                                    enable_nested_tensor=False)
    x = dn.randn(2, 7, 16)
    mask = nn.Transformer.generate_square_subsequent_mask(7)
    maps = seqviz.capture_attention(encoder, x, mask=mask, is_causal=True)
    assert [m.shape for m in maps] == [(2, 4, 7, 7)] * 2 and maps[0].dtype == np.float32
    for m in maps:
        np.testing.assert_allclose(m.sum(-1), 1, rtol=1e-5)
        assert np.all(np.triu(m, 1) == 0)
    layer = encoder.layers[0]                                     # the first map by hand: softmax(QKᵀ/√d + M)
    q, k, _ = np.split(x.numpy() @ layer.self_attn.in_proj_weight.detach().numpy().T
                       + layer.self_attn.in_proj_bias.detach().numpy(), 3, axis=-1)
    heads = lambda t: t.reshape(2, 7, 4, 4).transpose(0, 2, 1, 3)  # noqa: E731
    scores = heads(q) @ heads(k).transpose(0, 1, 3, 2) / 2.0 + mask.numpy()
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    np.testing.assert_allclose(maps[0], probs / probs.sum(-1, keepdims=True), atol=1e-5)
    assert encoder.training and all("forward" not in m.__dict__ for m in encoder.modules())
    with pytest.raises(ValueError, match="Linear has no nn.MultiheadAttention layer"):
        seqviz.capture_attention(nn.Linear(2, 2), x)


def test_char_gpt_attention_maps_are_causal():
    dn.manual_seed(0)
    gpt = create_model("char_gpt", vocab_size=11, block_size=16, d_model=16, n_layer=2, n_head=2)
    maps = seqviz.capture_attention(gpt, dn.randint(0, 11, (1, 9)))
    assert [m.shape for m in maps] == [(1, 2, 9, 9)] * 2
    for m in maps:
        np.testing.assert_allclose(m.sum(-1), 1, rtol=1e-5)
        assert np.all(np.triu(m, 1) == 0)


def test_attention_statistics_on_hand_made_maps():
    eye = np.eye(4)
    shift = np.eye(4, k=-1)
    shift[0, 0] = 1                                               # attend to the previous token (the first: itself)
    uniform = np.tril(np.ones((4, 4))) / np.arange(1, 5)[:, None]
    stats = seqviz.attention_statistics(np.stack([eye, shift, uniform])[None])
    np.testing.assert_allclose(stats["self"][0], [1, 0.25, np.mean(1 / np.arange(1, 5))])
    np.testing.assert_allclose(stats["previous"][0], [0, 1, np.mean([1 / 2, 1 / 3, 1 / 4])])
    np.testing.assert_allclose(stats["distance"][0], [0, 0.75, np.mean([0, 0.5, 1, 1.5])])
    np.testing.assert_allclose(stats["entropy"][0], [0, 0, np.mean(np.log(np.arange(1, 5)))])
    np.testing.assert_allclose(stats["offset"][0], [[1, 0, 0, 0], [0.25, 1, 0, 0],
                                                    [np.mean(1 / np.arange(1, 5)), np.mean([1 / 2, 1 / 3, 1 / 4]),
                                                     np.mean([1 / 3, 1 / 4]), 1 / 4]])
    assert stack_attention([np.zeros((2, 3, 4, 4)), np.zeros((2, 3, 4, 4))], sample=1).shape == (2, 3, 4, 4)
    with pytest.raises(ValueError, match="expected maps"):
        stack_attention(np.zeros((4, 4)))


# ----------------------------------------------------------------------------- figures
def test_plots_write_pngs_of_the_documented_size(tmp_path):
    maps = np.random.default_rng(0).random((2, 3, 12, 12)).astype(np.float32)
    drawn = seqviz.plot_attention(maps, list("hello world\n"), tmp_path / "att.png")
    assert drawn.shape == (2, 3, 12, 12)
    tile = attention_tile(12)
    assert png_size(tmp_path / "att.png") == (3 * tile, 2 * tile + TITLE_PX) == (3 * 192, 2 * 192 + TITLE_PX)
    coords = seqviz.plot_embeddings(WEIGHT, VOCAB, tmp_path / "emb.png", size=320)
    assert coords.shape == (7, 2) and png_size(tmp_path / "emb.png") == (320, 320 + TITLE_PX)
    curves = {"a": np.geomspace(1, 1e-9, 30), "b": np.r_[np.geomspace(1, 1e-3, 29), 0.0]}
    seqviz.plot_gradient_through_time(curves, tmp_path / "g1.png", panel_px=256)
    assert png_size(tmp_path / "g1.png") == seqviz.gradient_figure_size(1, 256) == (256, 192 + TITLE_PX)
    table = [{"scale": 1.0, "grad_norm": 2.0, "clipped_norm": 1.0},
             {"scale": 3.0, "grad_norm": 1e5, "clipped_norm": 1.0}]
    seqviz.plot_gradient_through_time(curves, tmp_path / "g3.png", exploding=curves, clipping=table)
    assert png_size(tmp_path / "g3.png") == seqviz.gradient_figure_size(3) == (3 * 448, 336 + TITLE_PX)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["att.png", "emb.png", "g1.png", "g3.png"]
    with pytest.raises(ValueError, match="12 queries and 12 keys but 3 query"):
        seqviz.plot_attention(maps, list("abc"), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


# ----------------------------------------------------------------------------- command line
VOCAB_LM = "\n !',.:;?AEIOTabdehilmnorstuw"


def write_lm_run(directory, name, **kwargs):
    """A run directory in the format `deepnum lm` writes (see deepnum/_cli_lm.py)."""
    from deepnum._cli_common import model_metadata
    from deepnum.io import save

    dn.manual_seed(0)
    kwargs = {"vocab_size": len(VOCAB_LM), **kwargs}
    model = create_model(name, **kwargs)
    directory.mkdir()
    meta = {**model_metadata(name, kwargs, "shakespeare", None), "deepnum.kind": "language-model",
            "deepnum.vocab": VOCAB_LM}
    save(model.state_dict(), directory / "model.safetensors", metadata=meta)
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    gpt = write_lm_run(root / "gpt", "char_gpt", block_size=32, d_model=16, n_layer=2, n_head=2)
    lstm = write_lm_run(root / "lstm", "char_lstm", embed_dim=8, hidden_size=16)
    return root, gpt, lstm


def test_cli_neighbours_and_text_attention(runs, tmp_path, capsys):
    _, gpt, lstm = runs
    assert main(["viz", "neighbours", str(lstm), "--chars", "aeT.", "--k", "3",
                 "--output", str(tmp_path / "e.png")]) == 0
    out = capsys.readouterr().out
    run = seqviz.load_language_model(lstm)
    expected = seqviz.embedding_neighbours(run.model.embedding, VOCAB_LM, "a", k=3)["a"]
    assert "char_lstm" in out and f"a → {expected[0][0]} {expected[0][1]:.2f}" in out
    assert png_size(tmp_path / "e.png") == (640, 640 + TITLE_PX)
    assert main(["viz", "text-attention", str(gpt / "model.safetensors"), "--text", "To be, or not",
                 "--output", str(tmp_path / "a.png")]) == 0
    out = capsys.readouterr().out
    assert "char_gpt" in out and out.count("\n") >= 6 and "wrote" in out
    assert png_size(tmp_path / "a.png") == (2 * attention_tile(13), 2 * attention_tile(13) + TITLE_PX)


def test_cli_vanishing_gradient(tmp_path, capsys):
    assert main(["viz", "vanishing-gradient", "--seq-len", "12", "--hidden-size", "8", "--batch-size", "4",
                 "--output", str(tmp_path / "g.png")]) == 0
    out = capsys.readouterr().out
    assert "tanh RNN" in out and "LSTM" in out and "clip_grad_norm_" in out
    assert png_size(tmp_path / "g.png") == seqviz.gradient_figure_size(3)


def test_cli_refuses_what_is_not_a_language_model(runs, tmp_path, capsys):
    root, gpt, lstm = runs
    assert main(["viz", "text-attention", str(lstm)]) == 2
    assert "char_lstm, which has no attention" in capsys.readouterr().err
    bogus = tmp_path / "model.safetensors"
    bogus.write_text("not a safetensors file")
    assert main(["viz", "neighbours", str(bogus)]) == 2
    assert "deepnum viz: error:" in capsys.readouterr().err
    classifier = tmp_path / "lenet"
    classifier.mkdir()
    from deepnum._cli_common import model_metadata
    from deepnum.io import save

    save(create_model("lenet5").state_dict(), classifier / "model.safetensors",
         metadata=model_metadata("lenet5", {}, "mnist", None))
    assert main(["viz", "neighbours", str(classifier)]) == 2
    assert "holds a lenet5 model: not a character language model" in capsys.readouterr().err
    assert main(["viz", "neighbours", str(root / "missing")]) == 2
    assert main(["viz", "text-attention", str(gpt), "--text", "xyz~"]) == 2
    assert "'x', 'y', 'z', '~'" in capsys.readouterr().err
    assert main(["viz", "neighbours", str(lstm), "--k", "0"]) == 2         # argparse usage error


def test_cli_help_lists_the_sequence_commands(capsys):
    assert main(["viz", "--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("vanishing-gradient", "text-attention", "neighbours"))
    assert main(["viz", "text-attention", "--help"]) == 0
    assert "char_gpt" in capsys.readouterr().out


def test_load_language_model_reads_the_metadata(runs):
    _, gpt, _ = runs
    run = seqviz.load_language_model(gpt)
    assert run.name == "char_gpt" and run.vocab == VOCAB_LM and not run.model.training
    assert run.kwargs == {"vocab_size": len(VOCAB_LM), "block_size": 32, "d_model": 16, "n_layer": 2, "n_head": 2}
    assert json.loads(json.dumps(run.kwargs)) == run.kwargs
