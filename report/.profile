quick
