"""Temporal smoothing so swapped faces neither jitter (landmarks), breathe (colour) nor shimmer
(the swap model's output).

``OneEuroFilter`` is Casiez, Roussel and Vogel's 1€ filter (CHI 2012): a low-pass filter whose
cutoff rises with speed, so slow drift is smoothed hard while fast head motion is followed with
little lag. It filters whole arrays at once; the speed that raises the cutoff is the RMS speed of
the array (in ``scale`` units per second), so all landmarks of a face share one cutoff and the
face shape is not distorted.

``denoise_swap`` is a temporal soft threshold on the swap model's output in aligned face space:
a pixel that changed by less than ``threshold`` grey levels since the last frame moves only part
of the way, at least ``1 - damping`` and more the larger the change (the frame-to-frame noise of
the network, and more of it in an int8 copy), while larger changes (expression, pose, light)
pass at once.

``TrackSmoother`` keeps one filter per (track, stream) and serialises its state for checkpoints.

Example::

    >>> import numpy as np
    >>> smoother = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    >>> rng = np.random.default_rng(0)
    >>> noisy = [np.array([10.0]) + rng.normal(0, 1, 1) for _ in range(60)]
    >>> smoothed = [smoother(x, t=i / 30) for i, x in enumerate(noisy)]
    >>> bool(np.std(smoothed[10:]) < np.std(noisy[10:]))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from likeness.errors import MediaError


def denoise_swap(previous: np.ndarray | None, current: np.ndarray, *, threshold: float, damping: float) -> np.ndarray:
    """This frame's swap output after a temporal soft threshold against the last frame's.

    ``previous`` and ``current``: float32 arrays in [0, 1] of one shape (the model's ``(3, R, R)``
    output for one track); ``threshold`` in grey levels (1/255); ``damping`` in [0, 1) (0: off).
    A pixel changing by ``d`` moves ``d * max(|d| / threshold, 1 - damping)``: small changes are
    damped, changes of ``threshold`` or more pass unchanged. Returns ``current`` itself when there
    is no comparable previous output (first frame of a track, another shape) or damping is 0.
    """
    current = np.asarray(current, np.float32)
    if previous is None or previous.shape != current.shape or damping <= 0.0:
        return current
    change = current - previous
    passed = np.abs(change) * np.float32(255.0 / threshold)
    np.maximum(passed, np.float32(1.0 - damping), out=passed)
    np.minimum(passed, np.float32(1.0), out=passed)
    return previous + change * passed


def _alpha(cutoff_hz: float, dt_s: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


@dataclass
class OneEuroFilter:
    """1€ filter over float arrays of a fixed shape.

    ``min_cutoff`` (Hz): cutoff at rest (lower: smoother, more lag); ``beta``: how fast the cutoff
    grows with speed (per ``scale`` unit per second); ``d_cutoff`` (Hz): cutoff of the speed estimate.
    """

    min_cutoff: float = 1.0
    beta: float = 0.5
    d_cutoff: float = 1.0
    value: np.ndarray | None = field(default=None, repr=False)
    derivative: np.ndarray | None = field(default=None, repr=False)
    t_s: float | None = None

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise MediaError(None, f"OneEuroFilter: expected min_cutoff>0, d_cutoff>0, beta>=0, got {self}")

    def __call__(self, x: np.ndarray, t: float, *, scale: float = 1.0) -> np.ndarray:
        """Filter sample ``x`` taken at time ``t`` seconds; returns float64 of ``x``'s shape."""
        x = np.asarray(x, dtype=np.float64)
        if not np.isfinite(x).all():
            raise MediaError(None, "OneEuroFilter: sample contains NaN or infinite values")
        if self.value is None or self.value.shape != x.shape or self.t_s is None or t <= self.t_s:
            # First sample, a shape change, or time going backwards (a seek): restart.
            self.value, self.derivative, self.t_s = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        dt = float(t) - self.t_s
        raw_derivative = (x - self.value) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self.derivative = self.derivative + a_d * (raw_derivative - self.derivative)
        speed = float(np.sqrt(np.mean(self.derivative**2))) / max(scale, 1e-9)
        cutoff = self.min_cutoff + self.beta * speed
        a = _alpha(cutoff, dt)
        self.value = self.value + a * (x - self.value)
        self.t_s = float(t)
        return self.value.copy()

    def state(self) -> dict:
        """JSON-serialisable state (for render checkpoints)."""
        return {
            "min_cutoff": self.min_cutoff,
            "beta": self.beta,
            "d_cutoff": self.d_cutoff,
            "value": None if self.value is None else self.value.tolist(),
            "derivative": None if self.derivative is None else self.derivative.tolist(),
            "t_s": self.t_s,
        }

    @classmethod
    def from_state(cls, state: dict) -> OneEuroFilter:
        return cls(
            min_cutoff=float(state["min_cutoff"]),
            beta=float(state["beta"]),
            d_cutoff=float(state["d_cutoff"]),
            value=None if state["value"] is None else np.asarray(state["value"], np.float64),
            derivative=None if state["derivative"] is None else np.asarray(state["derivative"], np.float64),
            t_s=state["t_s"],
        )


