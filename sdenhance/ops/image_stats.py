"""No-reference image measures: noise level, edge blur, JPEG blocking, text lines, flatness, tint.

Each measure answers one question a restorer asks before choosing a treatment, in units that
mean something (grey levels of 255, pixels), on 8-bit RGB arrays. They are classical estimators
chosen to be fast on one core (OpenCV filters, no model) and robust to image content:

- noise: Immerkær's Laplacian-difference high-pass (1996), averaged in 16-px blocks; the 10th
  percentile of block estimates reads the flattest parts, where texture does not pass for noise
  (scikit-image's `estimate_sigma` needs PyWavelets and reads texture as noise);
- blur: the re-blur gradient ratio at edge maxima (Zhuo & Sim, 2011): an edge blurred by a
  Gaussian of σ loses gradient in the ratio ``sqrt(σ² + σ0²) / σ`` when re-blurred with σ0,
  so σ follows from the ratio; binned by gradient direction, it also sees motion blur (one
  direction much softer than the others), which `skimage.measure.blur_effect` cannot;
- JPEG: the excess of luminance steps on one phase of an 8-px grid over the other seven;
- text: run-length smoothing of ink into text-line bars, kept when they stack like lines of a
  page and hold vertical strokes (horizontal streaks of a panned shot do not);
- flatness, colour spread and grey-edge illuminant: for illustrations, old prints and casts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

ANGLE_BINS = 8  # gradient directions for the directional blur estimate (22.5° each)
_LAPLACE_DIFF = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)  # norm 6
_REBLUR = 1.0  # σ0 of the re-blur, px


def grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W) luma of an 8-bit RGB array."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def work_copy(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """`rgb` shrunk with area averaging so its longest side is at most `max_side`."""
    h, w = rgb.shape[:2]
    s = max_side / max(h, w)
    if s >= 1.0:
        return rgb
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def detail_tiles(rgb: np.ndarray, *, max_pixels: int = 1_500_000, tile: int = 512) -> list:
    """The image itself, or for big images up to `max_pixels` worth of tiles spread over it.

    Pixel-level measures (noise, blur, blocking) must see full resolution, but need not see
    every pixel. Tile corners sit on multiples of 8, so the JPEG grid keeps its phase.
    """
    h, w = rgb.shape[:2]
    if h * w <= max_pixels:
        return [rgb]
    per_axis = max(1, int(math.sqrt(max_pixels / (tile * tile))))
    ys = np.linspace(0, max(0, h - tile), per_axis).astype(int) // 8 * 8
    xs = np.linspace(0, max(0, w - tile), per_axis).astype(int) // 8 * 8
    return [rgb[y : y + tile, x : x + tile] for y in ys for x in xs]


# --- noise ---------------------------------------------------------------------------------


def noise_sigma(tiles: list, *, block: int = 16, flattest: float = 20.0) -> float:
    """Standard deviation of white noise, in 8-bit levels.

    Per block and channel, the Laplacian-difference response is measured at full and at half
    resolution: white noise loses three quarters of its energy to the 2×2 average while image
    structure keeps most of it, so ``4/3 · (E_full − E_half)`` is the noise energy with
    texture mostly cancelled. The estimate is the median of that over the `flattest` % of
    block-channels (lowest full-resolution energy). Clipping at 0 and 255 erases noise: a first
    pass leaves out mostly clipped block-channels (a blown sky, a black border); when it finds
    noise, a second pass also leaves out those within 2σ of either end and the larger of the
    two is kept (clipping only ever lowers the estimate).

    Parameters
    ----------
    tiles : list of ndarray of shape (H, W, 3), uint8
    block : int
        Side of the blocks (even); 8 for images under 64 px.
    flattest : float
        Share (%) of the block-channels, the flattest, that the estimate is read from.
    """
    found = []
    for rgb in tiles:
        h, w = rgb.shape[:2]
        b = block if min(h, w) >= 4 * block else 8
        ny, nx = (h // 2 * 2 - 4) // b, (w // 2 * 2 - 4) // b
        if ny < 1 or nx < 1:
            continue
        x = rgb[2 : 2 + ny * b, 2 : 2 + nx * b].astype(np.float32)
        half = cv2.resize(x, (nx * b // 2, ny * b // 2), interpolation=cv2.INTER_AREA)
        e_full = cv2.filter2D(x, -1, _LAPLACE_DIFF, borderType=cv2.BORDER_REFLECT)
        e_half = cv2.filter2D(half, -1, _LAPLACE_DIFF, borderType=cv2.BORDER_REFLECT)
        clipped = _block_means(((x == 0) | (x == 255)).astype(np.float32), ny, nx)
        full = _block_means(e_full * e_full, ny, nx) / 36.0
        coarse = _block_means(e_half * e_half, ny, nx) / 36.0
        found.append(np.stack([full, coarse, _block_means(x, ny, nx), clipped], axis=1))
    blocks = np.concatenate(found) if found else np.zeros((0, 4))
    sigma = _flattest_noise(blocks[blocks[:, 3] < 0.5], flattest)
    inside = (blocks[:, 2] > 2.0 * sigma) & (blocks[:, 2] < 255.0 - 2.0 * sigma)
    if sigma >= 4.0 and inside.sum() >= max(4, 0.1 * len(blocks)):
        # only to correct the size of a noise found: a first pass of 0 stays 0
        sigma = max(sigma, _flattest_noise(blocks[inside], flattest))
    return sigma


def _flattest_noise(blocks: np.ndarray, flattest: float) -> float:
    """Noise σ from rows (E_full, E_half, ...): the median over the flattest rows."""
    if not len(blocks):
        return 0.0
    flat = blocks[blocks[:, 0] <= np.percentile(blocks[:, 0], flattest)]
    return float(np.sqrt(np.median(np.maximum(0.0, 4.0 / 3.0 * (flat[:, 0] - flat[:, 1])))))


def _block_means(a: np.ndarray, ny: int, nx: int) -> np.ndarray:
    """Per-channel means of the `ny` × `nx` equal blocks tiling `a` (H, W, 3), flattened."""
    return cv2.resize(a, (nx, ny), interpolation=cv2.INTER_AREA).ravel()


# --- blur ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EdgeBlur:
    """Edge blur read at the strongest edges.

    `sigma` is the Gaussian σ (px) that explains the median edge; `by_angle` holds it per
    gradient direction (``ANGLE_BINS`` bins from 0°, NaN where too few edges), so a motion blur
    shows as one direction far softer than its perpendicular. `edges` counts the samples.
    """

    sigma: float
    by_angle: tuple[float, ...]
    edges: int

    @property
    def sigma_max(self) -> float:
        """The softest direction's σ (the blur along a motion); `sigma` without direction data."""
        known = [s for s in self.by_angle if not math.isnan(s)]
        return max(known) if known else self.sigma

    @property
    def sigma_min(self) -> float:
        known = [s for s in self.by_angle if not math.isnan(s)]
        return min(known) if known else self.sigma

    @property
    def angle(self) -> float:
        """Gradient direction (degrees, 0 = along x, counter-clockwise) of the softest edges."""
        known = [(s, i) for i, s in enumerate(self.by_angle) if not math.isnan(s)]
        return max(known)[1] * 180.0 / ANGLE_BINS if known else 0.0


