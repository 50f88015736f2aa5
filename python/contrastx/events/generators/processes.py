"""Registry of named Pythia 8 processes: settings strings plus a one-line description.

Every process the Pythia generator can make is a :class:`ProcessSpec`: a name
(the event label), the Pythia settings strings that select the hard process and
force the decays, and a one-line physics description. The eight ADC2021
processes are registered at import; add your own with :func:`register_process`.

The settings here are only the *process* part. The generator adds the common
settings itself (13 TeV pp beams, MPI on or off, quiet output and the
per-batch random seed; see :func:`contrastx.events.generators.pythia.common_settings`).

Adding a process
----------------
>>> from contrastx.events.generators.processes import register_process
>>> spec = register_process(
...     "Zprime_mumu",
...     [
...         "NewGaugeBoson:ffbar2gmZZprime = on",
...         "Zprime:gmZmode = 3",          # pure Z' (no gamma*/Z interference)
...         "32:m0 = 500",
...         "32:onMode = off",
...         "32:onIfAny = 13",
...     ],
...     "Z' (500 GeV) -> mu mu, Drell-Yan production",
... )
>>> spec.name
'Zprime_mumu'

Then generate it like any built-in process
(``generate_pythia("zp.h5", {"Zprime_mumu": 1000}, seed=1)``); its label is its
index in the file's ``process_names`` (the built-in names first, then the custom
ones in the order they were requested).

Pitfall: ``onIfAny`` / ``onIfAll`` / ``onIfMatch`` lists are **space**-separated;
a comma silently keeps only the first code, so :func:`register_process` refuses
commas there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..layout import PROCESSES

__all__ = [
    "B_HADRONS",
    "PROCESS_REGISTRY",
    "ProcessSpec",
    "get_process",
    "register_process",
    "unregister_process",
]

B_HADRONS = (511, 521, 531, 541, 5122, 5132, 5232, 5332)
"""PDG ids of the weakly decaying b hadrons (their antiparticles share the decay table)."""


@dataclass(frozen=True)
class ProcessSpec:
    """One named process for the Pythia generator.

    Attributes
    ----------
    name : str
        Process name, used as the event label (``Events.process_names``).
    settings : tuple of str
        Pythia ``readString`` settings selecting the hard process and decays.
    description : str
        One-line physics description.
    """

    name: str
    settings: tuple[str, ...]
    description: str


PROCESS_REGISTRY: dict[str, ProcessSpec] = {}
"""All known processes by name (the eight ADC2021 ones first)."""

_NAME_RE = re.compile(r"^[A-Za-z0-9_+\-.]+$")
_COMMA_LIST_RE = re.compile(r":onIf(Any|All|Match)\s*=.*,", re.IGNORECASE)


def _check_settings(name: str, settings: Iterable[str]) -> tuple[str, ...]:
    if isinstance(settings, str):
        raise TypeError(f"settings of process {name!r} must be a list of strings, not one string")
    out = []
    for s in settings:
        if not isinstance(s, str) or not s.strip():
            raise ValueError(f"process {name!r}: settings must be non-empty strings; got {s!r}")
        if "=" not in s:
            raise ValueError(f"process {name!r}: setting {s!r} is not of the form 'Key = value'")
        if _COMMA_LIST_RE.search(s):
            raise ValueError(
                f"process {name!r}: {s!r} uses commas; Pythia's onIfAny/onIfAll/onIfMatch lists "
                "are space-separated (a comma silently keeps only the first code)"
            )
        out.append(s.strip())
    if not out:
        raise ValueError(f"process {name!r} needs at least one setting")
    return tuple(out)


def register_process(
    name: str, settings: Iterable[str], description: str, *, overwrite: bool = False
) -> ProcessSpec:
    """Add a named process to :data:`PROCESS_REGISTRY`.

    Parameters
    ----------
    name : str
        Process name (letters, digits, ``_ + - .``); becomes the event label.
    settings : iterable of str
        Pythia settings strings (``"Key = value"``) for the hard process and decays.
        Do not set beams, MPI or seeds here: the generator sets them.
    description : str
        One-line physics description (stored in the output metadata).
    overwrite : bool, default False
        Replace an existing process of the same name (built-in ones included).

    Returns
    -------
    ProcessSpec
        The registered process.

    Raises
    ------
    ValueError
        Bad name, empty or malformed settings (including comma-separated
        ``onIfAny`` lists), empty description, or an existing name without
        ``overwrite=True``.

    Notes
    -----
    The settings are checked against Pythia (unknown keys are an error) when a
    generation job starts, not here, so registering works without pythia8mc.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"process name must be letters, digits or '_+-.' characters; got {name!r}")
    if name in PROCESS_REGISTRY and not overwrite:
        raise ValueError(
            f"process {name!r} is already registered; pass overwrite=True to replace it"
        )
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"process {name!r} needs a one-line description")
    spec = ProcessSpec(name, _check_settings(name, settings), " ".join(description.split()))
    PROCESS_REGISTRY[name] = spec
    return spec


