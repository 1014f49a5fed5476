"""Figures for the report. The only module that imports matplotlib; it draws what it is given and
never fits or summarises. Every function returns a ``matplotlib.figure.Figure``.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, never a screen
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

PAPER, MLE = "black", "0.45"
MODEL_COLOURS = ("C0", "C1", "C2", "C3", "C4", "C5")


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _panels(count: int, width: float = 2.6, height: float = 1.9) -> tuple[Figure, np.ndarray]:
    """A grid of up to four panels per row for ``count`` small plots."""
    cols = min(count, 4)
    rows = int(np.ceil(count / cols))
    fig = _figure(width * cols, height * rows + 0.5)
    return fig, np.atleast_1d(fig.subplots(rows, cols)).ravel()


def _finish(fig: Figure, axes: np.ndarray, used: int, title: str, fontsize: float = 7) -> Figure:
    """Hide the unused panels, shrink the labels, title the figure."""
    for ax in axes[used:]:
        ax.set_visible(False)
    for ax in axes[:used]:
        ax.title.set_fontsize(fontsize)
        ax.tick_params(labelsize=fontsize - 1)
    fig.suptitle(title, fontsize=10)
    return fig


def coefficient_forest(tables: dict[str, pd.DataFrame]) -> Figure:
    """Per term: the paper's 95% CI, the MLE's 95% CI and each model's 94% HDI (log-odds)."""
    terms = list(dict.fromkeys(t for frame in tables.values() for t in frame["term"]))
    rows = len(tables) + 2
    fig = _figure(8, 0.5 + 0.32 * rows * len(terms))
    ax = fig.add_subplot()
    first = next(iter(tables.values())).set_index("term")
    y = 0.0
    ticks, labels = [], []
    for term in terms:
        base = y
        if term in first.index and np.isfinite(first.loc[term, "paper_b"]):
            r = first.loc[term]
            ax.errorbar(r.paper_b, y, xerr=[[r.paper_b - r.paper_ci_low], [r.paper_ci_high - r.paper_b]], fmt="s",
                        color=PAPER, capsize=3, label="paper 95% CI" if term == terms[0] else None)
        y += 1
        if term in first.index and np.isfinite(first.loc[term, "mle_b"]):
            r = first.loc[term]
            ax.errorbar(r.mle_b, y, xerr=[[r.mle_b - r.mle_ci_low], [r.mle_ci_high - r.mle_b]], fmt="D", color=MLE,
                        mfc="white", capsize=3, label="MLE refit 95% CI" if term == terms[0] else None)
        y += 1
        for colour, (name, frame) in zip(MODEL_COLOURS, tables.items()):
            frame = frame.set_index("term")
            if term in frame.index:
                r = frame.loc[term]
                ax.errorbar(r.post_mean, y, xerr=[[r.post_mean - r.hdi_low], [r.hdi_high - r.post_mean]], fmt="o",
                            color=colour, label=f"{name} 94% HDI" if term == terms[0] else None)
            y += 1
        ticks.append((base + y - 1) / 2)
        labels.append(term)
        ax.axhline(y - 0.5, color="0.9", lw=0.8)
    ax.axvline(0, color="0.6", ls=":", lw=1)
    ax.set_yticks(ticks, labels)
    ax.invert_yaxis()
    ax.set_xlabel("coefficient (log-odds); 0 = no effect")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    return fig


def table5_dots(tables: dict[str, pd.DataFrame], labels: list[str], outcome: str = "internationalized") -> Figure:
    """Table 5's cells (named by their ``labels`` columns): paper value, MLE, and each model's posterior mean and 94% HDI."""
    first = next(iter(tables.values()))
    n = len(first)
    fig = _figure(8, 1 + 0.36 * n)
    ax = fig.add_subplot()
    y = np.arange(n)
    offset = np.linspace(-0.25, 0.25, len(tables)) if len(tables) > 1 else np.zeros(1)
    for k, (colour, (name, frame)) in enumerate(zip(MODEL_COLOURS, tables.items())):
        ax.errorbar(frame["mean"], y + offset[k], xerr=[frame["mean"] - frame["hdi_low"], frame["hdi_high"] - frame["mean"]],
                    fmt="o", ms=4, color=colour, lw=1, label=f"{name}: mean, 94% HDI")
    if first["paper"].notna().any():
        ax.scatter(first["paper"], y, marker="|", s=200, color=PAPER, zorder=5, label="paper (Table 5)")
    ax.scatter(first["mle"], y, marker="D", s=22, facecolor="white", edgecolor=MLE, zorder=5, label="MLE refit")
    ax.axvline(0.5, color="0.6", ls=":", lw=1)
    ax.set_yticks(y, [" / ".join(str(v) for v in row) for row in first[labels].itertuples(index=False)], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"P({outcome}); dotted line = the 0.5 classification cut")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, fontsize=8, frameon=False)
    return fig


