"""The scheduled backup job (`observer backup run`); `observer db backup` makes one by hand."""