@dataclass(frozen=True)
class SmoothingOptions:
    """Filter settings per stream. Landmark speed is measured in face widths per second."""

    enabled: bool = True
    landmark_min_cutoff: float = 1.5
    landmark_beta: float = 4.0
    colour_min_cutoff: float = 0.5
    colour_beta: float = 0.0
    # ``denoise_swap`` on the model's output (grey levels; 0 damping turns it off). Measured on
    # the consenting-actor clip, docs/render.md run 15.
    swap_threshold: float = 4.0
    swap_damping: float = 0.85

    def __post_init__(self) -> None:
        if not self.swap_threshold > 0 or not 0.0 <= self.swap_damping < 1.0:
            raise MediaError(
                None,
                f"SmoothingOptions: expected swap_threshold > 0 and 0 <= swap_damping < 1, "
                f"got {self.swap_threshold!r} and {self.swap_damping!r}",
            )


class TrackSmoother:
    """One ``OneEuroFilter`` per (track id, stream), streams ``"landmarks"`` and ``"colour"``, and
    the last denoised swap output per track."""

    def __init__(self, options: SmoothingOptions | None = None) -> None:
        self.options = options or SmoothingOptions()
        self._filters: dict[tuple[int, str], OneEuroFilter] = {}
        self._swaps: dict[int, np.ndarray] = {}

    def _new_filter(self, stream: str) -> OneEuroFilter:
        if stream == "landmarks":
            return OneEuroFilter(min_cutoff=self.options.landmark_min_cutoff, beta=self.options.landmark_beta)
        if stream == "colour":
            return OneEuroFilter(min_cutoff=self.options.colour_min_cutoff, beta=self.options.colour_beta)
        raise MediaError(None, f"TrackSmoother: unknown stream {stream!r} (expected 'landmarks' or 'colour')")

    def smooth(self, track_id: int, stream: str, value: np.ndarray, t: float, *, scale: float = 1.0) -> np.ndarray:
        """Smoothed ``value`` for this track and stream at time ``t`` (s); identity when disabled."""
        if not self.options.enabled:
            return np.asarray(value, np.float64)
        key = (int(track_id), stream)
        if key not in self._filters:
            self._filters[key] = self._new_filter(stream)
        return self._filters[key](value, t, scale=scale)

    def denoise_swap(self, track_id: int, output: np.ndarray) -> np.ndarray:
        """This track's swap ``output`` (float32 in [0, 1]) through :func:`denoise_swap`; unchanged
        when smoothing is disabled."""
        if not self.options.enabled or self.options.swap_damping <= 0.0:
            return np.asarray(output, np.float32)
        denoised = denoise_swap(
            self._swaps.get(int(track_id)),
            output,
            threshold=self.options.swap_threshold,
            damping=self.options.swap_damping,
        )
        self._swaps[int(track_id)] = denoised
        return denoised

    def keep_only(self, track_ids: set[int]) -> None:
        """Forget tracks that ended, so memory stays bounded on long videos."""
        self._filters = {key: f for key, f in self._filters.items() if key[0] in track_ids}
        self._swaps = {k: v for k, v in self._swaps.items() if k in track_ids}

    def state(self) -> list[dict]:
        filters = [{"track_id": k[0], "stream": k[1], "filter": f.state()} for k, f in self._filters.items()]
        # float32 -> JSON -> float32 is exact, so a resumed render denoises as the interrupted one would.
        return filters + [{"track_id": k, "stream": "swap", "swap": v.tolist()} for k, v in self._swaps.items()]

    @classmethod
    def from_state(cls, state: list[dict], options: SmoothingOptions | None = None) -> TrackSmoother:
        smoother = cls(options)
        for entry in state:
            if entry["stream"] == "swap":
                smoother._swaps[int(entry["track_id"])] = np.asarray(entry["swap"], np.float32)
            else:
                smoother._filters[(int(entry["track_id"]), str(entry["stream"]))] = OneEuroFilter.from_state(
                    entry["filter"]
                )
        return smoother
