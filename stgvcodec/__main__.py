"""`python -m stgvcodec ...` is the `stgv` command."""

from .cli import main

main(prog_name="stgv")
