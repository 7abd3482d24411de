# Sourced by the smoke scripts: sets NONET (the command prefix that runs a program with no network)
# and SMOKE_NET (extra smoke_checks.py arguments). A fresh network namespace (`unshare -n`; as root,
# or in an unprivileged user namespace with -r) has only a down loopback device, so any attempt to
# reach the network fails instead of passing by luck. Where neither is permitted the caller stops,
# unless WHETSTONE_SMOKE_ALLOW_NETWORK=1: then the steps run with the network on and say so.
SMOKE_NET=()
if unshare -n true 2>/dev/null; then
    NONET=(unshare -n)
elif unshare -r -n true 2>/dev/null; then
    NONET=(unshare -r -n)
elif [ "${WHETSTONE_SMOKE_ALLOW_NETWORK:-}" = 1 ]; then
    echo "warning: unshare -n is not permitted here; the offline steps run WITH the network (WHETSTONE_SMOKE_ALLOW_NETWORK=1)." >&2
    NONET=()
    SMOKE_NET=(--allow-network)
else
    echo "error: cannot cut the network: 'unshare -n' is not permitted here (it needs root or unprivileged" >&2
    echo "       user namespaces). Run as root, or set WHETSTONE_SMOKE_ALLOW_NETWORK=1 to run the offline" >&2
    echo "       steps with the network on (then they prove less)." >&2
    exit 2
fi
