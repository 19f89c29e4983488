"""The picture pipeline under a seeded mutation fuzzer (tests/picture_mutants.py): no mutant gets
anything but a picture or a 4xx, none hangs, and every stored picture decodes, both in worker
processes and through the upload API.

``SHOWME_FUZZ_MUTANTS`` sets how many mutants run (10,000 by default; ``make fuzz`` runs 50,000)
and ``SHOWME_FUZZ_SEED`` which ones. A failure names the seed and index that replay it.
"""

from __future__ import annotations

import collections
import io
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from showme_core.imaging import CleanPicture, ExifFacts, PictureRejected, process_picture
from showme_core.testing import Tenant
from tests import picture_mutants, pictures
from tests.picture_mutants import Mutant

MUTANTS = int(os.environ.get("SHOWME_FUZZ_MUTANTS", picture_mutants.DEFAULT_MUTANTS))
SEED = int(os.environ.get("SHOWME_FUZZ_SEED", picture_mutants.DEFAULT_SEED))
HTTP_MUTANTS = 150
FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WebP", "heic": "HEIC"}


def report(item: Mutant, problem: str, tmp_path: Path) -> str:
    """How to find and replay a failing mutant: its bytes are saved, its numbers printed."""
    saved = tmp_path / f"mutant-{item.seed}-{item.index}.bin"
    saved.write_bytes(item.data)
    return (
        f"{item.describe()}\n  bytes saved as {saved}\n"
        f"  replay: python -m tests.picture_mutants --seed {item.seed} --index {item.index}\n"
        f"  {problem}"
    )


def test_no_mutant_crashes_hangs_or_stores_a_picture_that_does_not_decode(
    tmp_path: Path,
) -> None:
    run = picture_mutants.fuzz(SEED, MUTANTS)
    print(run.summary())
    assert not run.failures, "\n\n".join(
        report(failure.mutant, failure.problem, tmp_path) for failure in run.failures
    )
    assert sum(run.outcomes.values()) == MUTANTS
    # The mutants reach the decoders of every format: some of each are stored, some refused.
    stored = {name.split("-")[0] for name, n in run.stored.items() if n}
    missing = set(FORMATS) - stored
    assert not missing, f"no {missing} mutant was stored: too few mutants to reach every decoder"
    assert run.outcomes["stored"] < MUTANTS


def test_the_runner_reports_a_broken_property_a_hang_and_a_dead_worker() -> None:
    run = picture_mutants.fuzz(
        SEED,
        6,
        workers=2,
        time_limit=2.0,
        target="tests.picture_mutants:misbehaving_check",
    )
    problems = {failure.mutant.index: failure.problem for failure in run.failures}
    assert sorted(problems) == [1, 2, 3], problems
    assert "on purpose" in problems[1]
    assert "no answer within 2.0 s" in problems[2]
    assert "died" in problems[3]
    # The run went on with fresh workers: every other mutant was still checked.
    assert sum(run.outcomes.values()) == 6
    assert run.outcomes["failed"] == 3


class ServerFault(PictureRejected):
    status = 500


def picture(data: bytes, width: int = 48, height: int = 32) -> CleanPicture:
    return CleanPicture(data, data, width, height, "JPEG", ExifFacts())


