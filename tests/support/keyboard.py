"""Driving a page with the keyboard alone in a browser test: Tab to a control (no clicks), and
the focus ring it shows (at least 3:1 against white and the page background, WCAG 2.2 1.4.11)."""

from __future__ import annotations

import re

from playwright.sync_api import Page


def tab_to(page: Page, selector: str, *, limit: int = 80, backwards: bool = False) -> None:
    """Press Tab (or Shift+Tab) until the focus is on `selector`: keys only, no clicks."""
    for _ in range(limit):
        if page.evaluate("(s) => !!document.activeElement?.matches(s)", selector):
            return
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
    raise AssertionError(f"Tab never reached {selector}")


def contrast(rgb_a: str, rgb_b: str) -> float:
    def luminance(rgb: str) -> float:
        channels = [int(v) / 255 for v in re.findall(r"\d+", rgb)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(rgb_a), luminance(rgb_b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def assert_focus_ring(page: Page) -> None:
    ring = page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement);
                   return [s.outlineStyle, parseFloat(s.outlineWidth), s.outlineColor]; }"""
    )
    assert ring[0] != "none", ring
    assert ring[1] >= 2, ring
    assert contrast(ring[2], "rgb(255, 255, 255)") >= 3, ring
    assert contrast(ring[2], "rgb(246, 247, 249)") >= 3, ring  # the page background
