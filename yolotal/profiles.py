"""Which ultralytics release assigns and scores like what: the task-aligned profiles, by version.

ultralytics changed its detection assignment and loss several times between 8.0.0 and today. Each distinct
behaviour is a profile, named by the first release that has it (two keep their older names). Read from the
released wheels' ``utils/tal.py`` and ``utils/loss.py`` (see notes/profiles-research.md):

========== ================ ====================================================================================
profile    releases         what differs
========== ================ ====================================================================================
v8.0.0     8.0.0-8.0.6      conflicts by CIoU among all GTs (also non-candidates); loss / raw target-score sum
v8.0.35    8.0.35-8.0.51    conflicts by CIoU among all GTs (also non-candidates), CIoU computed at every anchor
classic    8.0.52-8.3.253   metrics at candidates only; no small-GT enlargement, no topk2, no term 3 at reg_max 1
v8.4.0     8.4.0-8.4.127    GT sides < stride[0] enlarged to stride[1]; topk2; L1 as term 3 when reg_max = 1
ultralytics 8.4.128-        every GT side < stride[1] enlarged to stride[1] (monotonic); topk2; L1 at reg_max 1
========== ================ ====================================================================================

Aliases: ``latest`` and ``v8.4.128`` = ultralytics, ``v8.0.52`` = classic; a release number (``8.3.202``) names
the profile of that release; ``auto`` = the profile of the release that trained the checkpoint (newest without
one). Pure: no torch, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NEWEST_KNOWN = (8, 4, 190)  # the newest release whose tal.py / loss.py were read
AUTO = "auto"


@dataclass(frozen=True)
class Profile:
    """One behaviour of ultralytics' detection assignment and loss.

    name, first, last: the profile and its release range (last None: up to the newest release).
    differs: one line on what sets it apart.
    enlarge: small-GT enlargement for candidate selection: None; "below-first" (sides < strides[0] become
        strides[1]); "below-second" (sides < strides[1] become strides[1]).
    topk2: has the second top-k after conflict resolution (the end-to-end one-to-one branch uses it).
    l1_term: with reg_max 1 the third loss term is an L1 on image-normalised distances (else it is 0).
    l1_named_from: first release that logs that term as ``l1_loss`` (before it: ``dfl_loss``).
    conflicts_all_gts: CIoU is computed at every anchor and a multiply claimed anchor goes to the largest CIoU
        among all GTs of the image, candidates of that anchor or not (8.0.0-8.0.51).
    floor_score_sum: the loss divides by max(sum of target scores, 1) (8.0.0-8.0.6: by the raw sum).
    """

    name: str
    first: tuple[int, int, int]
    last: tuple[int, int, int] | None
    differs: str
    enlarge: str | None = None
    topk2: bool = False
    l1_term: bool = False
    l1_named_from: tuple[int, int, int] | None = None
    conflicts_all_gts: bool = False
    floor_score_sum: bool = True

    @property
    def releases(self) -> str:
        """'8.0.52-8.3.253' or '8.4.128 and later'."""
        first = _fmt(self.first)
        return f"{first}-{_fmt(self.last)}" if self.last else f"{first} and later"


PROFILES: tuple[Profile, ...] = (
    Profile("v8.0.0", (8, 0, 0), (8, 0, 6),
            "conflicts go to the largest CIoU among all GTs, candidates or not; loss divided by the raw "
            "target-score sum (no floor at 1)",
            conflicts_all_gts=True, floor_score_sum=False),
    Profile("v8.0.35", (8, 0, 35), (8, 0, 51),
            "conflicts go to the largest CIoU among all GTs, candidates or not (CIoU computed at every anchor)",
            conflicts_all_gts=True),
    Profile("classic", (8, 0, 52), (8, 3, 253),
            "no small-GT enlargement, no topk2, no third loss term when reg_max = 1"),
    Profile("v8.4.0", (8, 4, 0), (8, 4, 127),
            "GT sides < stride[0] enlarged to stride[1] for candidate selection; topk2; L1 third term at reg_max 1",
            enlarge="below-first", topk2=True, l1_term=True, l1_named_from=(8, 4, 104)),
    Profile("ultralytics", (8, 4, 128), None,
            "every GT side < stride[1] enlarged to stride[1] for candidate selection (monotonic); topk2; "
            "L1 third term at reg_max 1",
            enlarge="below-second", topk2=True, l1_term=True, l1_named_from=(8, 4, 104)),
)
BY_NAME = {p.name: p for p in PROFILES}
NEWEST = PROFILES[-1].name
ALIASES = {"latest": NEWEST, "v8.4.128": "ultralytics", "v8.0.52": "classic"}
NAMES = tuple(BY_NAME)  # canonical names, oldest first


def _fmt(v: tuple[int, int, int]) -> str:
    return ".".join(map(str, v))


_VERSION = re.compile(r"^\s*v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(version: str | None) -> tuple[int, int, int] | None:
    """'8.3.202' (also 'v8.3.202', '8.4.1.dev0', '8.3') -> (8, 3, 202); None when it is not a version."""
    if not isinstance(version, str):
        return None
    m = _VERSION.match(version)
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _for_tuple(v: tuple[int, int, int]) -> Profile:
    for p in reversed(PROFILES):
        if v >= p.first:
            return p
    return PROFILES[0]


def profile_for_version(version: str | None) -> tuple[str, str, str | None]:
    """The profile of the ultralytics release that trained a checkpoint (``ckpt["version"]``).

    Returns (profile name, a one-line note, a warning or None). A release newer than any known one gets the
    newest profile with a warning; so does a missing or unreadable version. A release older than 8.0.0 (the
    pre-YOLOv8 packages) gets the oldest profile with a warning.
    """
    v = parse_version(version)
    if v is None:
        why = "no ultralytics version" if version in (None, "") else f"ultralytics version {version!r} unreadable"
        note = f"{why} in the checkpoint → profile {NEWEST} (the newest): {BY_NAME[NEWEST].differs}"
        return NEWEST, note, f"{why}: assuming the newest rules (profile {NEWEST}); set --profile to choose"
    p = _for_tuple(v)
    shown = version.strip()
    note = f"trained by ultralytics {shown} → profile {p.name}: {p.differs}"
    warning = None
    if v > NEWEST_KNOWN:
        warning = (f"ultralytics {shown} is newer than the newest release yolotal knows ({_fmt(NEWEST_KNOWN)}): "
                   f"using profile {p.name}; its rules may have changed since")
    elif v < PROFILES[0].first:
        warning = f"ultralytics {shown} predates YOLOv8 (8.0.0): using the oldest profile {p.name}"
    return p.name, note, warning


def resolve_profile(name: str | None) -> str:
    """A profile name, alias or release number -> the canonical profile name; None or 'auto' -> 'auto'.

    Raises ValueError for anything else (the message lists the names).
    """
    if name is None:
        return AUTO
    if not isinstance(name, str):
        raise ValueError(f"a profile name is a string, got {name!r}")
    key = name.strip()
    if key == AUTO:
        return AUTO
    if key in BY_NAME:
        return key
    if key in ALIASES:
        return ALIASES[key]
    v = parse_version(key)
    if v is not None and re.fullmatch(r"v?\d+\.\d+(\.\d+)?", key):
        return _for_tuple(v).name
    raise ValueError(f"unknown profile {name!r} (profiles: {', '.join(NAMES)}; aliases: "
                     f"{', '.join(f'{a}={b}' for a, b in ALIASES.items())}; a release such as 8.3.202; or auto)")


def get(name: str) -> Profile:
    """The profile of a canonical name or alias (not 'auto')."""
    return BY_NAME[resolve_profile(name)]


def enlargement(profile: str, strides: tuple[float, ...] | list[float]) -> tuple[float, float] | None:
    """(sides below this are enlarged, to this size) in px for candidate selection, or None (no enlargement).

    ``strides``: the model's strides in level order. Like ultralytics, the size is strides[1] (strides[0] for a
    one-level model).
    """
    rule = get(profile).enlarge
    if rule is None:
        return None
    if not len(strides):
        raise ValueError(f"profile {profile}: the small-GT enlargement needs the model's strides")
    size = float(strides[1] if len(strides) > 1 else strides[0])
    below = float(strides[0]) if rule == "below-first" else size
    return below, size


def third_term_name(profile: str, reg_max: int = 16, version: str | None = None) -> str:
    """The name ultralytics' trainer logs for the third loss term: ``dfl_loss``, or ``l1_loss`` for the L1 term
    of a reg_max-1 head from 8.4.104 on. ``version`` (the trainer's release) decides inside a profile whose
    range straddles the renaming (v8.4.0); without it, the name at the profile's newest release."""
    p = get(profile)
    if reg_max > 1 or not p.l1_term or p.l1_named_from is None:
        return "dfl_loss"
    v = parse_version(version)
    if v is None:
        v = p.last or NEWEST_KNOWN
    return "l1_loss" if v >= p.l1_named_from else "dfl_loss"


def has_third_term(profile: str, reg_max: int) -> bool:
    """Whether the third loss term is computed at all (always with DFL; with reg_max 1 only as L1 from 8.4.0)."""
    return reg_max > 1 or get(profile).l1_term


def table() -> list[dict]:
    """The profile table as rows (name, releases, differs, aliases) for the README and ``--help``."""
    rows = []
    for p in PROFILES:
        aliases = [a for a, b in ALIASES.items() if b == p.name]
        rows.append({"profile": p.name, "releases": p.releases, "differs": p.differs, "aliases": aliases})
    return rows
