"""The PANNs Cnn14 embedder with the real architecture and a random-weight checkpoint in the official layout."""

import http.server
import json
import os
import subprocess
import sys
import textwrap
import threading
from functools import partial

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from audiofind.embedders import panns  # noqa: E402
from audiofind.embedders.base import EmbedderUnavailable  # noqa: E402
from audiofind.labels import audioset_labels  # noqa: E402

SR = 32000


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """Random Cnn14 weights saved the way the official checkpoint is: {"model": state_dict}."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoint") / "Cnn14_random.pth"
    torch.save({"model": panns.build_cnn14().state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def cnn14(checkpoint):
    """The whole Cnn14 as panns-inference defines it, the reference (embedders keep only what they run)."""
    return panns.load_cnn14(checkpoint)


@pytest.fixture(scope="session")
def embedder(checkpoint, tmp_path_factory):
    config = {"DATA_DIR": str(tmp_path_factory.mktemp("instance")), "PANNS_CHECKPOINT": str(checkpoint),
              "PANNS_CHECKPOINT_URL": "http://127.0.0.1:9/", "DEVICE": "cpu", "PANNS_BATCH_SIZE": 2,
              "PANNS_ENGINE": "torch", "PANNS_PRECISION": "float32"}  # the reference the other paths are compared with
    return panns.PannsEmbedder(config)


def music(seconds, seed=0):
    """A few seconds of chords with a beat, mono float32 at 32 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    signal = np.zeros_like(t)
    for k, f in enumerate(rng.choice([110, 147, 196, 220, 262, 330, 392], size=4, replace=False)):
        signal += np.sin(2 * np.pi * f * t + k) * (0.5 + 0.5 * np.sin(2 * np.pi * (0.3 + k * 0.1) * t))
    beat = (np.sin(2 * np.pi * 2 * t) > 0.95) * rng.standard_normal(len(t))
    return (0.1 * signal + 0.2 * beat).astype(np.float32)


def blocks(signal, sizes=(1000, 4410, 32000, 777)):
    i = k = 0
    while i < len(signal):
        n = sizes[k % len(sizes)]
        yield signal[i:i + n]
        i, k = i + n, k + 1


def whole_file_logmel(model, signal):
    with torch.inference_mode():
        return model.logmel_extractor(model.spectrogram_extractor(torch.from_numpy(signal)[None]))


def reference_trunk(model, logmel):
    """Cnn14's forward from log-mel to the 2048-channel sequence, with panns_inference's own modules."""
    with torch.inference_mode():
        x = model.bn0(logmel.transpose(1, 3)).transpose(1, 3)
        for i in range(1, 7):
            x = getattr(model, f"conv_block{i}")(x, pool_size=(2, 2) if i < 6 else (1, 1), pool_type="avg")
        return x.mean(dim=3)


def test_import_and_build_never_touch_panns_data_or_network(tmp_path):
    script = textwrap.dedent("""
        import os, socket, subprocess, sys
        def refuse(*args, **kwargs):
            raise AssertionError(f"network or shell use: {args!r}")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        os.system = refuse
        subprocess.Popen = refuse
        from audiofind.embedders import panns
        assert "torch" not in sys.modules, "the plugin module must not import torch at import time"
        model = panns.build_cnn14()
        assert type(model).__name__ == "Cnn14"
        assert not hasattr(sys.modules["panns_inference"], "AudioTagging"), "the package __init__ ran"
        assert "panns_inference.config" not in sys.modules
        print("ok")
    """)
    env = dict(os.environ, HOME=str(tmp_path), MPLCONFIGDIR=str(tmp_path / "mpl"))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert not (tmp_path / "panns_data").exists()
    assert list(tmp_path.iterdir()) == []


def test_labels_ship_with_the_package():
    labels = audioset_labels()
    assert len(labels) == 527
    assert labels[0] == "Speech"
    assert labels[137] == "Music"


def test_registers_as_a_plugin():
    assert panns.register_embedders() == [panns.PannsEmbedder]
    e = panns.PannsEmbedder({"DATA_DIR": "x"})
    assert e.identity == {"name": "panns", "version": "cnn14-1", "dim": 4096, "window_dim": 2048}


