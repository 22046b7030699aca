"""`python -m pfill`: the same as the `pfill` command."""

from pfill.cli import main

if __name__ == "__main__":
    main()
