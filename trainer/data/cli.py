"""``edgeinspect data``: synthesize, inspect and split MVTec-AD-layout datasets."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from edge.errors import DataError
from trainer.data.split import DEFECTS_PER_TYPE, K_FOLDS, VAL_FRACTION


def _table(headers, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*map(str, r)) for r in rows]
    return "\n".join(lines)


@click.group()
def data():
    """Synthesize, inspect and split datasets (MVTec AD layout).

    \b
    A dataset folder holds train/good/*.png, test/good/*, test/<defect type>/* and
    optionally ground_truth/<defect type>/<name>_mask.png.
    """


@data.command()
@click.option("--kind", type=click.Choice(["hazelnut", "casting"]), default="hazelnut", show_default=True,
              help="Part to draw: hazelnut (crack, cut, hole, print) or casting (blowhole, burr, scratch).")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True,
              help="Folder to write the dataset into (created; existing files with the same names are replaced).")
@click.option("--size", type=click.IntRange(32, 2048), default=256, show_default=True,
              help="Image width and height in pixels.")
@click.option("--n-train", type=click.IntRange(0), default=391, show_default=True,
              help="Good images in train/good (MVTec hazelnut has 391).")
@click.option("--n-test-good", type=click.IntRange(0), default=40, show_default=True,
              help="Good images in test/good.")
@click.option("--n-per-defect", type=click.IntRange(0), default=17, show_default=True,
              help="Images per defect type in test/<type> (each with a mask in ground_truth/).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Random seed; the same seed writes byte-identical files.")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Processes drawing images in parallel (default: up to 4, one per CPU core). Output does not depend on it.")
def synth(kind, out, size, n_train, n_test_good, n_per_defect, seed, workers):
    """Write a synthetic inspection dataset with pixel-exact defect masks."""
    from trainer.data.synth import DEFECTS, default_workers, generate

    t0 = time.perf_counter()
    root = generate(out, kind=kind, size=size, n_train=n_train, n_test_good=n_test_good, n_per_defect=n_per_defect,
                    seed=seed, progress=True, workers=workers or default_workers())
    n = n_train + n_test_good + n_per_defect * len(DEFECTS[kind])
    click.echo(f"wrote {n} {kind} images ({size}x{size}, seed {seed}) to {root} in {time.perf_counter() - t0:.1f} s")
    click.echo(f"next: edgeinspect data split {root} --protocol supervised --defects-per-type "
               f"{min(10, max(n_per_defect - 1, 0))}")


@data.command()
@click.argument("root", type=click.Path())
@click.option("--protocol", type=click.Choice(["good-only", "supervised", "kfold"]), default="supervised",
              show_default=True,
              help="good-only: train on good parts only (anomaly mode). supervised: move a few defective test "
                   "images into train (classifier). kfold: K stratified folds over test/* for small sets.")
@click.option("--defects-per-type", type=click.IntRange(0), default=DEFECTS_PER_TYPE, show_default=True,
              help="supervised: defective images of EACH type moved from test into train.")
@click.option("--defects-total", type=click.IntRange(1), default=None,
              help="supervised: instead of --defects-per-type, move this many defective images in all, "
                   "dealt round-robin over the types.")
@click.option("--val-fraction", type=click.FloatRange(0, 1, max_open=True), default=VAL_FRACTION, show_default=True,
              help="Fraction of train held out (stratified by type) to choose the decision threshold.")
@click.option("--k", "k", type=click.IntRange(2), default=K_FOLDS, show_default=True, help="kfold: number of folds.")
@click.option("--fold", type=click.IntRange(0), default=0, show_default=True,
              help="kfold: which fold (0..K-1) is the test split.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed; the same seed gives the same split.")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None,
              help="Manifest file to write [default: ROOT/split_<protocol>.json].")
@click.option("--skip-bad", is_flag=True,
              help="Leave out unreadable images (listed by name) instead of stopping at the first one.")
def split(root, protocol, defects_per_type, defects_total, val_fraction, k, fold, seed, out, skip_bad):
    """Write a seeded, stratified train/val/test split manifest for ROOT."""
    from trainer.data.dataset import find_bad, scan
    from trainer.data.split import count_table, make_split
    from trainer.data.run_contract import save_manifest

    ds = scan(root)
    click.echo(f"checking {len(ds.items)} images under {root} ...", err=True)
    bad = find_bad([it.path for it in ds.items])
    if bad and not skip_bad:
        raise DataError(f"{bad[0][1]}; {len(bad)} unreadable image(s) in all: fix or remove them, or pass --skip-bad "
                        f"to leave them out of the split")
    for _, msg in bad:
        click.echo(f"warning: skipping bad image {msg}", err=True)
    manifest = make_split(root, protocol, seed=seed, val_fraction=val_fraction, defects_per_type=defects_per_type,
                          defects_total=defects_total, k=k, fold=fold, exclude=[p for p, _ in bad], dataset=ds)
    out = Path(out) if out else Path(root) / f"split_{protocol}{f'_fold{fold}' if protocol == 'kfold' else ''}.json"
    save_manifest(manifest, out)
    rows = count_table(manifest)
    classes = manifest["classes"]
    by = {(s, c): n for s, c, n in rows}
    table_rows = [[s] + [by[(s, c)] for c in classes] + [sum(by[(s, c)] for c in classes)] for s in ("train", "val", "test")]
    table_rows.append(["total"] + [sum(by[(s, c)] for s in ("train", "val", "test")) for c in classes]
                      + [len(manifest["files"])])
    click.echo(_table(["split"] + classes + ["total"], table_rows))
    if bad:
        click.echo(f"left out {len(bad)} unreadable image(s)")
    click.echo(f"wrote {out} (protocol {protocol}, seed {seed}, sha256 {manifest['sha256'][:12]})")


@data.command()
@click.argument("root", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of tables.")
def info(root, as_json):
    """Class counts, image sizes and colour modes of the dataset at ROOT."""
    from trainer.data.dataset import scan, summarize

    ds = scan(root, require_test=False)
    s = summarize(ds)
    if as_json:
        click.echo(json.dumps(s, indent=2))
        return
    counts = ds.counts()
    rows = []
    for c in ds.classes:
        tr, te = counts.get(("train", c), 0), counts.get(("test", c), 0)
        masks = sum(1 for it in ds.items if it.defect_type == c and it.mask is not None)
        rows.append([c, tr, te, masks])
    rows.append(["total", sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows)])
    click.echo(f"{root}: {s['images']} images, {len(ds.classes)} classes")
    click.echo(_table(["class", "train", "test", "masks"], rows))
    click.echo("sizes: " + ", ".join(f"{k} ({v})" for k, v in s["sizes"].items()))
    click.echo("modes: " + ", ".join(f"{k} ({v})" for k, v in s["modes"].items()))
    if s["ignored"]:
        click.echo(f"ignored {s['ignored']} hidden or non-image file(s), e.g. {', '.join(s['ignored_examples'][:3])}")
    else:
        click.echo("ignored 0 files")
    for line in s["unreadable_headers"]:
        click.echo(f"warning: unreadable {line}", err=True)
    if not (Path(root) / "test").is_dir():
        click.echo("note: no test/ folder; 'data split' needs one")