def test_the_property_fails_for_each_way_the_pipeline_could_misbehave() -> None:
    seed = picture_mutants.seed_pictures()["jpeg-baseline"]
    good = process_picture(seed, picture_mutants.MAX_PIXELS)
    with_exif = pictures.jpeg(exif=pictures.gps_exif(50.85, 4.35))

    def raising(exc: Exception) -> Any:
        def pipeline(_data: bytes, _max_pixels: int) -> CleanPicture:
            raise exc

        return pipeline

    cases = {
        "a TypeError": raising(TypeError("from a library")),
        "a 5xx refusal": raising(ServerFault("x", code="y")),
        "bytes that are not a JPEG": lambda *_: picture(b"not a jpeg"),
        "a wrong stated size": lambda *_: picture(good.data, good.width + 1, good.height),
        "a truncated JPEG": lambda *_: picture(good.data[: len(good.data) // 2]),
        "EXIF kept": lambda *_: picture(with_exif, 640, 480),
        "no picture at all": lambda *_: None,
    }
    for name, pipeline in cases.items():
        _outcome, problem = picture_mutants.verdict(seed, pipeline=pipeline)
        assert problem is not None, name
    assert picture_mutants.verdict(seed) == ("stored", None)


def test_every_seed_is_a_picture_the_pipeline_stores() -> None:
    seeds = picture_mutants.seed_pictures()
    assert {name.split("-")[0] for name in seeds} == set(FORMATS)
    for name, data in seeds.items():
        assert picture_mutants.verdict(data) == ("stored", None), name


def test_mutants_are_reproducible_and_their_length_fields_are_found() -> None:
    seeds = picture_mutants.seed_pictures()
    first = [picture_mutants.mutant(seeds, SEED, index) for index in range(200)]
    assert first == [picture_mutants.mutant(seeds, SEED, index) for index in range(200)]
    assert len({item.data for item in first}) > 190
    assert first != [picture_mutants.mutant(seeds, SEED + 1, index) for index in range(200)]
    # Structure-aware mutations have something to aim at in every container.
    expected = {
        "jpeg-baseline": {"JPEG C0 length", "JPEG frame width", "JPEG DA length"},
        "jpeg-progressive": {"JPEG C2 length", "JPEG frame height"},
        "png-interlaced": {"PNG b'IHDR' length", "PNG b'IDAT' CRC", "PNG width"},
        "webp-lossy": {"RIFF size", "RIFF b'VP8 ' size", "VP8 width"},
        "webp-exif": {"RIFF b'VP8X' size", "VP8X canvas height", "RIFF b'EXIF' size"},
        "heic": {"ftyp box size", "meta box size", "ispe width", "iloc extent length"},
    }
    for name, labels in expected.items():
        found = {field.label for field in picture_mutants.length_fields(seeds[name])}
        assert labels <= found, (name, labels - found)


# ---- Through the upload API --------------------------------------------------------------------


def rejected_count(showme: Any, code: str) -> float:
    value = showme.metrics.registry.get_sample_value(
        "showme_media_rejected_total", {"reason": code}
    )
    return float(value or 0)


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data), formats=["JPEG"])
    image.load()
    return image


# Pillow warns about odd metadata; the service shows those warnings and goes on, and so does this
# test (the suite otherwise turns every warning into an error).
@pytest.mark.filterwarnings("ignore::UserWarning")
async def test_mutants_uploaded_through_the_api_never_get_a_5xx(
    showme: Any, showme_client: httpx.AsyncClient, tenant: Tenant, tmp_path: Path
) -> None:
    created = await tenant.cad.post(
        "/api/v1/invites", json={"phone": "+32470123456", "send_sms": False}
    )
    assert created.status_code == 201, created.text
    token = created.json()["link"].split("#", 1)[1]
    seeds = picture_mutants.seed_pictures()
    refused: collections.Counter[str] = collections.Counter()
    stored = 0
    for index in range(HTTP_MUTANTS):
        item = picture_mutants.mutant(seeds, SEED, index)
        answer = await showme_client.post(
            "/api/v1/caller/media",
            headers={"X-ShowMe-Link": token},
            files={"picture": ("picture.jpg", item.data, "image/jpeg")},
        )
        where = report(item, f"answered {answer.status_code}: {answer.text}", tmp_path)
        assert answer.status_code < 500, where
        if answer.status_code != 201:
            assert 400 <= answer.status_code < 500, where
            refused[answer.json()["error"]["code"]] += 1
            continue
        stored += 1
        media = answer.json()["media"]
        full = await tenant.client.get(media["url"])
        thumb = await tenant.client.get(media["thumbnail_url"])
        assert full.status_code == thumb.status_code == 200, where
        assert decoded(full.content).size == (media["width"], media["height"]), where
        assert max(decoded(thumb.content).size) <= 320, where
    assert stored > 0 and refused, (stored, refused)
    # Every refused picture is counted, under its reason.
    assert {code: rejected_count(showme, code) for code in refused} == dict(refused)