def rank_plot(idata, var_names: list[str], title: str) -> Figure:
    """Rank plots per chain: flat, overlapping histograms mean the chains agree."""
    import arviz as az

    names = [v for v in var_names if v in idata.posterior]
    sizes = [int(np.prod([idata.posterior.sizes[d] for d in idata.posterior[v].dims if d not in ("chain", "draw")]))
             for v in names]
    panels = min(sum(sizes), 12)
    fig, axes = _panels(panels)
    az.plot_rank(idata, var_names=names, ax=axes[:panels], kind="bars")
    return _finish(fig, axes, panels, title, fontsize=8)


def calibration_plot(bins: dict[str, pd.DataFrame], outcome: str = "internationalized") -> Figure:
    """Observed share of outcome 1 against the predicted probability, per bin of firms."""
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", lw=1)
    for colour, (name, frame) in zip(MODEL_COLOURS, bins.items()):
        ax.vlines(frame["predicted"], frame["rep_low"], frame["rep_high"], color=colour, alpha=0.35, lw=6)
        ax.plot(frame["predicted"], frame["observed"], "o-", color=colour, ms=5, label=name)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel(f"predicted P({outcome}), bin average")
    ax.set_ylabel(f"observed share {outcome}")
    ax.legend(fontsize=8, frameon=False)
    return fig


def sensitivity_plot(frame: pd.DataFrame, threshold: float) -> Figure:
    """Power-scaling sensitivity: likelihood (x) against prior (y), one dot per quantity and model; the
    dashed lines are the threshold above which a change is noticeable."""
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    for colour, (name, part) in zip(MODEL_COLOURS, frame.groupby("model", sort=False)):
        ax.plot(part["likelihood"], part["prior"], "o", color=colour, ms=4, alpha=0.8, label=name)
    ax.axhline(threshold, color="0.5", ls="--", lw=1)
    ax.axvline(threshold, color="0.5", ls="--", lw=1)
    ax.set_xlabel("sensitivity to the likelihood (the data)")
    ax.set_ylabel("sensitivity to the prior")
    ax.text(0.98, 0.98, "above: the prior moves it", transform=ax.transAxes, ha="right", va="top", fontsize=7)
    ax.legend(fontsize=8, frameon=False, loc="center right")
    return fig


def ensemble_spread(coefficients: pd.DataFrame, cells: pd.DataFrame) -> Figure:
    """Between-reconstruction SD against within-posterior SD, coefficients (dots) and cells (crosses), one colour
    per model (a ``model`` column; one model without it); the diagonal is equal."""
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    models = list(dict.fromkeys(coefficients["model"])) if "model" in coefficients else [None]
    for colour, model in zip(MODEL_COLOURS, models):
        for marker, kind, frame in (("o", "coefficients", coefficients), ("x", "cells", cells)):
            rows = frame if model is None else frame[frame["model"] == model]
            ax.plot(rows["within_sd"], rows["between_sd"], marker, color=colour, ms=4, ls="",
                    label=f"{model}: {kind}" if model else kind)
    top = float(max(coefficients["within_sd"].max(), cells["within_sd"].max()))
    ax.plot([0, top], [0, top], color="0.6", ls=":", lw=1)
    ax.set_xlabel("within-posterior SD")
    ax.set_ylabel("between-reconstruction SD")
    ax.legend(fontsize=7, frameon=False)
    return fig


