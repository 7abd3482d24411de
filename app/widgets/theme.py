"""Light and dark palettes: follow the system's colour scheme unless the user picks one."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

_DARK = {
    QPalette.ColorRole.Window: "#2b2d30",
    QPalette.ColorRole.WindowText: "#e6e6e6",
    QPalette.ColorRole.Base: "#1e1f22",
    QPalette.ColorRole.AlternateBase: "#26282b",
    QPalette.ColorRole.ToolTipBase: "#3c3f41",
    QPalette.ColorRole.ToolTipText: "#e6e6e6",
    QPalette.ColorRole.PlaceholderText: "#8c8c8c",
    QPalette.ColorRole.Text: "#e6e6e6",
    QPalette.ColorRole.Button: "#3a3d41",
    QPalette.ColorRole.ButtonText: "#e6e6e6",
    QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Highlight: "#3574f0",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#6aa5ff",
    QPalette.ColorRole.Mid: "#45484c",
    QPalette.ColorRole.Dark: "#1b1c1f",
    QPalette.ColorRole.Light: "#4a4d52",
}


# Better / worse than a reference (eval scorecard, answers view): mid-tones that read on both palettes.
BETTER_COLOR = "#2e8b57"
WORSE_COLOR = "#d9534f"


def effective_scheme(preference: str) -> str:
    if preference in ("light", "dark"):
        return preference
    scheme = QGuiApplication.styleHints().colorScheme()
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def apply_theme(app: QApplication, preference: str) -> str:
    """Set the palette for `preference` (system, light or dark); returns the scheme applied."""
    scheme = effective_scheme(preference)
    if scheme == "dark":
        palette = QPalette()
        for role, color in _DARK.items():
            palette.setColor(role, QColor(color))
        for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
            palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7a7a"))
    else:
        palette = app.style().standardPalette()
    app.setPalette(palette)
    app.setProperty("whetstone_scheme", scheme)
    return scheme


def follow_system(app: QApplication, preference_getter) -> None:
    """Re-apply the palette when the system switches light/dark and the user chose 'system'."""

    def on_change(_scheme) -> None:
        if preference_getter() == "system":
            apply_theme(app, "system")

    QGuiApplication.styleHints().colorSchemeChanged.connect(on_change)


def muted(widget_palette: QPalette) -> str:
    """A secondary text colour that reads on both palettes (for details and hints)."""
    return widget_palette.color(QPalette.ColorRole.PlaceholderText).name()