def _edge_maxima(mag: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Pixels whose gradient is a maximum across their edge (non-maximum suppression);
    `angle` in degrees, 0-360."""
    sector = ((np.mod(angle, 180.0) / 45.0) + 0.5).astype(np.int8) % 4
    pad = np.pad(mag, 1, mode="edge")
    h, w = mag.shape
    keep = np.zeros(mag.shape, bool)
    for k, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        ahead = pad[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        behind = pad[1 - dy : 1 - dy + h, 1 - dx : 1 - dx + w]
        keep |= (sector == k) & (mag >= ahead) & (mag >= behind)
    keep[:2], keep[-2:], keep[:, :2], keep[:, -2:] = False, False, False, False
    return keep


def edge_blur(tiles: list, *, top: float = 30.0, min_edges: int = 40) -> EdgeBlur:
    """Gaussian-equivalent blur σ (px) at the strongest edges, overall and per direction.

    Edge maxima are binned by gradient direction and, in each bin, the `top` % strongest
    are read: a motion blur weakens the edges across its path, which a global strength cut
    would drop in favour of the sharp edges along it.

    Parameters
    ----------
    tiles : list of ndarray of shape (H, W, 3), uint8
    top : float
        Share (%) of each direction's edge maxima, the strongest, that are read.
    min_edges : int
        Fewer samples than this give σ = NaN (nothing to read the blur from).
    """
    mags, ratios, angles = [], [], []
    for rgb in tiles:
        g = grey(rgb).astype(np.float32)
        if min(g.shape) < 8:
            continue
        mag, angle = cv2.cartToPolar(
            cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1), angleInDegrees=True
        )
        soft = cv2.GaussianBlur(g, (0, 0), _REBLUR)
        mag_soft = cv2.magnitude(
            cv2.Sobel(soft, cv2.CV_32F, 1, 0), cv2.Sobel(soft, cv2.CV_32F, 0, 1)
        )
        sel = _edge_maxima(mag, angle) & (mag > 16.0) & (mag_soft > 1e-3)  # 16: a 4-level step
        mags.append(mag[sel])
        ratios.append(mag[sel] / mag_soft[sel])
        angles.append(np.mod(angle[sel], 180.0))
    mag = np.concatenate(mags) if mags else np.zeros(0)
    ratio = np.concatenate(ratios) if ratios else np.zeros(0)
    degrees = np.concatenate(angles) if angles else np.zeros(0)
    bins = (degrees / 180.0 * ANGLE_BINS + 0.5).astype(int) % ANGLE_BINS
    by_angle, chosen = [], []
    for k in range(ANGLE_BINS):
        here = np.nonzero(bins == k)[0]
        if len(here) < 10:
            by_angle.append(float("nan"))
            continue
        strong = here[mag[here] >= np.percentile(mag[here], 100.0 - top)]
        sigma = _REBLUR / np.sqrt(np.maximum(ratio[strong], 1.0 + 1e-4) ** 2 - 1.0)
        sigma = np.minimum(sigma, 20.0)  # flat-topped maxima read as huge σ
        chosen.append(sigma)
        by_angle.append(float(np.median(sigma)) if len(strong) >= 5 else float("nan"))
    every = np.concatenate(chosen) if chosen else np.zeros(0)
    if every.size < min_edges:
        return EdgeBlur(float("nan"), (float("nan"),) * ANGLE_BINS, int(every.size))
    return EdgeBlur(float(np.median(every)), tuple(by_angle), int(every.size))


# --- JPEG blocking -------------------------------------------------------------------------


def blockiness(tiles: list, *, cap: float = 24.0, reach: int = 5) -> float:
    """Excess of luminance steps on the strongest phase of an 8-px grid, relative to the rest.

    About 0 for an image without blocks; JPEG at quality 30 or less reads above 0.3. Steps
    within `reach` px of a step larger than `cap` levels are left out: real edges occur at
    every phase and would drown the block borders, while the ringing JPEG leaves around them
    stops at a border. The phase is searched (crops of JPEGs count too) and the weaker axis
    is returned: JPEG blocks both ways, rows of text or a pattern repeat in one only.
    """
    from scipy.ndimage import maximum_filter1d

    per_axis = []
    for axis in (1, 0):
        sums, counts = np.zeros(8), np.zeros(8)
        for rgb in tiles:
            g = grey(rgb).astype(np.float32)
            d = np.abs(np.diff(g if axis == 1 else g.T, axis=1))
            n = d.shape[1] // 8 * 8
            if n < 16:
                continue
            calm = maximum_filter1d(d, size=2 * reach + 1, axis=1) <= cap
            sums += np.where(calm, d, 0.0)[:, :n].reshape(d.shape[0], -1, 8).sum(axis=(0, 1))
            counts += calm[:, :n].reshape(d.shape[0], -1, 8).sum(axis=(0, 1))
        if counts.min() == 0:
            continue
        phase = sums / counts
        k = int(np.argmax(phase))
        rest = float(np.median(np.delete(phase, k)))
        per_axis.append((phase[k] - rest) / (rest + 0.05))
    return float(min(per_axis)) if len(per_axis) == 2 else 0.0


# --- text ----------------------------------------------------------------------------------


def text_line_area(rgb: np.ndarray) -> tuple[float, int]:
    """Share of the image covered by stacked text lines, and their number.

    Ink (darker, or lighter, than its surroundings) is smeared along rows so each line of text
    becomes one bar; bars count when long (≥ 5 × their height), not solid, made of vertical
    strokes rather than horizontal streaks, and stacked over another bar like lines of a page.
    Images under 300 px are read at twice their size so 3-px lines stay apart.
    """
    g = grey(rgb)
    h, w = g.shape
    if min(h, w) < 300:
        g = cv2.resize(g, (2 * w, 2 * h), interpolation=cv2.INTER_CUBIC)
        h, w = g.shape
    p5, p95 = np.percentile(g, (5, 95))
    c = max(3.0, 0.05 * (float(p95) - float(p5)))
    block = max(25, (min(h, w) // 16) | 1)
    gf = cv2.GaussianBlur(g.astype(np.float32), (0, 0), 1.0)  # strokes survive, grain does not
    gx = np.abs(cv2.Sobel(gf, cv2.CV_32F, 1, 0))
    gy = np.abs(cv2.Sobel(gf, cv2.CV_32F, 0, 1))
    best = (0.0, 0)
    for page in (g, 255 - g):  # dark ink, then light ink
        ink = cv2.adaptiveThreshold(
            page, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, block, c
        )
        ink_sum = cv2.integral(ink)
        for run in (5, 9, 15):
            bars = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((1, run), np.uint8))
            bars = cv2.morphologyEx(bars, cv2.MORPH_OPEN, np.ones((2, 1), np.uint8))
            found = _stacked_bars(bars, ink_sum, gx, gy, run)
            if found[0] > best[0]:
                best = found
    return best


def _box_sums(integral: np.ndarray, x, y, w, h) -> np.ndarray:
    return integral[y + h, x + w] - integral[y, x + w] - integral[y + h, x] + integral[y, x]


def _stacked_bars(bars, ink_sum, gx, gy, run) -> tuple[float, int]:
    h_img, w_img = bars.shape
    _, _, stats, _ = cv2.connectedComponentsWithStats(bars, connectivity=4)
    x, y, w, h, area = stats[1:].T
    ok = (h >= 3) & (h <= h_img / 8) & (w >= 5 * h) & (w >= 3 * run) & (area >= 0.35 * w * h)
    x, y, w, h = x[ok], y[ok], w[ok], h[ok]
    if len(x) < 3:
        return 0.0, 0
    density = _box_sums(ink_sum, x, y, w, h) / (w * h)
    sx, sy = cv2.integral(gx), cv2.integral(gy)
    strokes = _box_sums(sx, x, y, w, h) / np.maximum(_box_sums(sy, x, y, w, h), 1e-6)
    keep = (density <= 0.75) & (strokes >= 0.3)
    x, y, w, h = x[keep], y[keep], w[keep], h[keep]
    order = np.argsort(y)
    x, y, w, h = x[order], y[order], w[order], h[order]
    stacked = np.zeros(len(x), bool)
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if y[j] - y[i] > 3.5 * h[i]:
                break
            overlap = min(x[i] + w[i], x[j] + w[j]) - max(x[i], x[j])
            if (
                overlap > 0.3 * min(w[i], w[j])
                and 0.6 < h[j] / h[i] < 1.67
                and y[j] >= y[i] + 0.8 * h[i]
            ):
                stacked[i] = stacked[j] = True
    share = float((w * h)[stacked].sum()) / (h_img * w_img)
    return share, int(stacked.sum())


# --- flatness, colour ----------------------------------------------------------------------


def flat_share(rgb: np.ndarray, *, tol: int = 3) -> float:
    """Share of pixels whose 3×3 neighbourhood varies by at most `tol` levels in every channel:
    large in flat-colour art, small in photos (grain and shading vary every pixel)."""
    kernel = np.ones((3, 3), np.uint8)
    spread = cv2.dilate(rgb, kernel).astype(np.int16) - cv2.erode(rgb, kernel)
    return float((spread.max(axis=2) <= tol).mean())


def palette_share(rgb: np.ndarray, *, colours: int = 24, bits: int = 4) -> float:
    """Share of pixels in the `colours` most frequent colours, at `bits` per channel after a
    3×3 median: near 1 for flat-colour art (anti-aliasing, JPEG and light grain stay within
    a colour's bin), about 0.4-0.7 for colour photos. Greyscale images also read near 1."""
    q = (cv2.medianBlur(np.ascontiguousarray(rgb), 3) >> (8 - bits)).astype(np.int32)
    code = (q[..., 0] << (2 * bits)) | (q[..., 1] << bits) | q[..., 2]
    counts = np.sort(np.bincount(code.ravel(), minlength=1 << (3 * bits)))[::-1]
    return float(counts[:colours].sum() / code.size)


def colour_spread(rgb: np.ndarray) -> tuple[float, float]:
    """Spread of colour around the image's mean tint (a*, b* std, Lab units) and that tint's
    chroma: both about 0 for greyscale, spread small but chroma 10-30 for sepia prints."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    ab = lab[..., 1:].reshape(-1, 2) - 128.0  # 8-bit Lab: a*, b* offset by 128
    spread = float(np.sqrt(ab.var(axis=0).sum()))
    tint = float(np.hypot(*ab.mean(axis=0)))
    return spread, tint


def tone_range(rgb: np.ndarray) -> float:
    """Range of the 1st to 99th percentile of luma, 0..255 (low for faded prints)."""
    lo, hi = np.percentile(grey(rgb), (1, 99))
    return float(hi - lo)


def grey_edge_gains(rgb: np.ndarray, *, p: float = 6.0, sigma: float = 1.0) -> np.ndarray:
    """Per-channel gains that make the image's edge colour neutral (grey-edge white balance,
    van de Weijer et al. 2007): the illuminant is the Minkowski-p mean of each channel's
    gradient magnitude, which, unlike the mean colour, does not follow large coloured areas.
    Gains are normalised to keep luminance; (1, 1, 1) means no cast."""
    x = cv2.GaussianBlur(rgb.astype(np.float32), (0, 0), sigma)
    gx = cv2.Sobel(x, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(x, cv2.CV_32F, 0, 1)
    mag = np.hypot(gx, gy).reshape(-1, 3)
    light = np.power(np.mean(np.power(mag, p), axis=0), 1.0 / p)
    if not np.all(light > 1e-6):
        return np.ones(3)
    gains = light.mean() / light
    return gains / (gains @ np.array([0.299, 0.587, 0.114]))


def cast_angle(gains: np.ndarray) -> float:
    """Angle (degrees) between the illuminant the gains undo and neutral grey."""
    light = 1.0 / np.asarray(gains, float)
    cos = float(light.sum() / (np.linalg.norm(light) * math.sqrt(3.0)))
    return math.degrees(math.acos(min(1.0, max(-1.0, cos))))


def clipped_shares(rgb: np.ndarray) -> tuple[float, float]:
    """Shares of pixels with a channel at 255 (blown highlights) and with luma ≤ 2 (crushed
    shadows)."""
    high = float((rgb.max(axis=2) >= 255).mean())
    low = float((grey(rgb) <= 2).mean())
    return high, low