def unregister_process(name: str) -> None:
    """Remove a custom process from the registry (built-in ones cannot be removed)."""
    if name in PROCESSES:
        raise ValueError(f"{name!r} is a built-in ADC2021 process and cannot be removed")
    get_process(name)
    del PROCESS_REGISTRY[name]


def get_process(name: str) -> ProcessSpec:
    """Look up a process by name, with the list of known names in the error."""
    try:
        return PROCESS_REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown process {name!r}; known processes: {', '.join(PROCESS_REGISTRY)} "
            "(add one with contrastx.events.generators.processes.register_process)"
        ) from None


def _forced_semileptonic_b() -> list[str]:
    out = []
    for code in B_HADRONS:
        out += [f"{code}:onMode = off", f"{code}:onIfAny = 11 13"]
    return out


# ---------------------------------------------------------------- ADC2021 processes
register_process(
    "W",
    ["WeakSingleBoson:ffbar2W = on", "24:onMode = off", "24:onIfAny = 11 13 15"],
    "W -> e nu, mu nu, tau nu (f fbar -> W, 13 TeV)",
)
register_process(
    "QCD",
    ["HardQCD:hardbbbar = on", "PhaseSpace:pTHatMin = 30", *_forced_semileptonic_b()],
    "b bbar dijets (pT-hat > 30 GeV) with b hadrons forced to semileptonic e/mu decays",
)
register_process(
    "Z",
    [
        "WeakSingleBoson:ffbar2gmZ = on",
        "PhaseSpace:mHatMin = 40",
        "23:onMode = off",
        "23:onIfAny = 11 13 15",
    ],
    "Z/gamma* (m > 40 GeV) -> ee, mumu, tautau",
)
register_process(
    "ttbar",
    ["Top:gg2ttbar = on", "Top:qqbar2ttbar = on"],
    "t tbar (gg and q qbar), inclusive decays",
)
register_process(
    "Ato4l",
    [
        "Higgs:useBSM = on",
        "HiggsBSM:gg2H2 = on",
        "35:m0 = 50",
        "35:onMode = off",
        "35:onIfMatch = 23 23",
        "23:onMode = off",
        "23:onIfAny = 11 13",
        "23:mMin = 1",
    ],
    "neutral scalar (50 GeV, gg fusion; CP-even H2 stands in for A) -> Z* Z* -> 4 l (e/mu)",
)
register_process(
    "LQ_btau",
    ["LeptoQuark:all = on", "42:m0 = 80", "42:0:products = 5 -15"],
    "leptoquark (80 GeV), pair and single production, -> b tau",
)
register_process(
    "h0_tautau",
    [
        "HiggsSM:gg2H = on",
        "HiggsSM:ffbar2H = on",
        "25:m0 = 60",
        "25:onMode = off",
        "25:onIfAny = 15",
    ],
    "neutral scalar h0 (60 GeV, gg fusion and f fbar) -> tau tau",
)
register_process(
    "hch_taunu",
    [
        "Higgs:useBSM = on",
        "HiggsBSM:ffbar2H+H- = on",
        "37:m0 = 60",
        "37:onMode = off",
        "37:onIfAny = 15",
    ],
    "charged scalar pair h+ h- (60 GeV, Drell-Yan) -> tau nu each",
)

assert tuple(PROCESS_REGISTRY)[: len(PROCESSES)] == PROCESSES