def test_default_checkpoint_path_is_in_the_data_dir(tmp_path):
    config = {"DATA_DIR": str(tmp_path), "PANNS_CHECKPOINT": ""}
    assert panns.checkpoint_path(config) == tmp_path.resolve() / "models" / "Cnn14_mAP=0.431.pth"


def test_missing_checkpoint_offline_names_the_path_and_url(tmp_path):
    path = tmp_path / "models" / "Cnn14.pth"
    e = panns.PannsEmbedder({"DATA_DIR": str(tmp_path), "PANNS_CHECKPOINT": str(path),
                             "PANNS_CHECKPOINT_URL": "http://127.0.0.1:9/Cnn14.pth", "DEVICE": "cpu"})
    with pytest.raises(EmbedderUnavailable) as info:
        e.check()
    message = str(info.value)
    assert str(path) in message and "http://127.0.0.1:9/Cnn14.pth" in message
    assert not path.exists()
    assert list(path.parent.iterdir()) == []  # no partial download left behind


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"not a checkpoint")
    e = panns.PannsEmbedder({"DATA_DIR": str(tmp_path), "PANNS_CHECKPOINT": str(path), "DEVICE": "cpu"})
    with pytest.raises(EmbedderUnavailable, match="broken.pth"):
        e.check()


@pytest.fixture
def http_server(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_downloads_a_missing_checkpoint_once_with_progress(http_server, checkpoint, tmp_path, monkeypatch, capsys):
    folder, base = http_server
    os.link(checkpoint, folder / "Cnn14.pth")
    monkeypatch.setattr(panns.checkpoint, "CHECKPOINT_BYTES", checkpoint.stat().st_size)
    instance = tmp_path / "instance"
    e = panns.PannsEmbedder({"DATA_DIR": str(instance), "PANNS_CHECKPOINT": "",
                             "PANNS_CHECKPOINT_URL": f"{base}/Cnn14.pth", "DEVICE": "cpu", "PANNS_ENGINE": "torch"})
    e.check()
    target = instance / "models" / "Cnn14_mAP=0.431.pth"
    assert target.stat().st_size == checkpoint.stat().st_size
    assert "Downloading Cnn14_mAP=0.431.pth" in capsys.readouterr().err
    assert e.front is not None
    # A second process finds the file and downloads nothing.
    (folder / "Cnn14.pth").unlink()
    panns.PannsEmbedder(e.config).check()
    assert [p.name for p in target.parent.glob("*.pth*")] == [target.name]  # beside it only derived files
    assert not list(target.parent.glob("*.part"))


def test_download_of_the_wrong_size_is_rejected(http_server, tmp_path, monkeypatch):
    folder, base = http_server
    (folder / "short.pth").write_bytes(b"x" * 1000)
    monkeypatch.setattr(panns.checkpoint, "CHECKPOINT_BYTES", 5000)
    path = tmp_path / "models" / "Cnn14.pth"
    with pytest.raises(EmbedderUnavailable) as info:
        panns.download_checkpoint(f"{base}/short.pth", path)
    assert "1,000 bytes, expected 5,000" in str(info.value)
    assert str(path) in str(info.value)
    assert list(path.parent.iterdir()) == []


def test_streamed_logmel_equals_whole_file(embedder, cnn14):
    """Our front end (an FFT and the checkpoint's mel matrix) against torchlibrosa's as panns_inference builds it."""
    front = embedder._load()
    signal = music(7.3)
    stream = panns.LogmelStream(front, "cpu")
    frames = [stream.push(b) for b in blocks(signal)] + [stream.finish()]
    ours = np.concatenate(frames)
    reference = whole_file_logmel(cnn14, signal)[0, 0].numpy()
    assert ours.shape == reference.shape
    # dB values: only near-silent bins (-90 dB) differ, by float rounding in the log
    np.testing.assert_allclose(ours, reference, rtol=2e-3, atol=1e-3)


def test_short_track_window_is_cnn14_forward_on_the_clip(embedder, cnn14):
    signal = music(6.0, seed=1)
    result = embedder.embed(blocks(signal))
    with torch.inference_mode():
        out = cnn14(torch.from_numpy(signal)[None])
    expected = out["embedding"][0].numpy()
    assert result.window_vectors.shape == (1, 2048)
    np.testing.assert_allclose(result.window_vectors[0], expected / np.linalg.norm(expected), atol=1e-4)
    np.testing.assert_allclose(result.windows, [[0.0, 6.0]], atol=1e-6)
    scores = out["clipwise_output"][0].numpy()
    best = np.argsort(-scores)[:5]
    assert [label for label, _ in result.tags] == [audioset_labels()[i] for i in best]
    np.testing.assert_allclose([s for _, s in result.tags], scores[best], rtol=1e-4)


def test_chunked_windows_equal_one_whole_track_pass(embedder, cnn14, monkeypatch):
    monkeypatch.setattr(panns, "CHUNK_FRAMES", 256)  # many chunks on 16 s of audio
    signal = music(16.0, seed=2)
    sequence, duration = embedder.feature_sequence(blocks(signal))
    model = cnn14
    logmel = whole_file_logmel(model, signal)
    whole = reference_trunk(model, logmel)[0].numpy().T
    assert duration == pytest.approx(16.0)
    assert sequence.shape == whole.shape == (1601 // 32, 2048)
    np.testing.assert_allclose(sequence, whole, atol=1e-5 * np.abs(whole).max())

    result = embedder.embed(blocks(signal))
    spans = panns.window_spans(len(whole))
    assert spans == [(0, 32), (16, 48), (18, 50)]
    np.testing.assert_allclose(result.windows, [[0, 10.24], [5.12, 15.36], [5.76, 16.0]], atol=1e-4)
    # Cnn14's clip head, written out: max + mean over time, fc1, relu; then L2-normalised.
    w = model.fc1.weight.detach().numpy()
    b = model.fc1.bias.detach().numpy()
    for (s, e), vector in zip(spans, result.window_vectors):
        pooled = whole[s:e].max(axis=0) + whole[s:e].mean(axis=0)
        expected = np.maximum(w @ pooled + b, 0)
        np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), atol=1e-4)
    assert result.vector.shape == (4096,)
    assert result.vector.dtype == np.float32
    assert np.linalg.norm(result.vector) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(np.linalg.norm(result.window_vectors, axis=1), 1.0, atol=1e-5)
    concat = np.concatenate([result.window_vectors.mean(axis=0), result.window_vectors.max(axis=0)])
    np.testing.assert_allclose(result.vector, concat / np.linalg.norm(concat), atol=1e-6)
    assert len(result.tags) == 5 and all(label in audioset_labels() for label, _ in result.tags)


