"""One check for every page state a browser test visits: it fits, it is accessible, it is seen.

`check_layout(page, name)`:

- **no sideways scroll**: the document is no wider than the viewport, and no visible element
  sticks out past the viewport's right edge (an element inside a container that scrolls or
  clips on its own, such as a wide table in `.table-wrap`, is that container's business);
- **axe-core** (4.14.1 from its npm package, vendored in tests/support/vendor/axe-core and run
  through `axe-playwright-python`: nothing is fetched at run time) finds no critical or serious
  violation; each one is reported with its rule id and the CSS targets of its nodes;
- a full-page **screenshot** (`save_full_page`) at `test-artifacts/screenshots/<name>-<width>.png`.

Every problem of the page is collected before failing, so one run names them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

from tests.support.browser import SCREENSHOTS, save_full_page

FAILING_IMPACTS = frozenset({"critical", "serious"})
# Rules axe ships switched off ("experimental") that the audit ran as well.
EXTRA_RULES = {"label-content-name-mismatch": {"enabled": True}}
AXE_OPTIONS: dict[str, Any] = {"resultTypes": ["violations"], "rules": EXTRA_RULES}

AXE_SCRIPT = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
_AXE = Axe.from_file(AXE_SCRIPT)

# Elements wider than the viewport's right edge, except inside a container that scrolls or
# clips its own overflow (then the container is what must fit), and except hidden ones.
_OVERFLOW_SCRIPT = """
() => {
  const root = document.scrollingElement || document.documentElement;
  const width = root.clientWidth;
  const clipped = (el) => {
    for (let p = el.parentElement; p && p !== document.body && p !== root; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (/(auto|scroll|hidden|clip)/.test(style.overflowX)) return true;
    }
    return false;
  };
  const describe = (el) => {
    let text = el.tagName.toLowerCase();
    if (el.id) text += "#" + el.id;
    if (el.classList.length) text += "." + Array.from(el.classList).join(".");
    const testid = el.getAttribute("data-testid");
    if (testid) text += `[data-testid=${testid}]`;
    return text;
  };
  const out = [];
  for (const el of document.body.querySelectorAll("*")) {
    // Not rendered: hidden, or inside a closed <details> (content-visibility: hidden).
    if (!el.checkVisibility({ visibilityProperty: true, contentVisibilityAuto: true })) continue;
    const rect = el.getBoundingClientRect();
    if (rect.width === 0 || rect.height === 0) continue;
    const style = getComputedStyle(el);
    if (style.position === "fixed") continue;
    const right = rect.right + window.scrollX;
    if (clipped(el)) continue;
    if (right > width + 0.5) out.push({ element: describe(el), by: Math.round(right - width) });
    else if (rect.left < -0.5 && rect.right > 0.5) {
      out.push({ element: describe(el) + " (past the left edge)", by: Math.round(-rect.left) });
    }
  }
  return { scrollWidth: root.scrollWidth, clientWidth: width, sticking: out.slice(0, 15) };
}
"""


@dataclass(frozen=True)
class LayoutReport:
    name: str
    width: int
    overflow_px: int
    violations: list[str]
    sticking_out: list[str]
    screenshot: Path

    @property
    def problems(self) -> list[str]:
        found: list[str] = []
        if self.overflow_px > 0:
            found.append(f"scrolls sideways by {self.overflow_px}px")
        found += [f"sticks out past the right edge: {item}" for item in self.sticking_out]
        found += self.violations
        return found


def measure_overflow(page: Page) -> tuple[int, list[str]]:
    """How far the document scrolls sideways, and the elements sticking out (with how far)."""
    result = page.evaluate(_OVERFLOW_SCRIPT)
    overflow = max(0, int(result["scrollWidth"]) - int(result["clientWidth"]))
    sticking = [f"{item['element']} by {item['by']}px" for item in result["sticking"]]
    return overflow, sticking


# axe.run, answered with only what a report names (the full result, with every node's HTML and
# the passing rules' lists, is many times larger to serialize back to Python).
_AXE_RUN = """
async ([within, options]) => {
  const results = await axe.run(within ? { include: within } : document, options);
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.map((node) => node.target.join(" ")),
  }));
}
"""


def _inject_axe(page: Page) -> None:
    """axe-core into the page's document, once per document (a later check on the same
    document, after an HTMX swap or a dialog opened, reuses it)."""
    if not page.evaluate("() => typeof window.axe?.run === 'function'"):
        page.evaluate(_AXE.axe_script)


def axe_violations(page: Page, within: Sequence[str] = ()) -> list[str]:
    """Critical and serious axe-core violations: rule id, impact, help, node targets; of the
    whole document, or only of the elements the CSS selectors `within` match."""
    _inject_axe(page)
    found = []
    for violation in page.evaluate(_AXE_RUN, [list(within), AXE_OPTIONS]):
        if violation.get("impact") not in FAILING_IMPACTS:
            continue
        targets = violation["targets"]
        shown = "; ".join(targets[:8]) + (
            f"; … {len(targets) - 8} more" if len(targets) > 8 else ""
        )
        found.append(
            f"axe {violation['id']} ({violation['impact']}, {len(targets)} nodes): "
            f"{violation['help']} -> {shown}"
        )
    return found


def axe_version(page: Page) -> str:
    _inject_axe(page)
    return str(page.evaluate("axe.version"))


def inspect_layout(page: Page, name: str, *, changed: Sequence[str] = ()) -> LayoutReport:
    """Measure, audit and photograph the page as it is now, without failing. With `changed`
    (CSS selectors), axe audits only those parts: for a state that differs from one already
    audited (the same page, earlier in the test or in the layout walk) only there, such as a
    row's menu or a dialog opened; the fit and the screenshot are always of the whole page."""
    page.wait_for_load_state()  # the state with its scripts run, not a page still loading
    width = page.viewport_size["width"] if page.viewport_size else 0
    overflow, sticking = measure_overflow(page)
    violations = axe_violations(page, changed)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{width}.png"
    save_full_page(page, path)
    return LayoutReport(name, width, overflow, violations, sticking, path)


def check_layout(page: Page, name: str, *, changed: Sequence[str] = ()) -> LayoutReport:
    """`inspect_layout`, failing with every problem it found."""
    report = inspect_layout(page, name, changed=changed)
    problems = report.problems
    assert not problems, f"{name} at {report.width}px ({page.url}):\n  " + "\n  ".join(problems)
    return report


def horizontal_overflow(page: Page) -> int:
    """How far the page scrolls sideways, in CSS pixels (0: it does not)."""
    return int(
        page.evaluate(
            "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
        )
    )
