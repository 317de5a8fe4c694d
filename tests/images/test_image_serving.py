"""Serving image models: base64 JSON and multipart uploads on the same auth, limits, batching and
metrics as text; every refusal (size, pixels, type, corrupt file) is a JSON error naming the
file, and a text model beside the image one keeps working."""

from __future__ import annotations

import base64
import io

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from ronghe import ImageClassifier, TextClassifier  # noqa: E402
from ronghe.serving.app import create_app  # noqa: E402
from ronghe.serving.config import ServeConfig  # noqa: E402
from ronghe.serving.registry import Registry  # noqa: E402

from makers import make_shapes  # noqa: E402

KEY = "image-service-key-0123456789abcdef"


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import pandas as pd

    root = tmp_path_factory.mktemp("img-serve")
    shapes = make_shapes(root / "shapes", n_per_class=12)
    clf = ImageClassifier(strategy="classic").fit(shapes)
    clf.save(root / "shapes-model")
    text = pd.DataFrame({"text": ["good film", "bad film", "great", "awful"] * 6,
                         "label": ["pos", "neg", "pos", "neg"] * 6})
    TextClassifier(strategy="classic").fit(text).save(root / "sentiment")
    files = sorted((shapes / "circle").iterdir())[:2] + sorted((shapes / "square").iterdir())[:1]
    return {"root": root, "clf": clf, "files": files}


def _client(served, **cfg):
    config = ServeConfig(models=[str(served["root"] / "shapes-model"),
                                 str(served["root"] / "sentiment")], request_log=None,
                         watch_interval_s=0, **cfg)
    registry = Registry.from_sources(config.models)
    registry.load_all()
    return TestClient(create_app(config, registry))


def test_base64_and_multipart_give_what_predict_gives(served):
    expected = [r["label"] for r in served["clf"].predict_records(served["files"])] \
        if hasattr(served["clf"], "predict_records") else list(served["clf"].predict(served["files"]))
    raw = [p.read_bytes() for p in served["files"]]
    with _client(served) as c:
        r = c.post("/v1/models/shapes-model/predict",
                   json={"images": [base64.b64encode(b).decode() for b in raw[:2]]
                         + ["data:image/png;base64," + base64.b64encode(raw[2]).decode()]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["task"] == "image-classification"
        assert [p["label"] for p in body["predictions"]] == expected
        assert set(body["predictions"][0]["probabilities"]) == {"circle", "square", "triangle"}
        r = c.post("/v1/models/shapes-model/predict/files",
                   files=[("images", (p.name, b, "image/png")) for p, b in zip(served["files"], raw)])
        assert r.status_code == 200, r.text
        assert [p["label"] for p in r.json()["predictions"]] == expected
        # the text model beside it is untouched, and says what it takes
        assert c.post("/v1/models/sentiment/predict", json={"texts": ["good"]}).status_code == 200
        r = c.post("/v1/models/sentiment/predict", json={"images": [base64.b64encode(raw[0]).decode()]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "wrong_input_kind"
        r = c.post("/v1/models/shapes-model/predict", json={"texts": ["a circle"]})
        assert r.status_code == 422 and "'images'" in r.json()["error"]["message"]
        info = c.get("/v1/models/shapes-model").json()
        assert info["accepts"] == ["images"]
        metrics = c.get("/metrics").text
        assert 'endpoint="predict_files",model="shapes-model",status="200"' in metrics


def test_bad_uploads_are_refused_with_the_file_named(served, tmp_path):
    from PIL import Image

    good = served["files"][0].read_bytes()
    with _client(served, max_image_pixels=100 * 100, max_image_bytes=200_000,
                 max_images_per_request=3) as c:
        def send(*parts, json_images=None):
            if json_images is not None:
                return c.post("/v1/models/shapes-model/predict", json={"images": json_images})
            return c.post("/v1/models/shapes-model/predict/files", files=list(parts))

        big = _png(Image.new("RGB", (200, 120), (10, 20, 30)))  # 24,000 px > 10,000
        r = send(("images", ("a.png", good, "image/png")), ("images", ("big.png", big, "image/png")))
        assert r.status_code == 413 and r.json()["error"]["code"] == "image_too_large"
        assert r.json()["error"]["details"][0]["loc"] == ["images", 1]
        assert "pixels" in r.json()["error"]["message"]
        r = send(("images", ("notes.txt", b"hello", "text/plain")))
        assert r.status_code == 415 and "text/plain" in r.json()["error"]["message"]
        r = send(("images", ("fake.png", b"GIF8 not really an image at all", "image/png")))
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_image"
        r = send(("images", ("cut.png", good[: len(good) // 2], "image/png")))
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_image"
        assert "truncated or corrupt" in r.json()["error"]["message"]
        r = send(("images", ("huge.png", good + b"\0" * 200_001, "image/png")))
        assert r.status_code == 413 and "200000" in r.json()["error"]["message"]
        r = send(*[("images", (f"{i}.png", good, "image/png")) for i in range(4)])
        assert r.status_code == 422 and "at most 3 files" in r.json()["error"]["message"]
        r = c.post("/v1/models/shapes-model/predict/files", data={"note": "x"},
                   files=[("images", ("a.png", good, "image/png"))])
        assert r.status_code == 422
        r = c.post("/v1/models/shapes-model/predict/files", files=[("photo", ("a.png", good, "image/png"))])
        assert r.status_code == 422 and "'photo'" in r.json()["error"]["message"]
        r = c.post("/v1/models/shapes-model/predict/files", content=good,
                   headers={"content-type": "image/png"})
        assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]["message"]
        r = send(json_images=["not base64 !!"])
        assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["images", 0]
        r = send(json_images=[base64.b64encode(good).decode()] * 4)
        assert r.status_code == 422 and "too many images" in r.json()["error"]["message"]
        # the body limit for image models is the image one, not the 1 MiB text limit
        assert send(("images", ("a.png", good, "image/png"))).status_code == 200


def test_image_service_needs_its_key_and_limits_bodies(served):
    good = served["files"][0].read_bytes()
    with _client(served, api_keys=[{"name": "shop", "sha256": __import__("hashlib").sha256(
            KEY.encode()).hexdigest()}], max_image_body_bytes=4096) as c:
        files = [("images", ("a.png", good, "image/png"))]
        assert c.post("/v1/models/shapes-model/predict/files", files=files).status_code == 401
        r = c.post("/v1/models/shapes-model/predict/files", files=files,
                   headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 200, r.text
        r = c.post("/v1/models/shapes-model/predict/files",
                   files=[("images", ("a.png", good + b"\0" * 5000, "image/png"))],
                   headers={"Authorization": f"Bearer {KEY}"})
        assert r.status_code == 413 and "smaller images" in r.json()["error"]["message"]
        schema = c.get("/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
        assert "multipart/form-data" in schema["paths"]["/v1/models/{name}/predict/files"][
            "post"]["requestBody"]["content"]
