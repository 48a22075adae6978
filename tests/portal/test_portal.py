"""The portal in a real headless Chromium: login, cone search, paging and sort, plots
and linked selection, downloads, ADQL errors, async jobs. Screenshots go to docs/portal/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from auth.conftest import PORTAL_DENSITY_THRESHOLD
from portal.conftest import screenshot
from tests_support import angular_separation_deg

RA, DEC = 62.0, -37.0
SLOW = (
    "SELECT COUNT(*) AS n FROM dp01_dc2_catalogs.object AS a, dp01_dc2_catalogs.object AS b, "
    "dp01_dc2_catalogs.object AS c WHERE a.ra + b.ra > c.ra"
)


def cone_ids(survey: Path, radius_deg: float) -> np.ndarray:
    obj = pq.read_table(survey / "object", columns=["objectId", "ra", "dec"]).to_pandas()
    inside = angular_separation_deg(obj.ra, obj.dec, RA, DEC) < radius_deg
    return np.sort(obj.objectId[inside].to_numpy())


def search_cone(page, radius: str, unit: str) -> None:
    page.click("#search .tabs button:has-text('Cone')")
    page.fill("input[name=position]", f"{RA} {DEC}")
    page.fill("input[name=radius]", radius)
    page.select_option("select[name=radius-unit]", unit)
    page.click("#search button[type=submit]")
    page.wait_for_function("document.querySelector('#status')?.textContent.includes('rows in')")


def status_rows(page) -> int:
    return int(page.inner_text("#status").split()[0])


def nonwhite_pixels(page, rgb: tuple[int, int, int] | None = None) -> int:
    """Pixels of the plot canvas that are not white (or close to one colour)."""
    return page.evaluate(
        """(rgb) => { const c = document.querySelector('#plot');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (rgb ? Math.abs(d[i]-rgb[0]) + Math.abs(d[i+1]-rgb[1]) + Math.abs(d[i+2]-rgb[2]) < 40
                  : (d[i] < 240 || d[i+1] < 240 || d[i+2] < 240)) n++; }
        return n; }""",
        list(rgb) if rgb else None,
    )


def test_search_page_lists_tables_with_descriptions(page) -> None:
    options = page.eval_on_selector_all("select[name=table] option", "os => os.map(o => o.value)")
    assert "dp01_dc2_catalogs.object" in options and "dp01_dc2_catalogs.truth_match" in options
    assert not any(o.startswith("TAP_SCHEMA") for o in options)
    label = page.inner_text(".columns label:has-text('mag_r_cModel')")
    assert "mag" in label.lower() and len(label) > len("mag_r_cModel") + 5  # unit / description
    page.fill("input[name=constraints]", "mag_i_cModel < 24")
    adql = page.input_value("textarea[name=adql]")
    assert "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS'" in adql
    assert "(mag_i_cModel < 24)" in adql
    page.fill("input[name=constraints]", "")
    screenshot(page, "search")


def test_cone_search_matches_brute_force(page, tiny_survey: Path) -> None:
    search_cone(page, "90", "arcsec")
    expected = cone_ids(tiny_survey, 90 / 3600)
    assert 10 < len(expected) < 5000
    assert status_rows(page) == len(expected)
    adql = page.input_value("textarea[name=adql]")
    assert f"CIRCLE('ICRS', {RA:g}, {DEC:g}, 0.025)" in adql
    ids = page.eval_on_selector_all(
        "#results tbody tr", "rows => rows.map(r => r.cells[0].textContent)"
    )
    assert set(map(int, ids)) <= set(expected.tolist())


def test_paging_and_sort(page, tiny_survey: Path) -> None:
    search_cone(page, "5", "arcmin")
    n = len(cone_ids(tiny_survey, 5 / 60))
    assert status_rows(page) == n and n > 1000
    assert page.inner_text("#page-info").startswith(f"Page 1 of {-(-n // 100)}")
    assert page.locator("#results tbody tr").count() == 100
    page.click("button[name=next]")
    assert page.inner_text("#page-info").startswith("Page 2 of")
    # Sort by ra (ascending, then descending): the table's first row holds the extreme.
    header = page.locator("#results thead th[data-col=ra]")
    col = page.eval_on_selector_all(
        "#results thead th[data-col]", "hs => hs.map(h => h.dataset.col)"
    )
    k = col.index("ra")
    first = lambda: float(page.locator("#results tbody tr").first.locator("td").nth(k).inner_text())  # noqa: E731
    header.click()
    assert page.inner_text("#page-info").startswith("Page 1 of")
    obj = pq.read_table(tiny_survey / "object", columns=["ra", "dec"]).to_pandas()
    inside = obj.ra[angular_separation_deg(obj.ra, obj.dec, RA, DEC) < 5 / 60]
    assert first() == pytest.approx(inside.min(), abs=1e-9)
    header.click()
    assert first() == pytest.approx(inside.max(), abs=1e-9)
    # A filter on a column narrows the rows.
    page.fill("input[name=filter-ra]", f"> {RA}")
    page.press("input[name=filter-ra]", "Enter")
    page.wait_for_function("document.querySelector('#page-info')?.textContent.includes('filtered')")
    assert f"of {(inside > RA).sum()} (filtered from {n})" in page.inner_text("#page-info")
    screenshot(page, "results")
    page.fill("input[name=filter-ra]", "")
    page.press("input[name=filter-ra]", "Enter")


def test_plots_and_linked_selection(page) -> None:
    search_cone(page, "90", "arcsec")
    page.locator("#results tbody tr").nth(2).click()
    assert "selected" in page.locator("#results tbody tr").nth(2).get_attribute("class")
    page.click("button[name=tab-plot]")
    page.wait_for_selector("#plot[data-kind]")
    assert page.get_attribute("#plot", "data-kind") == "scatter"  # sky plot, few points
    assert nonwhite_pixels(page) > 500
    assert nonwhite_pixels(page, (224, 96, 0)) > 5  # the selected row, circled in orange
    page.click("button[name=plot-histogram]")
    page.wait_for_selector("#plot[data-kind=histogram]")
    assert nonwhite_pixels(page) > 500
    page.click("button[name=plot-cmd]")
    page.wait_for_function("document.querySelector('#plot-info')?.textContent.includes('scatter')")
    screenshot(page, "plot")
    # Above the threshold the scatter becomes a density map.
    search_cone(page, "5", "arcmin")
    assert status_rows(page) > PORTAL_DENSITY_THRESHOLD
    page.click("button[name=tab-plot]")
    page.click("button[name=plot-sky]")
    page.wait_for_selector("#plot[data-kind=density]")
    assert nonwhite_pixels(page) > 5000
    screenshot(page, "density")
    page.click("button[name=tab-results]")


def test_downloads(page, tmp_path: Path, tiny_survey: Path) -> None:
    search_cone(page, "90", "arcsec")
    expected = cone_ids(tiny_survey, 90 / 3600)
    for fmt, link in [("csv", "CSV"), ("parquet", "Parquet"), ("votable", "VOTable")]:
        with page.expect_download() as info:
            page.click(f".downloads a:has-text('{link}')")
        path = tmp_path / f"result.{fmt}"
        info.value.save_as(path)
        if fmt == "csv":
            ids = pacsv.read_csv(path).column("objectId").to_numpy()
        elif fmt == "parquet":
            ids = pq.read_table(path).column("objectId").to_numpy()
        else:
            from astropy.io.votable import parse_single_table

            ids = np.asarray(parse_single_table(str(path)).array["objectId"])
        np.testing.assert_array_equal(np.sort(ids), expected)


def test_adql_error_is_shown(page) -> None:
    page.click("#search .tabs button:has-text('ADQL')")
    page.fill("textarea[name=adql]", "SELECT ra FROM dp01_dc2_catalogs.no_such_table")
    page.click("#search button[type=submit]")
    page.wait_for_selector("#error")
    text = page.inner_text("#error")
    assert "no_such_table" in text
    screenshot(page, "adql-error")
    page.fill("textarea[name=adql]", "SELEC ra FROM")
    page.click("#search button[type=submit]")
    # The old message goes when the new query starts; wait for the new one.
    page.wait_for_function(
        "document.querySelector('#error') && "
        "!document.querySelector('#error').textContent.includes('no_such')"
    )
    assert page.inner_text("#error").strip()


def test_async_jobs_abort_and_results(page) -> None:
    page.click("#search .tabs button:has-text('ADQL')")
    page.fill("textarea[name=adql]", SLOW)
    page.click("text=Submit as async job")
    page.wait_for_selector("#jobs tbody tr")
    row = page.locator("#jobs tbody tr").first
    page.wait_for_function(
        "['QUEUED','EXECUTING'].includes(document.querySelector('#jobs tbody tr td:nth-child(2)')"
        "?.textContent)"
    )
    row.locator("button:has-text('Abort')").click()
    page.wait_for_function(
        "document.querySelector('#jobs tbody tr td:nth-child(2)')?.textContent === 'ABORTED'",
        timeout=30_000,
    )
    page.fill("textarea[name=adql]", "SELECT TOP 7 objectId, ra, dec FROM dp01_dc2_catalogs.object")
    page.click("text=Submit as async job")
    page.wait_for_function(
        "document.querySelectorAll('#jobs tbody tr').length >= 2 && [...document.querySelectorAll("
        "'#jobs tbody tr td:nth-child(2)')].some(td => td.textContent === 'COMPLETED')",
        timeout=60_000,
    )
    page.fill("textarea[name=adql]", "SELECT nonsense FROM dp01_dc2_catalogs.object")
    page.click("text=Submit as async job")
    failed = page.locator("#jobs tbody tr:has-text('SELECT nonsense') td.phase-ERROR")
    failed.wait_for(timeout=60_000)
    message = page.locator("#jobs tbody tr:has-text('SELECT nonsense') td.error").inner_text()
    assert "nonsense" in message
    screenshot(page, "jobs")
    page.locator("#jobs tbody tr:has-text('COMPLETED') button:has-text('Show')").first.click()
    page.wait_for_selector("#results")
    assert status_rows(page) == 7


def test_token_page(page, auth_server) -> None:
    page.goto(auth_server.url + "/auth/tokens")
    page.fill("input[name=name]", "topcat")
    page.click("text=Create token")
    page.wait_for_selector("#created:not([hidden])")
    token = page.inner_text("#token-value")
    assert token.startswith("dpz-")
    page.wait_for_selector("#tokens tbody tr:has-text('topcat')")
    screenshot(page, "tokens")
    page.locator("#tokens tbody tr:has-text('topcat') button").click()
    page.wait_for_selector("#tokens tbody tr:has-text('revoked')")
    page.goto(auth_server.url + "/portal/")
    page.wait_for_selector("#search")
