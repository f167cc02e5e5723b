"""`python -m neuronatlas.cli`: the same as the `neuronatlas` command."""

from neuronatlas.cli import main

main()
