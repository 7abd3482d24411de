#!/usr/bin/env bash
# Uninstall Whetstone for the current user: remove its menu entry, its icon and this folder.
# Your data stays: the workspace (projects, converted models) and the app's settings.
#   uninstall.sh [--yes]
set -euo pipefail
# Everything runs inside one block that bash reads completely before running it, so deleting this
# script's own folder at the end is safe.
{
HERE=$(cd "$(dirname "$0")" && pwd -P)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
DESKTOP=$DATA/applications/whetstone.desktop
ICON=$DATA/icons/hicolor/256x256/apps/whetstone.png

# Guard the rm -rf below: this must be an unpacked Whetstone folder.
if [ ! -x "$HERE/whetstone" ] || [ ! -d "$HERE/_internal" ] || [ ! -f "$HERE/install.sh" ]; then
    echo "error: $HERE does not look like an unpacked Whetstone folder; nothing removed." >&2
    exit 2
fi
if [ "${1:-}" != "--yes" ]; then
    if [ -t 0 ]; then
        read -r -p "Remove Whetstone ($HERE) and its menu entry? Your projects and settings stay. [y/N] " answer
        case "$answer" in [yY]*) ;; *) echo "Nothing removed."; exit 0 ;; esac
    else
        echo "error: pass --yes to uninstall without a question." >&2
        exit 2
    fi
fi

# Remove the menu entry and icon only if they belong to this copy (another unpacked version may own them).
if [ -f "$DESKTOP" ] && grep -qxF "TryExec=$HERE/whetstone" "$DESKTOP"; then
    rm -f "$DESKTOP" "$ICON"
    echo "Removed $DESKTOP and $ICON"
elif [ -f "$DESKTOP" ]; then
    echo "Left $DESKTOP alone: it points at another Whetstone folder."
fi
cd /
rm -rf -- "$HERE"
echo "Removed $HERE"
echo "Your data stays: the workspace \${WHETSTONE_HOME:-${XDG_DATA_HOME:-~/.local/share}/whetstone} (or the folder chosen in"
echo "File > Change workspace folder) and the settings in ${XDG_CONFIG_HOME:-~/.config}/Whetstone/. Delete them by hand if you want."
exit 0
}
