"""Which torch module is which paddle layer, found from one forward pass of each: the table of
type pairs with their naming and layout rules (the one place they are written), the pairing of
calls by call order, type and shape, and the mapping file a user can edit (--write-mapping,
--mapping). Framework-free: it reads what the probes (lenet_<framework>/diff.py) recorded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lenet_spec.probe import Call, Unit

SAME, TRANSPOSE = "same", "transpose"  # a parameter's layout rule: paddle's value is torch's, or its transpose


@dataclass(frozen=True)
class TypePair:
    """A torch type, its paddle counterpart, and how the parameters of one become the other's."""

    torch: str
    paddle: str
    renamed: tuple[tuple[str, str], ...] = ()  # (torch local name, paddle local name) where they differ
    transposed: tuple[str, ...] = ()  # torch local names whose paddle value is the transpose


def _table() -> dict[tuple[str, str], TypePair]:
    pairs = [
        TypePair("Linear", "Linear", transposed=("weight",)),  # paddle's weight is (in, out)
        TypePair("Embedding", "Embedding"),  # not transposed: (num, dim) on both sides
        TypePair("PReLU", "PReLU", renamed=(("weight", "_weight"),)),
        TypePair("LayerNorm", "LayerNorm"),
        TypePair("GroupNorm", "GroupNorm"),
        TypePair("SiLU", "Silu"),
        TypePair("SiLU", "SiLU"),
        TypePair("BatchNorm2d", "BatchNorm"),  # paddle's older BatchNorm, 4-D inputs
    ]
    stats = (("running_mean", "_mean"), ("running_var", "_variance"))
    for d in "123":
        pairs += [
            TypePair(f"Conv{d}d", f"Conv{d}D"),
            TypePair(f"ConvTranspose{d}d", f"Conv{d}DTranspose"),  # (in, out / groups, *kernel) on both sides
            TypePair(f"BatchNorm{d}d", f"BatchNorm{d}D", renamed=stats),
            TypePair(f"InstanceNorm{d}d", f"InstanceNorm{d}D", renamed=(("weight", "scale"),)),
        ]
        pairs += [TypePair(f"{kind}{d}d", f"{kind}{d}D") for kind in ("MaxPool", "AvgPool", "AdaptiveAvgPool", "AdaptiveMaxPool", "Dropout", "ZeroPad")]
    pairs.append(TypePair("SyncBatchNorm", "SyncBatchNorm", renamed=stats))
    return {(p.torch, p.paddle): p for p in pairs}


TYPES = _table()
# Types with the same name on both sides and no parameters to rename (activations, Flatten,
# Dropout, Identity, Softmax, ...) pair without an entry; so do paddle's torch-spelled aliases.


def type_pair(torch_type: str, paddle_type: str) -> TypePair | None:
    """The rule for a torch type against a paddle type, None when they are not counterparts. A
    pair outside the table counts when the names agree but for case (Conv2d/Conv2D: paddle's
    aliases, and a user's own module ported under its own name)."""
    if (torch_type, paddle_type) in TYPES:
        return TYPES[(torch_type, paddle_type)]
    if torch_type.lower() == paddle_type.lower():
        known = next((p for (t, _), p in TYPES.items() if t == torch_type), None)  # paddle's alias of a known type: its rules
        return known or TypePair(torch_type, paddle_type)
    return None


@dataclass
class ParamPair:
    torch: str  # full name in the torch model's state dict
    paddle: str
    layout: str  # SAME or TRANSPOSE
    buffer: bool = False  # running statistics: compared after steps, not trained


@dataclass
class UnitPair:
    torch: int  # index into the torch probe's units
    paddle: int
    params: list[ParamPair]
    types_differ: bool = False  # parameterless units of other types paired by position (a wrong pool, say)