def test_very_short_track_gives_one_window(embedder):
    result = embedder.embed([music(0.3, seed=3)])
    assert result.window_vectors.shape == (1, 2048)
    np.testing.assert_allclose(result.windows, [[0.0, 0.3]], atol=1e-6)
    assert np.isfinite(result.vector).all()


def test_unknown_precision_is_a_clear_error(checkpoint, tmp_path):
    e = panns.PannsEmbedder({"DATA_DIR": str(tmp_path), "PANNS_CHECKPOINT": str(checkpoint), "DEVICE": "cpu",
                             "PANNS_PRECISION": "float8"})
    with pytest.raises(EmbedderUnavailable, match="float8"):
        e.check()


@pytest.fixture(scope="session")
def onnx_checkpoint(checkpoint, tmp_path_factory):
    """A copy of the checkpoint in its own folder: the ONNX caches are written beside it."""
    path = tmp_path_factory.mktemp("onnx") / checkpoint.name
    os.link(checkpoint, path)
    return path


@pytest.mark.parametrize("engine, cached", [("onnx", ["trunk"]), ("winograd", ["trunk-blocks1-2"])])
def test_onnx_runtime_float32_engines_give_the_reference_embeddings(embedder, onnx_checkpoint, tmp_path, engine, cached,
                                                                    monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(panns.FastTrunk, "HEAD_PIECE", 96)  # blocks 1-2 in several pieces even on 4 s
    e = panns.PannsEmbedder(dict(embedder.config, PANNS_ENGINE=engine, PANNS_CHECKPOINT=str(onnx_checkpoint),
                                 DATA_DIR=str(tmp_path)))
    signal = music(4.0, seed=4)  # 401 log-mel frames
    ours = e.embed(blocks(signal))
    reference = embedder.embed(blocks(signal))
    np.testing.assert_allclose(ours.window_vectors, reference.window_vectors, atol=1e-4)
    assert [t for t, _ in ours.tags] == [t for t, _ in reference.tags]
    for kind in cached:  # exported once, beside the checkpoint, keyed by its size
        files = list(onnx_checkpoint.parent.glob(f"*.{kind}.onnx"))
        assert len(files) == 1 and str(onnx_checkpoint.stat().st_size) in files[0].name


@pytest.mark.parametrize("shape", [(1, 13, 9, 8), (2, 20, 16, 16), (1, 3, 2, 4)])
def test_fast_convolutions_equal_the_direct_one(shape):
    """Any picture size (tiles past the edge are padded and cut off), several batch items."""
    from audiofind.embedders.panns.convolutions import GemmConv3x3, WinogradConv3x3

    n, h, w, c = shape
    generator = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(n, c, h, w, generator=generator)
    weight = torch.randn(2 * c, c, 3, 3, generator=generator) / (3 * c ** 0.5)
    scale, shift = torch.rand(2 * c, generator=generator) + 0.5, torch.randn(2 * c, generator=generator) * 0.1
    direct = torch.nn.functional.conv2d(x, weight, padding=1) * scale[:, None, None] + shift[:, None, None]
    direct = torch.relu(direct).permute(0, 2, 3, 1)
    channels_last = x.permute(0, 2, 3, 1).contiguous()
    for tile, tile_rows in ((4, 1), (4, 2), (4, 100), (2, 3)):
        ours = WinogradConv3x3(*WinogradConv3x3.transform(weight, scale, shift, tile=tile), tile_rows)(channels_last)
        torch.testing.assert_close(ours, direct, rtol=1e-4, atol=1e-5)
    ours = GemmConv3x3(*GemmConv3x3.transform(weight, scale, shift))(channels_last)
    torch.testing.assert_close(ours, direct, rtol=1e-4, atol=1e-5)


def test_unknown_engine_is_a_clear_error(checkpoint, tmp_path):
    e = panns.PannsEmbedder({"DATA_DIR": str(tmp_path), "PANNS_CHECKPOINT": str(checkpoint), "DEVICE": "cpu",
                             "PANNS_ENGINE": "tensorrt"})
    with pytest.raises(EmbedderUnavailable, match="tensorrt.*winograd"):
        e.check()


def test_int8_calibrates_on_catalog_audio_and_refuses_when_inaccurate(embedder, onnx_checkpoint, tmp_path,
                                                                      monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(panns.int8, "CALIBRATION_TRACKS", 3)
    config = dict(embedder.config, PANNS_PRECISION="int8", PANNS_CHECKPOINT=str(onnx_checkpoint),
                  DATA_DIR=str(tmp_path))
    e = panns.PannsEmbedder(config)
    tracks = [music(2.0, seed=10 + i) for i in range(3)]
    first = [e.embed(blocks(t)) for t in tracks]  # float32 while it gathers calibration clips, then int8
    report = json.loads(next(onnx_checkpoint.parent.glob("*.trunk-int8.json")).read_text())
    assert report["tracks"] == 3 and report["held_out_clips"] == 1 and report["cosine"] >= 0.99
    np.testing.assert_allclose(first[0].window_vectors, embedder.embed(blocks(tracks[0])).window_vectors, atol=1e-4)
    quantised = e.embed(blocks(tracks[1]))
    assert float(quantised.vector @ first[1].vector) >= 0.99
    # Once calibrated and passing its self-check, int8 is one of the candidates that `auto` times.
    auto = panns.PannsEmbedder(dict(config, PANNS_PRECISION="auto"))
    auto.device = torch.device("cpu")
    assert "int8-onnx" in auto.candidates("auto") and "int8-onnx" not in auto.candidates("torch")
    # Another process reuses the calibration; a stricter threshold makes it refuse with the measured figure.
    monkeypatch.setattr(panns.int8, "INT8_MIN_COSINE", 1.01)
    assert "int8-onnx" not in auto.candidates("auto")
    with pytest.raises(EmbedderUnavailable) as info:
        panns.PannsEmbedder(config).check()
    assert f"cosine {report['cosine']:.4f}" in str(info.value) and "float32" in str(info.value)


def test_float16_needs_a_gpu(checkpoint, tmp_path):
    e = panns.PannsEmbedder({"DATA_DIR": str(tmp_path), "PANNS_CHECKPOINT": str(checkpoint), "DEVICE": "cpu",
                             "PANNS_PRECISION": "float16"})
    with pytest.raises(EmbedderUnavailable, match="bfloat16"):
        e.check()


@pytest.mark.parametrize("engine", ["torch", "winograd"])
def test_bfloat16_stays_close_to_float32(embedder, engine):
    if not panns.cpu_has_bf16():
        pytest.skip("this CPU has no native bfloat16")
    e = panns.PannsEmbedder(dict(embedder.config, PANNS_PRECISION="bfloat16", PANNS_ENGINE=engine))
    signal = music(4.0, seed=5)
    ours, reference = e.embed(blocks(signal)), embedder.embed(blocks(signal))
    assert float(ours.vector @ reference.vector) >= 0.99
    assert (ours.window_vectors * reference.window_vectors).sum(axis=1).min() >= 0.99


def test_batched_chunks_are_reassembled_in_order():
    """Chunks of different lengths batch separately and come back in track order (a stand-in trunk)."""

    def run(batch):  # (b, 1, frames, 64) -> (b, 2048, frames // 32): mean of each 32-frame block
        b, _, frames, _ = batch.shape
        steps = batch[:, 0, : frames // 32 * 32].reshape(b, frames // 32, 32, 64).mean(axis=(2, 3))
        return np.repeat(steps[:, None, :], 2048, axis=1)

    logmel = np.random.default_rng(0).normal(size=(3001, 64)).astype(np.float32)
    expected = run(logmel[None, None])[0].T
    for batch_size in (1, 2, 3):
        chunks = panns.ChunkedTrunk(run, chunk_frames=320, batch_size=batch_size)
        for i in range(0, len(logmel), 500):
            chunks.push(logmel[i:i + 500])
        np.testing.assert_allclose(chunks.finish(), expected, atol=1e-6)


def test_folded_trunk_equals_cnn14s_trunk(checkpoint, cnn14):
    logmel = torch.from_numpy(np.random.default_rng(6).normal(-40, 15, size=(2, 1, 320, 64)).astype(np.float32))
    folded = panns.folded_trunk(panns.fold_trunk(panns.read_checkpoint(checkpoint)))
    with torch.inference_mode():
        ours = folded(logmel)
    reference = reference_trunk(cnn14, logmel)
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5 * float(reference.abs().max()))


@pytest.fixture
def own_checkpoint(checkpoint, tmp_path):
    """The checkpoint in a folder of its own, so its caches (converted weights, the engine decision) start empty."""
    path = tmp_path / "models" / checkpoint.name
    path.parent.mkdir()
    os.link(checkpoint, path)
    return path


def auto_config(path, tmp_path, **extra):
    return {"DATA_DIR": str(tmp_path), "PANNS_CHECKPOINT": str(path), "DEVICE": "cpu", **extra}


def test_a_second_load_reads_only_the_converted_weights(embedder, own_checkpoint, tmp_path, monkeypatch):
    config = auto_config(own_checkpoint, tmp_path, PANNS_PRECISION="float32", PANNS_ENGINE="torch")
    first = panns.PannsEmbedder(config)
    signal = music(3.0, seed=7)
    expected = first.embed(blocks(signal))
    np.testing.assert_allclose(expected.window_vectors, embedder.embed(blocks(signal)).window_vectors, atol=1e-5)

    def refuse(path):
        raise AssertionError("the checkpoint was read again")

    monkeypatch.setattr(panns.checkpoint, "read_checkpoint", refuse)
    monkeypatch.setattr(panns.reference, "build_cnn14", refuse)
    again = panns.PannsEmbedder(config)
    np.testing.assert_array_equal(again.embed(blocks(signal)).vector, expected.vector)
    assert again.summary()["how"] == "configured"
    # A damaged converted file is made again from the checkpoint, not trusted.
    monkeypatch.undo()
    for path in own_checkpoint.parent.glob("*.folded-float32.v*.pt"):
        path.write_bytes(b"truncated")
    repaired = panns.PannsEmbedder(config)
    np.testing.assert_array_equal(repaired.embed(blocks(signal)).vector, expected.vector)


class Clock:
    """A stand-in for autotune.measure: each candidate takes the seconds given, and every call is counted."""

    def __init__(self, seconds):
        self.seconds, self.calls = seconds, []

    def __call__(self, label, run, probe):
        self.calls.append(label)
        return self.seconds.get(label.split("-")[0], 1.0)


def test_auto_is_measured_once_and_cached(own_checkpoint, tmp_path, monkeypatch):
    """Every engine for real on the random checkpoint, the real clock; a second load reads the decision."""
    from audiofind.embedders.panns import autotune

    e = panns.PannsEmbedder(auto_config(own_checkpoint, tmp_path))
    e.check()
    summary = e.summary()
    assert summary["how"] == "measured"
    labels = set(summary["seconds"])
    assert {"float32-winograd", "float32-torch"} <= labels
    assert ("bfloat16-winograd" in labels) == panns.cpu_has_bf16()
    chosen = f"{summary['precision']}-{summary['engine']}"
    assert summary["seconds"][chosen] == min(summary["seconds"].values())
    assert summary["similarity"][chosen] >= panns.AUTO_MIN_COSINE
    decision = json.loads(next(own_checkpoint.parent.glob("*.engine.json")).read_text())
    assert decision["chosen"] == chosen and decision["key"]["cpu"] == panns.cpu_identity()

    clock = Clock({})
    monkeypatch.setattr(autotune, "measure", clock)
    built = []
    original = panns.PannsEmbedder._build
    monkeypatch.setattr(panns.PannsEmbedder, "_build", lambda self, label: built.append(label) or original(self, label))
    again = panns.PannsEmbedder(auto_config(own_checkpoint, tmp_path))
    again.check()
    assert again.summary()["how"] == "cached" and again.summary()["precision"] == summary["precision"]
    assert clock.calls == [] and built == [chosen]
    signal = music(3.0, seed=8)
    np.testing.assert_array_equal(again.embed(blocks(signal)).vector, e.embed(blocks(signal)).vector)


def test_a_candidate_below_the_cosine_gate_is_never_chosen(own_checkpoint, tmp_path, monkeypatch):
    from audiofind.embedders.panns import autotune

    monkeypatch.setattr(panns.choice, "cpu_has_bf16", lambda: True)  # a second candidate on any CPU
    config = auto_config(own_checkpoint, tmp_path, PANNS_ENGINE="torch")
    clock = Clock({"bfloat16": 0.1, "float32": 1.0})
    monkeypatch.setattr(autotune, "measure", clock)
    e = panns.PannsEmbedder(config)
    e.check()
    assert e.summary()["precision"] == "bfloat16" and e.summary()["how"] == "measured"
    assert sorted(set(clock.calls)) == ["bfloat16-torch", "float32-torch"]
    assert len(clock.calls) == 2 * autotune.ROUNDS

    # bfloat16 reaches cosine ~0.99999 on random weights: a stricter gate rejects it although it is faster.
    # The gate is part of the key, so the decision above is stale and measured again.
    monkeypatch.setattr(panns.choice, "AUTO_MIN_COSINE", 0.9999999)
    strict = panns.PannsEmbedder(config)
    strict.check()
    summary = strict.summary()
    assert summary["how"] == "measured" and summary["precision"] == "float32"
    assert summary["similarity"]["bfloat16-torch"] < 0.9999999


@pytest.mark.parametrize("damage", ["corrupt", "stale"])
def test_a_corrupt_or_stale_decision_is_measured_again(own_checkpoint, tmp_path, monkeypatch, damage):
    from audiofind.embedders.panns import autotune

    monkeypatch.setattr(panns.choice, "cpu_has_bf16", lambda: True)
    config = auto_config(own_checkpoint, tmp_path, PANNS_ENGINE="torch")
    monkeypatch.setattr(autotune, "measure", Clock({"float32": 0.5, "bfloat16": 1.0}))
    panns.PannsEmbedder(config).check()
    path = next(own_checkpoint.parent.glob("*.engine.json"))
    if damage == "corrupt":
        path.write_text('{"key": {"cpu": ')
    else:  # measured on another CPU (or library version): its choice says nothing about this one
        decision = json.loads(path.read_text())
        decision["key"]["cpu"] = "another CPU"
        decision["chosen"] = "bfloat16-torch"
        path.write_text(json.dumps(decision))
    clock = Clock({"float32": 0.5, "bfloat16": 1.0})
    monkeypatch.setattr(autotune, "measure", clock)
    e = panns.PannsEmbedder(config)
    e.check()
    assert e.summary()["how"] == "measured" and e.summary()["precision"] == "float32"
    assert clock.calls
    assert json.loads(path.read_text())["key"]["cpu"] == panns.cpu_identity()


def test_two_processes_starting_at_once_measure_once(own_checkpoint, tmp_path, monkeypatch):
    """The second waits on the decision's lock and reads what the first measured."""
    from audiofind.embedders.panns import autotune

    monkeypatch.setattr(panns.choice, "cpu_has_bf16", lambda: True)
    clock = Clock({"float32": 0.5, "bfloat16": 0.2})
    monkeypatch.setattr(autotune, "measure", clock)
    config = auto_config(own_checkpoint, tmp_path, PANNS_ENGINE="torch")
    embedders = [panns.PannsEmbedder(config) for _ in range(2)]
    threads = [threading.Thread(target=e.check) for e in embedders]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(e.summary()["how"] for e in embedders) == ["cached", "measured"]
    assert {e.summary()["precision"] for e in embedders} == {"bfloat16"}
    assert len(clock.calls) == 2 * autotune.ROUNDS


def test_summary_before_loading_reads_the_decision_without_loading(own_checkpoint, tmp_path, monkeypatch):
    from audiofind.embedders.panns import autotune

    config = auto_config(own_checkpoint, tmp_path, PANNS_ENGINE="torch")
    assert panns.PannsEmbedder(config).summary() == {"name": "panns", "loaded": False}
    monkeypatch.setattr(autotune, "measure", Clock({}))
    panns.PannsEmbedder(config).check()
    fresh = panns.PannsEmbedder(config)
    summary = fresh.summary()
    assert summary["loaded"] is False and summary["how"] == "cached" and summary["precision"] == "float32"
    assert fresh.front is None


def test_loading_never_builds_panns_inference_or_torchlibrosa(checkpoint, tmp_path):
    """The embedder runs from the checkpoint's tensors: panns_inference (whose __init__ downloads a label list)
    and torchlibrosa's STFT set-up are never imported, let alone built."""
    script = textwrap.dedent(f"""
        import sys
        from audiofind.embedders import panns
        e = panns.PannsEmbedder({{"DATA_DIR": {str(tmp_path)!r}, "PANNS_CHECKPOINT": {str(checkpoint)!r},
                                  "DEVICE": "cpu", "PANNS_PRECISION": "float32", "PANNS_ENGINE": "torch"}})
        e.embed([panns.np.zeros(32000, panns.np.float32)])
        assert not [m for m in sys.modules if m.startswith(("panns_inference", "torchlibrosa", "librosa"))]
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, HOME=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
