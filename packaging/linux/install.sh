#!/usr/bin/env bash
# Install Whetstone for the current user only: a menu entry and an icon that point at this folder.
# Nothing system-wide, no root. Move the folder first if you want it elsewhere (then run this again).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd -P)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
DESKTOP=$DATA/applications/whetstone.desktop
ICON=$DATA/icons/hicolor/256x256/apps/whetstone.png

[ -x "$HERE/whetstone" ] && [ -x "$HERE/whetstone-engine" ] || {
    echo "error: run install.sh from the unpacked Whetstone folder (whetstone and whetstone-engine are missing here)." >&2
    exit 2
}
# The menu entry quotes the path; these characters would need escaping that some menus get wrong.
case "$HERE" in
    *[\"\`\$\\]* | *$'\n'*) echo "error: move the folder to a path without \" \` \$ \\ or newlines: $HERE" >&2; exit 2 ;;
esac
if [ "$(id -u)" = 0 ]; then
    echo "note: installing for root only (this script never installs system-wide)."
fi

# Qt draws X11 windows through system libraries the bundle does not carry; say which are missing.
missing=$(ldd "$HERE"/_internal/PySide6/Qt/plugins/platforms/libqxcb.so 2>/dev/null | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ' || true)
if [ -n "$missing" ]; then
    echo "warning: Qt's X11 plugin needs system libraries that are missing: $missing" >&2
    echo "         on Debian/Ubuntu: sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0" >&2
fi

mkdir -p "$(dirname "$DESKTOP")" "$(dirname "$ICON")"
install -m 644 "$HERE/whetstone.png" "$ICON"
exec_path=${HERE//%/%%}/whetstone  # '%' starts a field code in Exec
entry=$(<"$HERE/whetstone.desktop")
entry=${entry//@EXEC@/"\"$exec_path\""}
entry=${entry//@TRYEXEC@/"$HERE/whetstone"}
# Written next to its final name, then renamed: a menu never reads half a file.
printf '%s\n' "$entry" >"$DESKTOP.tmp"
mv -f "$DESKTOP.tmp" "$DESKTOP"
chmod 644 "$DESKTOP"

echo "Installed Whetstone for $(id -un):"
echo "  menu entry  $DESKTOP"
echo "  icon        $ICON"
echo "  programs    $HERE/whetstone (app), $HERE/whetstone-engine (command line)"
echo "Your data will live in \${WHETSTONE_HOME:-${XDG_DATA_HOME:-~/.local/share}/whetstone}; settings in ${XDG_CONFIG_HOME:-~/.config}/Whetstone/."
echo "To uninstall: $HERE/uninstall.sh"
