"""The plots an astronomer makes first of a new deep survey, from a simulated folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from dpzero.errors import InvalidInputError
from dpzero.sim.catalogs import CatalogManifest

__all__ = ["make_survey_plots"]


def make_survey_plots(survey: Path, out: Path) -> list[Path]:
    """Write number counts, colour–magnitude, colour–colour, sky density, error and
    completeness plots of a simulated survey as PNG files.

    Raises
    ------
    InvalidInputError
        If ``survey`` is not a simulated survey folder.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    manifest = CatalogManifest.read(survey)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create {out}: {exc.strerror}") from None
    obj = pq.read_table(
        survey / "object",
        columns=["ra", "dec", "mag_g", "mag_r", "mag_i", "magerr_i", "mag_i_cModel",
                 "mag_g_cModel", "mag_r_cModel", "extendedness", "clean"],
    ).to_pandas()  # fmt: skip
    tm = pq.read_table(
        survey / "truth_match",
        columns=["truth_type", "flux_i", "match_objectId", "is_unique_truth_entry"],
    ).to_pandas()
    tm = tm[tm.is_unique_truth_entry]
    area = manifest.area_deg2
    title = f"dpzero {manifest.size} survey, seed {manifest.seed}, {area:.2f} deg²"
    written = []

    def save(fig: object, name: str) -> None:
        path = out / name
        fig.savefig(path, dpi=110, bbox_inches="tight")  # type: ignore[attr-defined]
        plt.close(fig)  # type: ignore[arg-type]
        written.append(path)

    # Number counts: truth and detected objects.
    bins = np.arange(16.0, 28.51, 0.5)
    centres = bins[:-1] + 0.25
    fig, ax = plt.subplots(figsize=(6, 4.5))
    truth_mag = 31.4 - 2.5 * np.log10(tm.flux_i.to_numpy())
    for label, sel, style in (
        ("truth galaxies", tm.truth_type == 1, "C0--"),
        ("truth stars", tm.truth_type == 2, "C1--"),
    ):
        counts = np.histogram(truth_mag[sel.to_numpy()], bins)[0] / area / 0.5
        ax.semilogy(centres, np.where(counts > 0, counts, np.nan), style, label=label)
    for label, sel, style in (
        ("objects, extended", obj.extendedness == 1, "C0-"),
        ("objects, point-like", obj.extendedness == 0, "C1-"),
    ):
        counts = np.histogram(obj.mag_i_cModel[sel], bins)[0] / area / 0.5
        ax.semilogy(centres, np.where(counts > 0, counts, np.nan), style, label=label)
    ax.set_xlabel("i (AB mag; objects: cModel)")
    ax.set_ylabel("dN/dm  [deg⁻² mag⁻¹]")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save(fig, "number_counts.png")

    # Colour–magnitude and colour–colour diagrams.
    clean = obj[obj.clean & (obj.mag_i < 26.5)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for kind, colour, label in ((1, "C0", "extended"), (0, "C3", "point-like")):
        sel = clean[clean.extendedness == kind]
        axes[0].scatter(sel.mag_g_cModel - sel.mag_r_cModel, sel.mag_r_cModel, s=1, c=colour,
                        alpha=0.3, label=label)  # fmt: skip
        bright = sel[sel.mag_i < 23]
        axes[1].scatter(bright.mag_g - bright.mag_r, bright.mag_r - bright.mag_i, s=2, c=colour,
                        alpha=0.4, label=label)  # fmt: skip
    axes[0].set_xlim(-0.5, 2.2)
    axes[0].set_ylim(27, 16)
    axes[0].set_xlabel("g − r (cModel)")
    axes[0].set_ylabel("r (cModel)")
    axes[0].set_title("colour–magnitude, clean objects", fontsize=9)
    axes[1].set_xlim(-0.3, 2.0)
    axes[1].set_ylim(-0.3, 2.0)
    axes[1].set_xlabel("g − r (PSF)")
    axes[1].set_ylabel("r − i (PSF)")
    axes[1].set_title("colour–colour, i < 23 (stellar locus in red)", fontsize=9)
    for ax in axes:
        ax.legend(fontsize=8, markerscale=6)
        ax.grid(alpha=0.3)
    save(fig, "colour_magnitude.png")

    # Sky density.
    fig, ax = plt.subplots(figsize=(6, 5))
    ra = obj.ra.to_numpy()
    ra = np.where(ra > 180, ra - 360, ra) if np.ptp(ra) > 180 else ra
    h = ax.hist2d(ra, obj.dec, bins=60, cmap="viridis")
    fig.colorbar(h[3], ax=ax, label="objects per cell")
    ax.invert_xaxis()
    ax.set_xlabel("RA (deg)")
    ax.set_ylabel("Dec (deg)")
    ax.set_title(f"object density — {title}", fontsize=9)
    save(fig, "sky_density.png")

    # Photometric errors and completeness.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    axes[0].scatter(obj.mag_i, obj.magerr_i, s=1, alpha=0.2)
    m = np.linspace(18, 27.5, 100)
    x = 10 ** (0.4 * (m - 26.2))
    axes[0].plot(m, np.sqrt((0.04 - 0.039) * x + 0.039 * x**2 + 0.005**2), "r-",
                 label="Ivezić et al. 2019, coadd i m5 = 26.2")  # fmt: skip
    axes[0].set_yscale("log")
    axes[0].set_xlim(18, 28)
    axes[0].set_ylim(1e-3, 2)
    axes[0].set_xlabel("i (PSF)")
    axes[0].set_ylabel("σ(i)")
    axes[0].legend(fontsize=8)
    found = tm.match_objectId.to_numpy() != -1
    cbins = np.arange(20, 28.01, 0.25)
    for kind, label in ((1, "galaxies"), (2, "stars")):
        sel = (tm.truth_type == kind).to_numpy()
        total = np.histogram(truth_mag[sel], cbins)[0]
        hit = np.histogram(truth_mag[sel & found], cbins)[0]
        axes[1].plot(cbins[:-1] + 0.125, hit / np.maximum(total, 1), label=label)
    axes[1].axvline(26.2, color="grey", ls=":", label="i m5 (5σ point source)")
    axes[1].set_xlabel("true i")
    axes[1].set_ylabel("fraction detected")
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    save(fig, "errors_completeness.png")
    return written
