"""Terminal summary of `yolotal scan`: reads the report dict only."""

from __future__ import annotations

from rich import box as rbox
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .fmt import fit, num

FLAG_TEXT = {
    "starved_classic": ("no candidate (classic)", "no anchor centre inside the box: never a positive under 8.0-8.3"),
    "starved_ultralytics": ("no candidate (ultralytics)", "not even after 8.4's enlargement to stride_val"),
    "tiny": ("tiny", "a side shorter than the smallest stride"),
    "clamped": ("DFL clamped", "farther than (reg_max - 1.01) strides from a side at every level it reaches"),
    "no_positives_simulated": ("no positives (simulated)", "the full assignment with partly-trained heads gives none"),
    "sparse_polygon": ("sparse polygon", "the polygon covers under 25% of its box (mostly background in the box)"),
    "mask_under_1px": ("mask < 1 px", "polygon area under one pixel of the imgsz / 4 GT mask: likely an empty mask"),
    "no_visible_keypoints": ("no visible keypoint", "every keypoint unlabelled (v = 0): no keypoint loss; YOLO26's "
                             "assigner uses the box CIoU for it"),
    "dropped_under_2px": ("dropped (< 2 px)", "a side of the rotated box under 2 px: the OBB trainer drops it"),
}
OBB_FLAG_TEXT = {  # the same flags of rotated GTs (scan --task obb)
    "starved_classic": ("no candidate (classic)", "no anchor centre inside the rotated box"),
    "starved_ultralytics": ("no candidate (ultralytics)", "not even after raising sides to stride_val (rotated test)"),
    "tiny": ("tiny", "the rotated box's shorter side under the smallest stride"),
    "clamped": ("DFL clamped", "a side farther than reg_max - 1.01 strides (along the box axes) at every level"),
}


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.2f}%" if total else "—"


def _bar(n: int, top: int, width: int = 30) -> str:
    return "█" * max(1 if n else 0, round(width * n / top)) if top else ""


