"""`python -m sqlrec`: the same as the `sqlrec` command."""

from sqlrec.frontend.cli import main

if __name__ == "__main__":
    main()