def param_pairs(t: Unit, p: Unit, rule: TypePair | None) -> list[ParamPair] | None:
    """How `t`'s parameters and buffers become `p`'s, or None when they cannot. Known types follow
    their rule's names; other modules (a user's own, owning parameters) pair theirs by
    registration order and shape."""
    out = []
    for kind, ts, ps in (("params", t.params, p.params), ("buffers", t.buffers, p.buffers)):
        if len(ts) != len(ps):
            return None
        renamed = dict(rule.renamed) if rule else {}
        by_name = dict(ps)
        for i, (tn, tshape) in enumerate(ts):
            pn = renamed.get(tn, tn) if rule else ps[i][0]
            if pn not in by_name:
                pn = ps[i][0]  # a user's module: the same registration order
            layout = TRANSPOSE if rule and tn in rule.transposed and len(tshape) == 2 else SAME
            custom = rule is None or (rule.torch, rule.paddle) not in TYPES
            if custom and len(tshape) == 2 and tshape[0] != tshape[1] and tuple(by_name[pn]) == tuple(tshape[::-1]):
                layout = TRANSPOSE  # a user's own dense layer, kept (in, out) in paddle as paddle's Linear keeps it
            want = tshape[::-1] if layout == TRANSPOSE else tshape
            if tuple(by_name[pn]) != tuple(want):
                return None
            out.append(ParamPair(_full(t.name, tn), _full(p.name, pn), layout, kind == "buffers"))
    return out


def _full(unit: str, local: str) -> str:
    return f"{unit}.{local}" if unit else local


@dataclass
class Correspondence:
    """The torch and paddle units that are counterparts, and what has none."""

    units: list[UnitPair]
    calls: list[tuple[int, int]]  # (torch call index, paddle call index), in call order
    torch_alone: list[int] = field(default_factory=list)  # torch calls with no counterpart
    paddle_alone: list[int] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)  # one line each: a unit paired with two
    uncopied: list[str] = field(default_factory=list)  # target parameters no source parameter reaches

    def param_pairs(self) -> list[ParamPair]:
        return [pp for up in self.units for pp in up.params]


def _score(t: Unit, p: Unit, tc: Call, pc: Call, allowed) -> tuple[float, UnitPair | None]:
    if tc.out_shape is not None and pc.out_shape is not None and tc.out_shape != pc.out_shape:
        return -1.0, None
    if allowed is not None:
        return (4.0, None) if allowed(t, p) else (-1.0, None)
    rule = type_pair(t.type, p.type)
    if rule is not None:
        pp = param_pairs(t, p, rule)
        if pp is not None:
            return 4.0 + 0.1 * (t.name.rsplit(".", 1)[-1] == p.name.rsplit(".", 1)[-1]), None  # names only break ties
        return -1.0, None
    if not (t.params or t.buffers or p.params or p.buffers) and tc.in_shapes == pc.in_shapes:
        return 1.0, None  # parameterless, other types, same shapes: paired, and shown as types that differ
    if t.type not in {k[0] for k in TYPES} and p.type not in {k[1] for k in TYPES} and param_pairs(t, p, None) is not None:
        return 3.0, None  # a user's module under another name, its parameters fitting by order and shape
    return -1.0, None