def claims_plot(claims: pd.DataFrame, support: float) -> Figure:
    """Each claim's posterior probability per model (dots), with its range under prior scaling (bars) and
    across the reconstruction ensemble (grey bars); the dotted line is the support threshold."""
    ids = list(dict.fromkeys(claims["claim"]))
    fig = _figure(8, 0.45 * len(ids) + 1.2)
    ax = fig.add_subplot()
    models = list(dict.fromkeys(claims["model"]))
    for m, (colour, model) in enumerate(zip(MODEL_COLOURS, models)):
        rows = claims[claims["model"] == model].set_index("claim").loc[ids]
        y = np.arange(len(ids)) + (m - (len(models) - 1) / 2) * 0.15
        ax.hlines(y, rows["ensemble_low"], rows["ensemble_high"], color="0.75", lw=5)
        ax.hlines(y, rows["prior_scaled_low"], rows["prior_scaled_high"], color=colour, lw=1.5)
        ax.plot(rows["probability"], y, "o", color=colour, ms=4, label=model)
    ax.axvline(support, color="0.4", ls=":", lw=1)
    ax.set_yticks(np.arange(len(ids)), ids, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("posterior probability that the claim holds")
    ax.legend(fontsize=7, frameon=False, loc="center")
    return fig


def separation_plot(idata, title: str, outcome: str = "internationalized") -> Figure:
    """Firms sorted by predicted probability; dark bars are the firms with outcome 1 (``outcome``, its variable)."""
    import arviz as az

    fig = _figure(8, 1.3)
    ax = fig.add_subplot()
    az.plot_separation(idata, y=outcome, y_hat=outcome, expected_events=True, ax=ax)
    ax.set_title(title, fontsize=9)
    return fig


def item_ppc_plot(items: pd.DataFrame) -> Figure:
    """Each item's observed mean against the 94% interval of its replicated means."""
    fig = _figure(8, 1 + 0.22 * len(items))
    ax = fig.add_subplot()
    centre = items["replicated_mean"]
    scale = (items["rep_high"] - items["rep_low"]).replace(0, np.nan) / 2
    y = np.arange(len(items))
    ax.hlines(y, (items["rep_low"] - centre) / scale, (items["rep_high"] - centre) / scale, color="C0", lw=4, alpha=0.4,
              label="replicated data, 94% interval")
    ax.scatter((items["observed"] - centre) / scale, y, color="black", s=14, zorder=3, label="observed")
    ax.axvline(0, color="0.6", ls=":", lw=1)
    ax.set_yticks(y, items["item"], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("item mean, in half-widths of the replicated interval from its centre")
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    return fig


def loadings_plot(table: pd.DataFrame) -> Figure:
    """Loadings with 94% HDIs: item loadings on their dimension, dimensions on CAPINNO."""
    fig = _figure(7, 1 + 0.22 * len(table))
    ax = fig.add_subplot()
    y = np.arange(len(table))
    colours = np.where(table["parameter"] == "second_order_loading", "C3", "C0")
    ax.hlines(y, table["hdi_low"], table["hdi_high"], colors=colours, lw=2)
    ax.scatter(table["mean"], y, c=colours, s=14, zorder=3)
    labels = [f"{'CAPINNO -> ' if p == 'second_order_loading' else ''}{o}" for p, o in zip(table["parameter"], table["of"])]
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="0.6", ls=":", lw=1)
    ax.set_xlabel("loading (posterior mean and 94% HDI)")
    return fig


def prior_posterior(prior: dict[str, np.ndarray], posterior: dict[str, np.ndarray], title: str) -> Figure:
    """Prior (grey) against posterior (colour) for each named parameter."""
    names = list(posterior)
    fig, axes = _panels(len(names), height=2.0)
    for ax, name in zip(axes, names):
        post = posterior[name]
        lo, hi = np.quantile(post, [0.001, 0.999])
        if name in prior:
            plo, phi = np.quantile(prior[name], [0.01, 0.99])
            lo, hi = min(lo, plo), max(hi, phi)
            ax.hist(prior[name], bins=40, range=(lo, hi), density=True, color="0.75", label="prior")
        ax.hist(post, bins=40, range=(lo, hi), density=True, color="C0", alpha=0.75, label="posterior")
        ax.set_title(name)
        ax.set_yticks([])
    axes[0].legend(fontsize=7, frameon=False)
    return _finish(fig, axes, len(names), title, fontsize=8)


def sbc_histograms(ranks: pd.DataFrame, rank_max: int, bins: int, title: str) -> Figure:
    """Rank histograms per parameter; the grey band is where 99% of bins fall when ranks are uniform."""
    from scipy import stats

    names = list(dict.fromkeys(ranks["parameter"]))
    fig, axes = _panels(len(names))
    edges = np.linspace(0, rank_max + 1, bins + 1)
    for ax, name in zip(axes, names):
        values = ranks.loc[ranks["parameter"] == name, "rank"]
        n = len(values)
        lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
        ax.axhspan(lo, hi, color="0.85")
        ax.axhline(n / bins, color="0.5", lw=0.8)
        ax.hist(values, bins=edges, color="C0", edgecolor="white")
        ax.set_title(name)
    return _finish(fig, axes, len(names), title)


def sbc_ecdf_difference(ranks: pd.DataFrame, rank_max: int, title: str) -> Figure:
    """ECDF of the scaled ranks minus the uniform CDF, per parameter, with a pointwise 99% band."""
    names = list(dict.fromkeys(ranks["parameter"]))
    fig, axes = _panels(len(names))
    grid = np.linspace(0, 1, 101)
    for ax, name in zip(axes, names):
        u = (ranks.loc[ranks["parameter"] == name, "rank"].to_numpy() + 0.5) / (rank_max + 1)
        n = len(u)
        ecdf = (u[None, :] <= grid[:, None]).mean(axis=1)
        band = 2.576 * np.sqrt(grid * (1 - grid) / n)
        ax.fill_between(grid, -band, band, color="0.85")
        ax.plot(grid, ecdf - grid, color="C0", lw=1.2)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_title(name)
    return _finish(fig, axes, len(names), title)
