#!/usr/bin/env bash
# Render a segdata HTML report in headless Chromium (Debian's `chromium` package), as the tests do.
#   docs/chromium.sh dump-dom   PAGE.html [PROFILE_DIR]            > dom.html
#   docs/chromium.sh screenshot PAGE.html OUT.png [PROFILE_DIR]
# The README's screenshot is made with:
#   segdata report sample_datasets/coco-dirty --fail-on never --out report.html
#   docs/chromium.sh screenshot report.html docs/report.png
# A fresh profile folder each run (the default: a temporary one), no network services, no GPU.
set -euo pipefail
mode="$1" page="$(realpath "$2")"
case "$mode" in
  dump-dom) out="" profile="${3:-}" ;;
  screenshot) out="$(realpath -m "$3")" profile="${4:-}" ;;
  *) echo "usage: $0 dump-dom|screenshot PAGE.html [OUT.png] [PROFILE_DIR]" >&2; exit 2 ;;
esac
if [ -z "$profile" ]; then
  profile="$(mktemp -d)"
  trap 'rm -rf "$profile"' EXIT
fi
flags=(--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking
       --disable-component-update --disable-sync "--user-data-dir=$profile" --hide-scrollbars)
if [ "$mode" = dump-dom ]; then
  chromium "${flags[@]}" --dump-dom "file://$page" 2>/dev/null
  exit 0
fi
chromium "${flags[@]}" --window-size=1100,1500 "--screenshot=$out" "file://$page" 2>/dev/null >/dev/null
test -s "$out"
