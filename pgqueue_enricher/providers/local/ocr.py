"""The OCR engine: loads RapidOCR's three ONNX models once per process, decodes a crop and reads
its text boxes, enlarging small text first and repairing what the recogniser drops.

This module imports the `local` extra (numpy, OpenCV, Pillow, onnxruntime) at its top, so
importing it is the check that the extra is installed; `describer.py` does that when it opens.
"""

from __future__ import annotations

import io
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image
from rapidocr_onnxruntime import RapidOCR
from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
from rapidocr_onnxruntime.utils import read_yaml, update_model_path

from pgqueue_enricher.errors import PermanentFailure
from pgqueue_enricher.providers.local.layout import TextBox
from pgqueue_enricher.providers.local.repair import normalise_ocr_text, restore_spaces
from pgqueue_enricher.settings import ConfigError

REINSTALL_MODELS = "pip install --force-reinstall --no-deps rapidocr-onnxruntime"

# Crops rendered at sheet scale often carry text only 8-14 px tall, which the detector
# half misses. A first detection pass measures the text; when its boxes are shorter than
# SMALL_TEXT_PX the crop is enlarged so they reach TARGET_TEXT_PX, then read again. Text
# that is already large enough is read as is (enlarging it gains nothing and costs time).
SMALL_TEXT_PX = 20.0
TARGET_TEXT_PX = 28.0
MAX_UPSCALE = 3.0
MAX_OCR_SIDE = 2000
MIN_TEXT_SCORE = 0.5


# -- the engine ---------------------------------------------------------------------------

_engine_lock = threading.Lock()
_engine: RapidOCR | None = None


def model_files() -> dict[str, Path]:
    """The detector, angle classifier and recogniser models as RapidOCR's own configuration
    names them; the engine is given these paths, so the files checked are the files loaded."""
    config = update_model_path(read_yaml(DEFAULT_CFG_PATH))
    return {part: Path(config[part.capitalize()]["model_path"]) for part in ("det", "cls", "rec")}


def _build_engine(models: dict[str, Path]) -> RapidOCR:
    """A missing, unreadable or corrupt model is a broken install, reported with the file it
    is about: onnxruntime's own errors are long and do not say what to do."""
    for path in models.values():
        try:
            with path.open("rb") as model:
                model.read(1)
        except OSError as exc:
            raise ConfigError(
                f"The OCR model file {path} cannot be read ({exc.strerror}): reinstall it with {REINSTALL_MODELS}"
            ) from None
    try:
        # "max" keeps the detector at the crop's own resolution (we enlarge small crops
        # ourselves); the default "min" would blow every crop up to 736 px on its short side.
        # A lower box threshold keeps short labels such as a lone `2"` under a dimension line.
        return RapidOCR(
            det_limit_type="max",
            det_limit_side_len=MAX_OCR_SIDE,
            det_box_thresh=0.3,
            print_verbose=False,
            det_model_path=str(models["det"]),
            cls_model_path=str(models["cls"]),
            rec_model_path=str(models["rec"]),
        )
    except Exception as exc:
        failed = next((path for path in models.values() if str(path) in str(exc)), None)
        what = f"The OCR model file {failed}" if failed else "An OCR model file"
        raise ConfigError(
            f"{what} cannot be loaded ({type(exc).__name__}): reinstall it with {REINSTALL_MODELS}"
        ) from None


def _loaded_engine() -> RapidOCR:
    """One engine per process: loading the three ONNX models takes about half a second and
    100 MB, and every describer can share them. Call with `_engine_lock` held."""
    global _engine
    if _engine is None:
        _engine = _build_engine(model_files())
    return _engine


def load_engine() -> None:
    """Load the models now (blocking: call in a thread), so a broken install fails at start-up."""
    with _engine_lock:
        _loaded_engine()


# -- reading a crop -----------------------------------------------------------------------


@dataclass(frozen=True)
class OcrPage:
    boxes: list[TextBox]
    ink: np.ndarray  # True = dark pixel, crop coordinates
    elapsed_ms: float


def _decode(data: bytes, max_pixels: int) -> np.ndarray:
    """Crop bytes to a grayscale array; anything Pillow cannot read is a rejected crop."""
    if not data:
        raise PermanentFailure("crop_rejected", "crop is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise PermanentFailure(
                    "crop_rejected", f"crop is {width}x{height} pixels, over the {max_pixels} pixel limit"
                )
            image.load()
            if image.mode in ("RGBA", "LA", "P"):
                # Transparent PNGs keep their linework in alpha: flatten onto white paper.
                rgba = image.convert("RGBA")
                paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                image = Image.alpha_composite(paper, rgba)
            gray = np.asarray(image.convert("L"))
    except PermanentFailure:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PermanentFailure("crop_rejected", f"crop is not a readable image: {exc}") from None
    if min(gray.shape) < 4:
        raise PermanentFailure(
            "crop_rejected", f"crop is too small to read ({gray.shape[1]}x{gray.shape[0]} px)"
        )
    return gray


