#!/usr/bin/env bash
# Build Whetstone for macOS: dist/Whetstone.app (the same PyInstaller spec as Linux; both programs
# in Contents/MacOS) and a drag-to-Applications disk image dist/whetstone-<version>-macos-<arch>.dmg.
#   packaging/macos/build.sh             build with ./.venv (created by ./scripts/install)
#   CODESIGN_IDENTITY="Developer ID Application: NAME (TEAMID)" packaging/macos/build.sh
#                                        also sign the app and the image (see the notes at the end)
#
# On a Mac, training and chat run on the CPU: bitsandbytes has no Metal (MPS) 4-bit kernels, so the
# 4-bit NF4 base runs through its CPU backend (slow but real; small models are fine). Build on the
# architecture you ship for (arm64 on Apple silicon); PyInstaller does not cross-build.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(uname -s)" = Darwin ] || { echo "error: this builds the macOS app; run it on a Mac." >&2; exit 2; }

[ -x .venv/bin/python ] || ./scripts/install   # venv + every package pinned by constraints.txt
PY=.venv/bin/python
# PyInstaller at the exact versions of the `packaging` extra (pyproject.toml); bash 3.2 has no mapfile.
REQS=$("$PY" -c 'import tomllib
print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["packaging"]))')
# shellcheck disable=SC2086  # REQS is a list of requirement words without spaces
"$PY" -m pip install --quiet -c constraints.txt $REQS
VERSION=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -n 1)

# The .icns icon, made from the PNG renderings with Apple's own tools (sips, iconutil).
ICONSET=build/macos/whetstone.iconset
rm -rf build/macos && mkdir -p "$ICONSET"
for size in 16 32 64 128 256 512; do
    sips -s format png -z $size $size resources/icons/whetstone-256.png --out "$ICONSET/icon_${size}x${size}.png" >/dev/null
    double=$((size * 2))
    [ $double -le 512 ] && sips -s format png -z $double $double resources/icons/whetstone-256.png \
        --out "$ICONSET/icon_${size}x${size}@2x.png" >/dev/null
done
iconutil -c icns "$ICONSET" -o build/macos/whetstone.icns

start=$(date +%s)
WHETSTONE_ICON=$PWD/build/macos/whetstone.icns \
    "$PY" -m PyInstaller --noconfirm --clean --distpath dist --workpath build/pyinstaller \
    packaging/pyinstaller/whetstone.spec
echo "build time: $(( $(date +%s) - start ))s; app size: $(du -sh dist/Whetstone.app | cut -f1)"
dist/Whetstone.app/Contents/MacOS/whetstone-engine diagnostics   # the bundled engine starts

if [ -n "${CODESIGN_IDENTITY:-}" ]; then
    # Hardened runtime is required for notarization; torch and Qt load their own libraries, which
    # the same signature covers. PyInstaller already ad-hoc signed every binary; --deep re-signs them.
    codesign --force --deep --options runtime --timestamp --sign "$CODESIGN_IDENTITY" dist/Whetstone.app
    codesign --verify --deep --strict dist/Whetstone.app
fi

# The disk image: the app plus a link to /Applications to drag it onto.
DMG=dist/whetstone-$VERSION-macos-$(uname -m).dmg
STAGE=build/macos/dmg
rm -rf "$STAGE" "$DMG" && mkdir -p "$STAGE"
cp -R dist/Whetstone.app "$STAGE/"
ln -s /Applications "$STAGE/Applications"
hdiutil create -volname "Whetstone $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"
if [ -n "${CODESIGN_IDENTITY:-}" ]; then codesign --sign "$CODESIGN_IDENTITY" --timestamp "$DMG"; fi
echo "disk image: $DMG ($(du -h "$DMG" | cut -f1))"

# Notarization (needs an Apple Developer account; not done by this script):
#   xcrun notarytool submit "$DMG" --keychain-profile NAME --wait
#   xcrun stapler staple "$DMG"
# Without signing and notarization, Gatekeeper blocks the first start: right-click the app > Open,
# or `xattr -dr com.apple.quarantine /Applications/Whetstone.app`.
# User data: ~/Library/Application Support/whetstone (or $WHETSTONE_HOME); settings in
# ~/Library/Preferences/com.whetstone.Whetstone.plist. Uninstall = drag Whetstone.app to the Trash;
# the data stays.
