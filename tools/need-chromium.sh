#!/usr/bin/env bash
# Makes sure headless Chromium (prints the PDF, renders the HTML in tests) and poppler's tools (check
# the PDF) are here: installs them with apt-get when running as root, else says exactly what is missing.
set -u
missing=()
chrome=${CHROMIUM:-}
if [ -z "$chrome" ]; then
  for c in chromium chromium-browser google-chrome; do command -v "$c" >/dev/null 2>&1 && chrome=$c && break; done
fi
[ -n "$chrome" ] || missing+=(chromium)
command -v pdfinfo >/dev/null 2>&1 && command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" fonts-dejavu-core; } >/dev/null \
    && exit 0
fi
echo "missing: ${missing[*]} (needed to print the PDF and to test the report)." >&2
echo "install with: sudo apt-get install ${missing[*]}   (or set CHROMIUM=/path/to/chrome)" >&2
exit 1
