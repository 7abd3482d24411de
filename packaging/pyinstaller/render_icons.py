"""Render resources/icons/whetstone.svg into the PNGs and the Windows .ico next to it.

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/pyinstaller/render_icons.py

Uses Qt's own SVG renderer (PySide6 from the .venv); the .ico needs ImageMagick (`convert`).
The macOS .icns is made on the Mac by packaging/macos/build.sh (sips + iconutil).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parents[2] / "resources" / "icons"
PNG_SIZES = (256, 64, 32)  # kept in the repository (app window icon, desktop entry)
ICO_SIZES = (16, 32, 48, 64, 128, 256)


def render(renderer: QSvgRenderer, size: int, path: Path) -> None:
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    if not image.save(str(path)):
        raise SystemExit(f"error: could not write {path}")


def main() -> int:
    app = QGuiApplication(sys.argv[:1])  # noqa: F841 (QImage/QPainter need one)
    renderer = QSvgRenderer(str(ICONS / "whetstone.svg"))
    if not renderer.isValid():
        raise SystemExit("error: whetstone.svg does not parse")
    for size in PNG_SIZES:
        render(renderer, size, ICONS / f"whetstone-{size}.png")
    convert = shutil.which("magick") or shutil.which("convert")
    if convert is None:
        print("ImageMagick not found: PNGs written, whetstone.ico left as it is")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        pngs = []
        for size in ICO_SIZES:
            pngs.append(Path(tmp) / f"{size}.png")
            render(renderer, size, pngs[-1])
        subprocess.run([convert, *map(str, pngs), str(ICONS / "whetstone.ico")], check=True)
    print(f"wrote {', '.join(f'whetstone-{s}.png' for s in PNG_SIZES)} and whetstone.ico in {ICONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
