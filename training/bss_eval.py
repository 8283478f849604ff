"""BSS-Eval (Vincent, Gribonval and Févotte 2006), the SDR, SIR and SAR that museval and
Open-Unmix report, with time-invariant distortion filters of TAPS taps.

For an estimate e of source j and references s_1..s_n: s_target is e projected onto the span
of s_j and its first TAPS-1 delays, P_all e its projection onto the delays of every reference.
Both projections are orthogonal and the first subspace lies in the second, so
  SDR = |s_target|^2 / (|e|^2 - |s_target|^2)
  SIR = |s_target|^2 / (|P_all e|^2 - |s_target|^2)
  SAR = |P_all e|^2 / (|e|^2 - |P_all e|^2)
and only correlations are needed: an FFT gives every (reference, reference) and (reference,
estimate) correlation up to TAPS-1 lags; the projections solve the Toeplitz-block Gram system.
(fast-bss-eval 0.1.4 computes the same, but its filtered path fails under NumPy 2: docs/decisions/bss-eval-in-house.md.)
"""

import numpy as np

TAPS = 512
DB_LIMIT = 100.0
_TINY = 1e-12


def _db(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.clip(10 * np.log10(np.maximum(numerator, _TINY) / np.maximum(denominator, _TINY)), -DB_LIMIT, DB_LIMIT)


def _correlations(a: np.ndarray, b: np.ndarray, taps: int, block: int = 8192) -> np.ndarray:
    """c[i, k, lag] = sum_t a[i, t] b[k, t + lag] for lag in 0..taps-1. Block by block: each
    signal's blocks are transformed once, the cross-spectra summed over blocks, and one short
    inverse transform made per pair, not one long FFT per pair (docs/decisions/bss-eval-in-house.md)."""
    step = block - taps
    length = a.shape[1]
    starts = np.arange(0, length, step)
    padded_b = np.concatenate([b, np.zeros((len(b), step + taps))], axis=1)
    a_blocks = np.zeros((len(a), len(starts), block))
    b_blocks = np.empty((len(b), len(starts), block))
    for index, start in enumerate(starts):
        piece = a[:, start : start + step]
        a_blocks[:, index, : piece.shape[1]] = piece
        b_blocks[:, index] = padded_b[:, start : start + block]
    spectrum = np.einsum("inf,knf->ikf", np.conj(np.fft.rfft(a_blocks)), np.fft.rfft(b_blocks))
    return np.fft.irfft(spectrum, block)[..., :taps]


def bss_eval(
    references: np.ndarray, estimates: np.ndarray, taps: int = TAPS, reference_of: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """SDR, SIR and SAR (dB) of estimates [m, samples] against references [n, samples]; estimate
    j is scored against reference `reference_of[j]` (by default j). Several sets of estimates of
    the same references go in one call: the Gram matrix is built once."""
    references = np.asarray(references, dtype=np.float64)
    estimates = np.asarray(estimates, dtype=np.float64)
    sources = len(references)
    reference_of = np.arange(len(estimates)) if reference_of is None else np.asarray(reference_of)
    # Gram matrix of every delayed reference: G[(i, d1), (k, d2)] = sum_t s_i[t - d1] s_k[t - d2]
    #   = autocorrelation of (i, k) at lag d1 - d2.
    auto = _correlations(references, references, taps)  # [i, k, lag >= 0]
    # with negative lags: auto(i, k, -l) = auto(k, i, l)
    both = np.concatenate([auto, auto.transpose(1, 0, 2)[..., :0:-1]], axis=-1)  # lags 0..taps-1, then -(taps-1)..-1
    lags = (np.arange(taps)[:, None] - np.arange(taps)[None, :]) % (2 * taps - 1)  # d1 - d2, wrapped
    gram = both[:, :, lags].transpose(0, 2, 1, 3).reshape(sources * taps, sources * taps)
    gram += np.eye(len(gram)) * 1e-9 * np.trace(gram) / len(gram)  # keeps silent references solvable
    # cross[(i, d), j] = sum_t s_i[t - d] e_j[t] = correlation of (i, j) at lag d
    cross = _correlations(references, estimates, taps).transpose(0, 2, 1).reshape(sources * taps, -1)
    energy = (estimates**2).sum(axis=1)
    all_coefficients = np.linalg.solve(gram, cross)
    projected_all = (cross * all_coefficients).sum(axis=0)  # |P_all e_j|^2
    target = np.zeros(len(estimates))
    for j, source in enumerate(reference_of):
        block = slice(source * taps, (source + 1) * taps)
        coefficients = np.linalg.solve(gram[block, block], cross[block, j])
        target[j] = cross[block, j] @ coefficients  # |s_target|^2
    return {
        "sdr": _db(target, energy - target),
        "sir": _db(target, projected_all - target),
        "sar": _db(projected_all, energy - projected_all),
    }