def correspond(tu: list[Unit], tcalls: list[Call], pu: list[Unit], pcalls: list[Call], mapping: dict[str, str] | None = None) -> Correspondence:
    """Pair the two call sequences (a global alignment: the most pairs of counterparts, in call
    order; a gap is a call with no counterpart), then the units behind the pairs.

    Args:
        mapping: torch unit name -> paddle unit name (an edited mapping file): only these pair.
    """
    allowed = None
    if mapping is not None:
        allowed = lambda t, p: mapping.get(t.name) == p.name  # noqa: E731
    n, m = len(tcalls), len(pcalls)
    score = [[0.0] * (m + 1) for _ in range(n + 1)]
    move = [[0] * (m + 1) for _ in range(n + 1)]  # 1: pair, 2: torch alone, 3: paddle alone
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 and j == 0:
                continue
            best, how = -1e18, 0
            if i and j:
                s, _ = _score(tu[tcalls[i - 1].unit], pu[pcalls[j - 1].unit], tcalls[i - 1], pcalls[j - 1], allowed)
                if s > 0 and score[i - 1][j - 1] + s > best:
                    best, how = score[i - 1][j - 1] + s, 1
            if i and score[i - 1][j] > best:
                best, how = score[i - 1][j], 2
            if j and score[i][j - 1] > best:
                best, how = score[i][j - 1], 3
            score[i][j], move[i][j] = best, how
    pairs, t_alone, p_alone = [], [], []
    i, j = n, m
    while i or j:
        how = move[i][j]
        if how == 1:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif how == 2:
            t_alone.append(i - 1)
            i -= 1
        else:
            p_alone.append(j - 1)
            j -= 1
    pairs.reverse()
    return _units(tu, tcalls, pu, pcalls, pairs, sorted(t_alone), sorted(p_alone), mapping)


def _units(tu, tcalls, pu, pcalls, pairs, t_alone, p_alone, mapping) -> Correspondence:
    partner: dict[int, set[int]] = {}
    back: dict[int, set[int]] = {}
    for ti, pi in pairs:
        a, b = tcalls[ti].unit, pcalls[pi].unit
        partner.setdefault(a, set()).add(b)
        back.setdefault(b, set()).add(a)
    result = Correspondence([], pairs, t_alone, p_alone)
    for a in sorted(partner):
        if len(partner[a]) > 1:
            result.ambiguous.append(f"torch {tu[a].name or '(model)'} ({tu[a].type}) pairs with paddle {', '.join(pu[b].name for b in sorted(partner[a]))}")
            continue
        b = next(iter(partner[a]))
        if len(back[b]) > 1:
            continue  # said once, from paddle's side below
        t, p = tu[a], pu[b]
        rule = type_pair(t.type, p.type)
        params = param_pairs(t, p, rule)
        result.units.append(UnitPair(a, b, params or [], types_differ=rule is None and not (t.params or p.params)))
    for b in sorted(back):
        if len(back[b]) > 1:
            result.ambiguous.append(f"paddle {pu[b].name or '(model)'} ({pu[b].type}) pairs with torch {', '.join(tu[a].name for a in sorted(back[b]))}")
    # units defined but never called: paired by definition order, type and shape, so their weights still copy
    called_t, called_p = {c.unit for c in tcalls}, {c.unit for c in pcalls}
    idle_t = [i for i, u in enumerate(tu) if i not in called_t and (u.params or u.buffers)]
    idle_p = [i for i, u in enumerate(pu) if i not in called_p and (u.params or u.buffers)]
    for a in idle_t:
        b = next(
            (b for b in idle_p if (mapping is None or mapping.get(tu[a].name) == pu[b].name) and param_pairs(tu[a], pu[b], type_pair(tu[a].type, pu[b].type))),
            None,
        )
        if b is not None:
            idle_p.remove(b)
            result.units.append(UnitPair(a, b, param_pairs(tu[a], pu[b], type_pair(tu[a].type, pu[b].type))))
    reached_t = {pp.torch for up in result.units for pp in up.params}
    reached_p = {pp.paddle for up in result.units for pp in up.params}
    result.uncopied = [f"paddle {n}" for u in pu for n in u.state_names if n not in reached_p]
    result.uncopied += [f"torch {n}" for u in tu for n in u.state_names if n not in reached_t]
    return result


# --- the mapping file (--write-mapping, --mapping) ---
MAPPING_FORMAT = "parity.diff mapping"
MAX_MAPPING_BYTES = 4 << 20


class MappingError(ValueError):
    """An edited mapping file that cannot apply: one line naming the entry and the fix."""