def render_scan(doc: dict, con: Console, errors_shown: int = 10) -> None:
    f, g, s = doc["files"], doc["gts"], doc["settings"]
    splits = ", ".join(f"{k} {v}" for k, v in f["splits"].items())
    con.print(Text(f"{doc['dataset']}: {f['total']} label files ({splits}) · {g} GTs · "
                   f"{f['background']} background · {f['corrupt']} corrupt (skipped, as ultralytics does) · "
                   f"{f['duplicate_rows_dropped']} duplicate rows dropped", style="bold"))
    for combo, n in f.get("shared_by", {}).items():
        con.print(Text(f"{n} label files are in {' and '.join(combo.split('+'))} alike: each is read and counted once",
                       style="dim"))
    if f.get("refused"):
        con.print(Text(f"{f['refused']} files refused by yolotal although ultralytics trains on them (a polygon of "
                       "fewer than 3 points, an infinite pose value, a box row in a segment/OBB task): listed below",
                       style="yellow"))
    for note in doc.get("notes", []):
        con.print(Text(note, style="dim"))
    con.print(Text(f"imgsz {s['imgsz'][0]}×{s['imgsz'][1]} · strides {s['strides']} · reg_max {s['reg_max']}",
                   style="dim"))
    geo = doc.get("geometry", {})
    if geo.get("letterboxed"):
        con.print(Text(f"{geo['letterboxed']} files letterboxed onto the canvas like ultralytics' validation (image "
                       "size read from its header)", style="dim"))
    if geo.get("no_image"):
        con.print(Text(f"{geo['no_image']} files: no image found: labels taken as a {s['imgsz'][1]}×{s['imgsz'][0]} "
                       "image (normalised × imgsz, no letterbox)", style="dim"))

    tab = Table(title="GT fate, from geometry alone", title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c, j in (("flag", "left"), ("GTs", "right"), ("share", "right"), ("meaning", "left")):
        tab.add_column(c, justify=j)
    for k, n in doc["flag_counts"].items():
        name, meaning = (OBB_FLAG_TEXT if "obb" in doc else {}).get(k, FLAG_TEXT[k])
        tab.add_row(Text(name, style="bold red" if n and k != "tiny" else ""), str(n), _pct(n, g), meaning)
    con.print(fit(con, tab))

    if "segment" in doc:
        render_segment(doc["segment"], con)

    sizes = doc["size_histogram_px"]
    top = max(sizes.values(), default=0)
    tab = Table(title="Sizes: sqrt(w·h) in px", title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c, j in (("px", "right"), ("GTs", "right"), ("share", "right"), ("", "left")):
        tab.add_column(c, justify=j)
    for k, n in sizes.items():
        tab.add_row(k, str(n), _pct(n, g), _bar(n, top))
    con.print(fit(con, tab))

    classes = sorted(doc["class_counts"].items(), key=lambda kv: -kv[1])
    tab = Table(title=f"Classes ({len(classes)} used; the 15 most frequent)", title_justify="left",
                box=rbox.SIMPLE_HEAD, pad_edge=False)
    for c, j in (("class", "left"), ("GTs", "right"), ("share", "right"), ("", "left")):
        tab.add_column(c, justify=j)
    top = classes[0][1] if classes else 0
    for name, n in classes[:15]:
        tab.add_row(name, str(n), _pct(n, g), _bar(n, top))
    con.print(fit(con, tab))

    tab = Table(title="Per level", title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
    tab.add_column("stride", justify="right")
    tab.add_column("candidates classic", justify="right")
    tab.add_column("candidates ultralytics", justify="right")
    sim = doc.get("positives_per_level_simulated")
    if sim is not None:
        tab.add_column("positives (simulated)", justify="right")
        tab.add_column("share", justify="right")
    for i, st in enumerate(s["strides"]):
        row = [str(st), str(doc["candidates_per_level"]["classic"][i]), str(doc["candidates_per_level"]["ultralytics"][i])]
        if sim is not None:
            row += [str(sim[i]), _pct(sim[i], sum(sim))]
        tab.add_row(*row)
    con.print(fit(con, tab))

    if "obb" in doc:
        _obb_tables(doc, con)
    kp = doc.get("keypoints")
    if kp is not None:
        tab = Table(title=f"Keypoints: {kp['no_visible']} of {kp['gts']} GTs without a visible keypoint "
                          f"({_pct(kp['no_visible'], kp['gts'])}); {kp['visible_mean']:g} visible per GT on average",
                    title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
        for c, j in (("class / size px", "left"), ("no visible", "right"), ("GTs", "right"), ("share", "right")):
            tab.add_column(c, justify=j)
        for name, (n, tot) in sorted(kp["by_class"].items(), key=lambda kv: -kv[1][0])[:15]:
            tab.add_row(f"class {name}", str(n), str(tot), _pct(n, tot))
        for b, (n, tot) in kp["by_size"].items():
            tab.add_row(f"size {b}", str(n), str(tot), _pct(n, tot))
        con.print(fit(con, tab))

    if doc["worst_files"]:
        tab = Table(title="Worst files (flagged GTs + label errors)", title_justify="left", box=rbox.SIMPLE_HEAD,
                    pad_edge=False)
        for c, j in (("file", "left"), ("flagged GTs", "right"), ("errors", "right")):
            tab.add_column(c, justify=j, overflow="fold")
        for w in doc["worst_files"][:10]:
            tab.add_row(w["file"], str(w["flagged_gts"]), str(w["errors"]))
        con.print(fit(con, tab))

    serious = [x for x in doc["flagged"] if set(x["flags"]) - {"tiny"}]
    tiny_only = [x for x in doc["flagged"] if set(x["flags"]) == {"tiny"}]
    for group, what in ((serious, "GTs flagged beyond 'tiny'"), (tiny_only, "GTs flagged 'tiny' only")):
        if not group:
            continue
        shown = min(10 if group is serious else 5, len(group))
        con.print(Text(f"{len(group)} {what}; the first {shown}:", style="bold"))
        for x in group[:shown]:
            box = ",".join(num(v, 0) for v in x["box_px"])
            names = ", ".join(FLAG_TEXT[k][0] for k in x["flags"])
            if "rbox_px" in x:  # rotated: centre, sides, angle
                cx, cy, rw, rh, deg = x["rbox_px"]
                box = f"{num(cx)},{num(cy)} {num(rw)}×{num(rh)} {deg:.1f}°"
            con.print(f"  {x['file']}:{x['line']}: class {x['cls']} {'rbox' if 'rbox_px' in x else 'box'} ({box}) "
                      f"px: {names}", soft_wrap=True, markup=False)
    errs = doc["errors"]
    if errs:
        which = f"{f['corrupt']} corrupt" + (f" and {f['refused']} refused" if f.get("refused") else "")
        why = ("a file with a bad line is skipped whole by ultralytics' verify_image_label, so none of its GTs are "
               "trained on or audited here")
        if f.get("refused"):
            why += "; a refused file is skipped here only: the trainer trains on it"
        con.print(Text(f"{len(errs)} label errors in {which} files ({why}):", style="bold red"))
        for e in errs[:errors_shown]:
            con.print(f"  {e['file']}:{e['line']}: {e['reason']}", soft_wrap=True, markup=False)
        if len(errs) > errors_shown:
            con.print(Text(f"  … and {len(errs) - errors_shown} more (all in --report)", style="dim"))
    else:
        con.print(Text("no label errors", style="green"))
    dups = doc.get("duplicates", [])
    if dups:
        con.print(Text(f"{f['duplicate_rows_dropped']} duplicate rows dropped in {len(dups)} files (ultralytics drops "
                       "them too):", style="yellow"))
        for d in dups[:errors_shown]:
            con.print(f"  {d['file']}: line(s) {', '.join(map(str, d['lines']))}", soft_wrap=True, markup=False)


def render_segment(seg: dict, con: Console) -> None:
    """Polygon area vs box (fill), per class and per size."""
    a = seg["all"]
    con.print(Text(f"polygons: fill = {seg['fill']}; mean {a['mean_fill']}, median {a['median_fill']}; median GT mask "
                   f"area {a['median_mask_px']} px at imgsz / {seg['mask_ratio']}", style="dim"))
    for title, part in (("Polygon fill by class", seg["by_class"]), ("Polygon fill by size: sqrt(box w·h) in px",
                                                                      seg["by_size"])):
        tab = Table(title=title, title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
        for c, j in (("", "left"), ("GTs", "right"), ("mean fill", "right"), ("median", "right"),
                     ("sparse", "right"), ("mask < 1 px", "right"), ("median mask px", "right")):
            tab.add_column(c, justify=j)
        for k, v in list(part.items())[:15]:
            tab.add_row(k, str(v["gts"]), f"{v['mean_fill']:.3f}", f"{v['median_fill']:.3f}", str(v["sparse"]),
                        Text(str(v["mask_under_1px"]), style="bold red" if v["mask_under_1px"] else ""),
                        f"{v['median_mask_px']:g}")
        con.print(fit(con, tab, ("median mask px", "median")))


def _obb_tables(doc: dict, con: Console) -> None:
    """scan --task obb: tiny, starved and dropped rotated GTs per class and per size."""
    cols = (("gts", "GTs"), ("tiny", "tiny"), ("no_candidate_ultralytics", "no cand"),
            ("no_candidate_classic", "no cand classic"), ("dropped_under_2px", "dropped"))
    for key, title, first in (("per_class", "Rotated GTs per class", "class"),
                              ("per_size_px", "Rotated GTs per size: sqrt(w·h) px", "px")):
        tab = Table(title=title, title_justify="left", box=rbox.SIMPLE_HEAD, pad_edge=False)
        tab.add_column(first, justify="left")
        for _, c in cols:
            tab.add_column(c, justify="right")
        for name, v in doc["obb"][key].items():
            tab.add_row(name, *(Text(str(v[k]), style="bold red" if v[k] and k not in ("gts", "tiny") else "")
                                for k, _ in cols))
        con.print(fit(con, tab))