def _fit_factor(gray: np.ndarray) -> float:
    """Shrink factor for crops the detector would refuse (over MAX_OCR_SIDE), else 1."""
    return min(1.0, MAX_OCR_SIDE / max(gray.shape))


def _upscale_factor(text_height: float, shape: tuple[int, ...]) -> float:
    if text_height <= 0 or text_height >= SMALL_TEXT_PX:
        return 1.0
    return max(1.0, min(MAX_UPSCALE, TARGET_TEXT_PX / text_height, MAX_OCR_SIDE / max(shape)))


def _letterbox(gray: np.ndarray) -> tuple[np.ndarray, int]:
    """The padding RapidOCR adds itself to short or very wide crops: the detector needs some
    height to work with. Returns the padded image and the padding added at the top."""
    height, width = gray.shape
    if height > 30 and width / height <= 8:
        return gray, 0
    pad = abs(max(int(width / 8), 30) * 2 - height) // 2
    return cv2.copyMakeBorder(gray, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=255), pad


def _detect(engine: RapidOCR, gray: np.ndarray) -> tuple[Any, np.ndarray, int]:
    padded, pad = _letterbox(gray)
    bgr = cv2.cvtColor(padded, cv2.COLOR_GRAY2BGR)
    boxes, _ = engine.auto_text_det(bgr)
    return boxes, bgr, pad


def _text_height(boxes: Any) -> float:
    if boxes is None or len(boxes) == 0:
        return 0.0
    return float(
        statistics.median(min(np.linalg.norm(b[0] - b[3]), np.linalg.norm(b[0] - b[1])) for b in boxes)
    )


Recognised = tuple[np.ndarray, str, float, list[Any], list[str]]


def _recognise(engine: RapidOCR, gray: np.ndarray) -> tuple[list[Recognised], np.ndarray]:
    """RapidOCR's pipeline step by step, for two changes to its `__call__`: the angle
    classifier runs only on vertical boxes (on long horizontal lines it sometimes decides a
    line is upside down and turns it to garbage), and the character boxes come back for
    `restore_spaces`. Small text is enlarged first (see SMALL_TEXT_PX).

    Returns (box, text, confidence, char boxes, chars) per text box, and the image they
    were read from (enlarged or not) whose coordinates the boxes are in."""
    dt_boxes, bgr, pad = _detect(engine, gray)
    factor = _upscale_factor(_text_height(dt_boxes), gray.shape)
    if factor > 1.1:
        gray = cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)
        dt_boxes, bgr, pad = _detect(engine, gray)
    if dt_boxes is None or len(dt_boxes) == 0:
        return [], gray
    crops = engine.get_crop_img_list(bgr, dt_boxes)
    vertical = [
        i
        for i, box in enumerate(dt_boxes)
        if np.linalg.norm(box[0] - box[3]) >= 1.5 * max(np.linalg.norm(box[0] - box[1]), 1.0)
    ]
    if vertical:
        turned, _, _ = engine.text_cls([crops[i] for i in vertical])
        for i, crop in zip(vertical, turned, strict=True):
            crops[i] = crop
    recognised, _ = engine.text_rec(crops, True)
    try:
        with_chars = engine.cal_rec_boxes(crops, dt_boxes, recognised)
    except Exception:  # character boxes are a nicety; the text itself is already read
        with_chars = [[text, score, [], [], []] for text, score, *_ in recognised]
    results = []
    for box, (text, score, char_boxes, chars, *_) in zip(dt_boxes, with_chars, strict=True):
        if float(score) < MIN_TEXT_SCORE or not text:
            continue
        box = np.asarray(box, dtype=float).copy()
        box[:, 1] -= pad
        results.append((box, str(text), float(score), list(char_boxes), list(chars)))
    return results, gray


def read_crop(data: bytes, max_pixels: int) -> OcrPage:
    """Decode, enlarge, run RapidOCR, repair word spacing. Blocking: call in a thread."""
    gray = _decode(data, max_pixels)
    fit = _fit_factor(gray)
    work = gray if fit == 1.0 else cv2.resize(gray, None, fx=fit, fy=fit, interpolation=cv2.INTER_AREA)
    started = time.perf_counter()
    with _engine_lock:
        engine = _loaded_engine()
        try:
            found, read = _recognise(engine, work)
        except Exception as exc:  # the engine's own failures on odd input
            raise PermanentFailure("crop_rejected", f"OCR could not read the crop: {exc}") from None
    elapsed_ms = (time.perf_counter() - started) * 1000
    scale = fit * read.shape[0] / work.shape[0]
    ink = read < 128
    boxes: list[TextBox] = []
    for box, text, confidence, char_boxes, chars in found:
        text = normalise_ocr_text(restore_spaces(text, char_boxes, chars, box, ink))
        if not text:
            continue
        boxes.append(
            TextBox(
                text=text,
                confidence=confidence,
                x0=float(box[:, 0].min()) / scale,
                y0=float(box[:, 1].min()) / scale,
                x1=float(box[:, 0].max()) / scale,
                y1=float(box[:, 1].max()) / scale,
            )
        )
    return OcrPage(boxes=boxes, ink=gray < 128, elapsed_ms=elapsed_ms)