def mapping_rows(tu: list[Unit], pu: list[Unit], corr: Correspondence) -> list[dict]:
    """The correspondence as rows: each unit pair with its types and every parameter's rule."""
    rows = []
    for up in corr.units:
        t, p = tu[up.torch], pu[up.paddle]
        rows.append(
            {
                "torch": t.name,
                "torch_type": t.type,
                "paddle": p.name,
                "paddle_type": p.type,
                **({"types_differ": True} if up.types_differ else {}),
                "params": [{"torch": pp.torch, "paddle": pp.paddle, "layout": pp.layout, **({"buffer": True} if pp.buffer else {})} for pp in up.params],
            }
        )
    return rows


def write_mapping(path: str | os.PathLike, rows: list[dict], unmatched: dict) -> None:
    """The mapping as an editable JSON file (written whole, then renamed into place)."""
    from lenet_spec.checkpoint import atomic_write

    text = json.dumps({"format": MAPPING_FORMAT, "units": rows, "unmatched": unmatched}, indent=1, ensure_ascii=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def read_mapping(path: str | os.PathLike, tu: list[Unit], pu: list[Unit]) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """An edited mapping file, checked against the two models.

    Returns:
        torch unit -> paddle unit, and torch parameter -> (paddle parameter, layout).
    Raises:
        MappingError: one line naming the file, the entry and the fix.
    """
    p = Path(path)
    try:
        if p.stat().st_size > MAX_MAPPING_BYTES:
            raise MappingError(f"{path}: {p.stat().st_size:,} bytes; a mapping file is a few KiB (at most {MAX_MAPPING_BYTES >> 20} MiB read)")
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MappingError(f"{path}: not a readable mapping file ({' '.join(str(e).split())[:120]}); write one with --write-mapping") from None
    if not isinstance(doc, dict) or doc.get("format") != MAPPING_FORMAT or not isinstance(doc.get("units"), list):
        raise MappingError(f'{path}: not a parity.diff mapping file (no "format": {MAPPING_FORMAT!r} and "units" list); write one with --write-mapping')
    t_by, p_by = {u.name: u for u in tu}, {u.name: u for u in pu}
    t_state = {n: s for u in tu for n, s in zip(u.state_names, [s for _, s in u.params + u.buffers])}
    p_state = {n: s for u in pu for n, s in zip(u.state_names, [s for _, s in u.params + u.buffers])}
    units, params = {}, {}
    for k, row in enumerate(doc["units"]):
        where = f"{path}: units[{k}]"
        if not isinstance(row, dict) or not isinstance(row.get("torch"), str) or not isinstance(row.get("paddle"), str):
            raise MappingError(f'{where}: needs "torch" and "paddle" unit names')
        if row["torch"] not in t_by:
            raise MappingError(f"{where}: the torch model has no unit {row['torch']!r}")
        if row["paddle"] not in p_by:
            raise MappingError(f"{where}: the paddle model has no unit {row['paddle']!r}")
        units[row["torch"]] = row["paddle"]
        for q, pp in enumerate(row.get("params") or []):
            if not isinstance(pp, dict) or pp.get("layout") not in (SAME, TRANSPOSE) or pp.get("torch") not in t_state or pp.get("paddle") not in p_state:
                raise MappingError(f'{where}.params[{q}]: needs a torch and a paddle parameter of these units and "layout": "same" or "transpose"')
            want = tuple(t_state[pp["torch"]])[::-1] if pp["layout"] == TRANSPOSE else tuple(t_state[pp["torch"]])
            if want != tuple(p_state[pp["paddle"]]):
                raise MappingError(
                    f"{where}.params[{q}]: torch {pp['torch']} {t_state[pp['torch']]} with layout {pp['layout']} "
                    f"is not paddle {pp['paddle']}'s {p_state[pp['paddle']]}"
                )
            params[pp["torch"]] = (pp["paddle"], pp["layout"])
    return units, params


def apply_params(corr: Correspondence, params: dict[str, tuple[str, str]]) -> None:
    """An edited mapping's parameter rules in place of the found ones."""
    for up in corr.units:
        for pp in up.params:
            if pp.torch in params:
                pp.paddle, pp.layout = params[pp.torch]
