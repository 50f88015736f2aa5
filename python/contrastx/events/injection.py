"""Signal injection: mix a given fraction or count of signal events into a background sample.

Fractions follow the primary paper's convention: at a fraction ``f`` the number
of injected signal events is ``round(f * N_background)``, so N(B) = 100,000 with
f = 0.1 %, 0.5 %, 1 % gives N(S) = 100, 500, 1,000 as in the paper.
"""

from __future__ import annotations

import numpy as np

from .container import Events


def n_signal_for_fraction(n_background: int, fraction: float) -> int:
    """Signal count for an injection fraction: ``round(fraction * n_background)``."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"signal fraction must be in [0, 1); got {fraction}")
    return round(fraction * n_background)


def inject_signal(
    background: Events,
    signal: Events,
    *,
    fraction: float | None = None,
    count: int | None = None,
    seed: int = 0,
    shuffle: bool = True,
) -> Events:
    """Return ``background`` plus signal events drawn without replacement from ``signal``.

    Parameters
    ----------
    background, signal : Events
        The sample to inject into, and the pool to draw signal events from. Labels
        are kept (and re-mapped onto the union of process names), so the truth of
        every event stays known.
    fraction : float, optional
        Injection fraction (see the module docstring). Exactly one of ``fraction``
        and ``count`` must be given.
    count : int, optional
        Number of signal events to inject.
    seed : int
        Seeds the choice of signal events and the final shuffle.
    shuffle : bool
        Shuffle the result (default) instead of appending the signal at the end.
    """
    if (fraction is None) == (count is None):
        raise ValueError("give exactly one of fraction= and count=")
    if len(background) == 0:
        raise ValueError("background sample is empty")
    n_sig = n_signal_for_fraction(len(background), fraction) if fraction is not None else int(count)
    if n_sig < 0:
        raise ValueError(f"signal count must be non-negative; got {n_sig}")
    if n_sig > len(signal):
        raise ValueError(
            f"asked for {n_sig} signal events but the signal pool holds only {len(signal)}"
        )
    rng = np.random.default_rng(seed)
    chosen = signal[np.sort(rng.choice(len(signal), size=n_sig, replace=False))]
    meta = dict(background.metadata)
    meta["injection"] = {
        "signal_processes": sorted(chosen.counts()),
        "n_signal": n_sig,
        "n_background": len(background),
        "fraction": fraction,
        "seed": seed,
    }
    mixed = Events.concatenate([background, chosen], metadata=meta)
    if shuffle:
        mixed = mixed[rng.permutation(len(mixed))]
    return mixed
